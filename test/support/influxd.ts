import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { it } from 'vitest';

/**
 * Real metric stores for the sink tests, each from a temp dir on free 127.0.0.1 ports and
 * removed afterwards: InfluxDB 1.x (`influxd`, Debian package influxdb) and VictoriaMetrics
 * (Debian package victoria-metrics), started directly — never through their system services.
 */

export const IN_CI = process.env.CI === 'true';

/**
 * The path of a tool, or undefined. A missing tool skips its tests locally with a loud
 * warning; under CI=true it registers a failing test instead, so CI cannot pass without it.
 * Call at the top level of a test file.
 */
export function requireTool(bin: string, debianPackage: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/bin', '/usr/sbin'];
  for (const dir of dirs) {
    const file = path.join(dir, bin);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  const reason = `${bin} is not installed (Debian package ${debianPackage}: apt-get install -y ${debianPackage})`;
  if (IN_CI) {
    it(`${bin} is installed`, () => {
      throw new Error(`${reason}; CI must run the tests that need it.`);
    });
  } else {
    console.warn(`\n${'!'.repeat(72)}\n!! SKIPPING the tests that need ${bin}: ${reason}\n${'!'.repeat(72)}\n`);
  }
  return undefined;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface ServerProcess {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** (Re)starts on the same port and data dir and waits until it answers. */
  start(): Promise<void>;
  /** SIGTERM, and SIGKILL if it is still there after 10 s. */
  stop(): Promise<void>;
  /** Stops and removes the temp dir. */
  cleanup(): Promise<void>;
  logTail(): string;
}

interface ServerSpec {
  bin: string;
  name: string;
  port: number;
  dir: string;
  args: string[];
  /** a GET that answers 2xx once the server is ready */
  readyPath: string;
}

function serverProcess(spec: ServerSpec): ServerProcess {
  const url = `http://127.0.0.1:${spec.port}`;
  const logFile = path.join(spec.dir, `${spec.name}.log`);
  let child: ChildProcess | undefined;
  let exited: Promise<void> | undefined;
  const killOnExit = () => child?.kill('SIGKILL');
  const logTail = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n') : '');

  const stop = async () => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const c = child;
    c.kill('SIGTERM');
    const killer = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
    process.off('exit', killOnExit);
  };

  const start = async () => {
    await stop();
    const log = fs.openSync(logFile, 'a');
    const c = spawn(spec.bin, spec.args, { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    child = c;
    exited = new Promise((resolve) => c.once('exit', () => resolve()));
    process.on('exit', killOnExit);
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`${spec.name} exited with ${c.exitCode} while starting:\n${logTail()}`);
      try {
        const res = await fetch(`${url}${spec.readyPath}`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`${spec.name} did not answer ${spec.readyPath} within 20 s:\n${logTail()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  return {
    url,
    port: spec.port,
    dir: spec.dir,
    start,
    stop,
    logTail,
    cleanup: async () => {
      await stop();
      fs.rmSync(spec.dir, { recursive: true, force: true });
    },
  };
}

/** InfluxDB 1.x with its data, meta and WAL in a temp dir, HTTP on a free 127.0.0.1 port. */
export async function startInfluxd(bin: string): Promise<ServerProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-influxd-'));
  const [port, rpcPort] = [await freePort(), await freePort()];
  const config = path.join(dir, 'influxdb.conf');
  fs.writeFileSync(
    config,
    [
      'reporting-disabled = true',
      `bind-address = "127.0.0.1:${rpcPort}"`,
      '[meta]',
      `  dir = "${dir}/meta"`,
      '[data]',
      `  dir = "${dir}/data"`,
      `  wal-dir = "${dir}/wal"`,
      '  query-log-enabled = false',
      '[http]',
      `  bind-address = "127.0.0.1:${port}"`,
      '  log-enabled = false',
      '[monitor]',
      '  store-enabled = false',
      '[continuous_queries]',
      '  enabled = false',
      '[logging]',
      '  level = "warn"',
      '',
    ].join('\n'),
  );
  const server = serverProcess({ bin, name: 'influxd', port, dir, args: ['run', '-config', config], readyPath: '/ping' });
  try {
    await server.start();
  } catch (e) {
    await server.cleanup();
    throw e;
  }
  return server;
}

/** VictoriaMetrics (which also takes InfluxDB 1.x and 2.x writes) from a temp dir. */
export async function startVictoriaMetrics(bin: string): Promise<ServerProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-vm-'));
  const port = await freePort();
  const args = [`-storageDataPath=${dir}/data`, `-httpListenAddr=127.0.0.1:${port}`, '-loggerLevel=WARN', '-retentionPeriod=100y'];
  const server = serverProcess({ bin, name: 'victoria-metrics', port, dir, args, readyPath: '/health' });
  try {
    await server.start();
  } catch (e) {
    await server.cleanup();
    throw e;
  }
  return server;
}

export interface InfluxSeries {
  name: string;
  /** present with GROUP BY */
  tags?: Record<string, string>;
  columns: string[];
  values: unknown[][];
}

/** An InfluxQL statement over HTTP (`/query`), times in ms; throws on an error in the answer. */
export async function influxQL(server: ServerProcess, q: string, db?: string): Promise<{ series: InfluxSeries[]; raw: string }> {
  const params = new URLSearchParams({ q, epoch: 'ms', ...(db ? { db } : {}) });
  const res = await fetch(`${server.url}/query?${params}`, { method: 'POST' });
  const raw = await res.text();
  const body = JSON.parse(raw) as { error?: string; results?: { error?: string; series?: InfluxSeries[] }[] };
  const error = body.error ?? body.results?.find((r) => r.error)?.error;
  if (!res.ok || error) throw new Error(`InfluxQL ${q}: HTTP ${res.status} ${error ?? raw}`);
  return { series: body.results?.flatMap((r) => r.series ?? []) ?? [], raw };
}

/** A series' rows as objects keyed by column. */
export function rows(series: InfluxSeries | undefined): Record<string, unknown>[] {
  if (!series) return [];
  return series.values.map((v) => Object.fromEntries(series.columns.map((c, i) => [c, v[i]])));
}
