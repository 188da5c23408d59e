import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAgentStatus } from '../src/lab/index.js';
import { processAlive } from '../src/runtime/index.js';
import { CLI, IN_CI, IS_ROOT, cli, portRange, tempLab, waitFor, type TempLab } from './helpers.js';

// Issue 10, items 8, 9, 12, 13 and 14: what an operator (or a shared config) can do to a lab by
// racing two `up`s, interrupting commands, naming odd files in the config, flooding /metrics
// with idle connections, or feeding a YAML alias bomb. Each test reproduces the fault against
// real servers and the real CLI, and fails on the code before its fix.

const PGBENCH = '/usr/lib/postgresql/15/bin/pgbench';

/** Runs the CLI without blocking the test, with a bound: a hang is a failure, not a stuck suite. */
function cliAsync(args: string[], cwd: string, timeoutMs = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** One HTTP request to /metrics with the given method; resolves with status and headers. */
function request(url: string, method: string): Promise<{ status: number; allow?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, allow: res.headers.allow, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer in 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

// One lab for the tests that need servers: a single publisher, its agent serving /metrics.
let lab: TempLab;
const LAB_YAML = `lab: safetyops
${portRange(58400)}nodes:
  pub:
    role: publisher
metrics:
  interval: 500ms
`;

beforeAll(async () => {
  lab = tempLab(LAB_YAML);
  const r = await cliAsync(['up'], lab.dir, 120_000);
  if (r.code !== 0) throw new Error(`up failed:\n${r.stderr}`);
}, 180_000);

afterAll(async () => {
  await lab?.cleanup();
});

const agentStatus = () => readAgentStatus(lab.config().stateDir);
const metricsUrl = () => waitFor(() => agentStatus()?.sampling?.prometheus, 20_000, 'the agent to serve /metrics');

/** A config beside the shared lab's, same lab name (so the same state dir), with `extra` appended. */
function sideConfig(name: string, extra: string): string {
  fs.writeFileSync(path.join(lab.dir, name), `${LAB_YAML}${extra}`);
  return name;
}

describe('item 14: a YAML alias bomb, and /metrics methods', () => {
  it('a YAML alias bomb is a config error (exit 2) naming the aliases, not an internal bug (exit 70)', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      levels.push(`${cur}: &${cur} [${Array(10).fill(`*${prev}`).join(',')}]`);
    }
    const l = tempLab(`lab: bomb\nnodes:\n  n1: {}\nx-bomb:\n  ${levels.join('\n  ')}\n`);
    try {
      const r = cli(['status'], { cwd: l.dir });
      expect(r.stderr).not.toMatch(/this is a bug/);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/prodhome.yaml: .*alias/i);
    } finally {
      fs.rmSync(l.dir, { recursive: true, force: true });
    }
  });

  it('/metrics answers GET and HEAD, and refuses POST, PUT and DELETE with 405 and an Allow header', async () => {
    const url = await metricsUrl();
    expect((await request(url, 'GET')).status).toBe(200);
    const head = await request(url, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const r = await request(url, method);
      expect(r.status, method).toBe(405);
      expect(r.allow, method).toBe('GET, HEAD');
    }
  });
});

describe('item 9: load and seed report failure and interruption in their exit codes', () => {
  it('load exits 2 when every transaction failed (a script on a missing table), as pgbench does, after its summary', () => {
    fs.writeFileSync(path.join(lab.dir, 'missing.sql'), 'select * from no_such_table;\n');
    const r = cli(['load', 'custom', 'missing.sql', '-t', '20'], { cwd: lab.dir });
    expect(r.stdout).toMatch(/number of failed transactions: 20 /);
    expect(r.stdout).toMatch(/42P01/);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/prodhome: 20 of 20 transactions failed .*42P01/);
  });

  it('load still exits 0 when every transaction succeeded', () => {
    fs.writeFileSync(path.join(lab.dir, 'ok.sql'), 'select 1;\n');
    const r = cli(['load', 'custom', 'ok.sql', '-t', '20'], { cwd: lab.dir });
    expect(r.stdout).toMatch(/number of failed transactions: 0 /);
    expect(r.code).toBe(0);
  });

  it('serialization failures alone leave the exit status 0, in load as in the system pgbench (they fail a transaction, not the run)', () => {
    if (!fs.existsSync(PGBENCH)) {
      if (IN_CI) throw new Error(`${PGBENCH} is missing`);
      console.warn(`SKIPPED: ${PGBENCH} is missing, so pgbench's own exit code cannot be compared`);
      return;
    }
    expect(cli(['psql', 'pub', '--', '-qc', 'create table counter (id int primary key, v int); insert into counter values (1, 0)'], { cwd: lab.dir }).code).toBe(0);
    fs.writeFileSync(path.join(lab.dir, 'rr.sql'), 'BEGIN ISOLATION LEVEL REPEATABLE READ;\nUPDATE counter SET v = v + 1 WHERE id = 1;\nEND;\n');
    const env = spawnSync(process.execPath, [CLI, 'env', 'pub'], { cwd: lab.dir, encoding: 'utf8' }).stdout;
    const vars = Object.fromEntries([...env.matchAll(/export (PG\w+)=(?:'([^']*)'|(\S+))/g)].map((m) => [m[1]!, m[2] ?? m[3]!]));
    const own = spawnSync(PGBENCH, ['-n', '-c', '4', '-T', '2', '-f', 'rr.sql'], { cwd: lab.dir, env: { ...process.env, ...vars }, encoding: 'utf8' });
    const r = cli(['load', 'custom', 'rr.sql', '-c', '4', '-T', '2'], { cwd: lab.dir });
    // Both saw failures (four clients updating one row under repeatable read) and both exit 0.
    expect(own.stdout).toMatch(/number of failed transactions: [1-9]/);
    expect(own.status).toBe(0);
    expect(r.stdout).toMatch(/40001 serialization_failure: [1-9]/);
    expect(r.code, r.stderr).toBe(0);
  });

  it('the system pgbench exits 2 on the same script, and `load --engine pgbench` passes that on', () => {
    if (!fs.existsSync(PGBENCH)) {
      if (IN_CI) throw new Error(`${PGBENCH} is missing`);
      console.warn(`SKIPPED: ${PGBENCH} is missing, so pgbench's own exit code cannot be compared`);
      return;
    }
    fs.writeFileSync(path.join(lab.dir, 'missing.sql'), 'select * from no_such_table;\n');
    const env = spawnSync(process.execPath, [CLI, 'env', 'pub'], { cwd: lab.dir, encoding: 'utf8' }).stdout;
    const vars = Object.fromEntries([...env.matchAll(/export (PG\w+)=(?:'([^']*)'|(\S+))/g)].map((m) => [m[1]!, m[2] ?? m[3]!]));
    const own = spawnSync(PGBENCH, ['-n', '-t', '5', '-f', 'missing.sql'], { cwd: lab.dir, env: { ...process.env, ...vars }, encoding: 'utf8' });
    expect(own.stderr).toMatch(/aborted/);
    expect(own.status).toBe(2);
    const r = cli(['load', 'custom', 'missing.sql', '-t', '5', '--engine', 'pgbench', '--pgbench', PGBENCH], { cwd: lab.dir });
    expect(r.stdout).toMatch(/failures by SQLSTATE/);
    expect(r.code).toBe(2);
  });

  it('load interrupted (SIGINT) prints its summary and exits 130', async () => {
    fs.writeFileSync(path.join(lab.dir, 'ok.sql'), 'select 1;\n');
    const child = spawn(process.execPath, [CLI, 'load', 'custom', 'ok.sql', '--json'], { cwd: lab.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      await new Promise((r) => setTimeout(r, 2500)); // let it run a while (with --json it prints nothing until the end)
      child.kill('SIGINT');
      const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000))]);
      expect(code, stderr).toBe(130);
      const summary = JSON.parse(stdout) as { stoppedBy: string; transactions: number };
      expect(summary.stoppedBy).toBe('interrupted');
      expect(summary.transactions).toBeGreaterThan(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('seed books interrupted (SIGINT) says how many rows it wrote and that they were rolled back, exits 130, leaves books as it was', async () => {
    const child = spawn(process.execPath, [CLI, 'seed', 'books', '--rows', '50M'], { cwd: lab.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      await waitFor(() => /books: [\d,]+\/50,000,000 rows/.test(stderr), 60_000, 'seed progress');
      child.kill('SIGINT');
      const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
      expect(code, stderr).toBe(130);
      expect(stderr).toMatch(/prodhome: interrupted: seed books on pub: [\d,]+ of 50,000,000 rows sent, rolled back \(nothing kept\)/);
      expect(stdout).toBe('');
      // The lab had no books table: the one seed created in its transaction is rolled back too.
      const r = cli(['psql', 'pub', '--', '-tAc', "select to_regclass('public.books') is null"], { cwd: lab.dir });
      expect(r.stdout.trim(), r.stderr).toBe('t');
    } finally {
      child.kill('SIGKILL');
    }
  }, 120_000);
});

describe('item 9, seed pgbench', () => {
  it('seed pgbench interrupted (SIGINT) while generating says how many rows it sent and that they were rolled back, exits 130', async () => {
    const child = spawn(process.execPath, [CLI, 'seed', 'pgbench', '--scale', '100'], { cwd: lab.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      await waitFor(() => /pgbench_accounts: [\d,]+\/10,000,000 rows/.test(stderr), 60_000, 'seed progress');
      child.kill('SIGINT');
      const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
      expect(code, stderr).toBe(130);
      expect(stderr).toMatch(/prodhome: interrupted: seed pgbench on pub while generating data: [\d,]+ of 10,000,000 pgbench_accounts rows sent, rolled back: the tables are there, empty/);
      const r = cli(['psql', 'pub', '--', '-tAc', 'select count(*) from pgbench_accounts'], { cwd: lab.dir });
      expect(r.stdout.trim(), r.stderr).toBe('0');
    } finally {
      child.kill('SIGKILL');
    }
  }, 120_000);
});

describe('item 12: files named in the config are read only by the commands that use them, only regular files, capped', () => {
  it('a config file over 1 MiB is refused before it is parsed, with a clear message (exit 2)', () => {
    const l = tempLab(`lab: huge\nnodes:\n  n1: {}\n# ${'x'.repeat(2 * 1024 * 1024)}\n`);
    try {
      const r = cli(['status'], { cwd: l.dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/prodhome: config file .*prodhome.yaml is 2\.0 MiB; a config file is at most 1 MiB/);
    } finally {
      fs.rmSync(l.dir, { recursive: true, force: true });
    }
  });

  it('status and destroy do not read a schema file at all: a FIFO named there does not hang them', async () => {
    const l = tempLab(`lab: fifo\nnodes:\n  n1: { role: publisher }\nschema:\n  - file: schema.fifo\nseed:\n  - { table: t, file: seed.fifo }\n`);
    try {
      spawnSync('mkfifo', [path.join(l.dir, 'schema.fifo'), path.join(l.dir, 'seed.fifo')]);
      for (const args of [['status'], ['destroy', '--yes']]) {
        const r = await cliAsync(args, l.dir, 20_000);
        expect(r.timedOut, `${args[0]} hung reading the FIFO`).toBe(false);
        expect(r.code, r.stderr).toBe(0);
      }
    } finally {
      fs.rmSync(l.dir, { recursive: true, force: true });
    }
  });

  it('up refuses a seed file that is a FIFO before it creates anything (exit 2, no state dir)', async () => {
    const l = tempLab(`lab: fifoup\n${portRange(58500)}nodes:\n  n1: { role: publisher }\nseed:\n  - { table: t, file: seed.fifo }\n`);
    try {
      spawnSync('mkfifo', [path.join(l.dir, 'seed.fifo')]);
      const r = await cliAsync(['up'], l.dir, 20_000);
      expect(r.timedOut, 'up hung reading the FIFO').toBe(false);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/seed\[0\]\.file: seed file .*seed\.fifo is a FIFO, not a regular file/);
      expect(fs.readdirSync(l.dir).sort()).toEqual(['prodhome.yaml', 'seed.fifo']);
    } finally {
      fs.rmSync(l.dir, { recursive: true, force: true });
    }
  });

  it.each([
    { what: 'a FIFO', file: 'schema.fifo', message: /schema\[0\]\.file: .*schema\.fifo is a FIFO, not a regular file/ },
    { what: 'a device', file: '/dev/null', message: /schema\[0\]\.file: .*\/dev\/null is a character device, not a regular file/ },
  ])('replicate --dry-run refuses a schema file that is $what (exit 2), without hanging', async ({ file, message }) => {
    if (file === 'schema.fifo' && !fs.existsSync(path.join(lab.dir, file))) spawnSync('mkfifo', [path.join(lab.dir, file)]);
    const config = sideConfig('odd-file.yaml', `schema:\n  - file: ${file}\n`);
    const r = await cliAsync(['-f', config, 'replicate', '--dry-run'], lab.dir, 20_000);
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('replicate --dry-run refuses a schema file over 64 MiB (exit 2) instead of reading it whole', async () => {
    const big = path.join(lab.dir, 'big.sql');
    fs.closeSync(fs.openSync(big, 'w'));
    fs.truncateSync(big, 65 * 1024 * 1024); // sparse: costs no disk
    const config = sideConfig('big-file.yaml', 'schema:\n  - file: big.sql\n');
    const r = await cliAsync(['-f', config, 'replicate', '--dry-run'], lab.dir, 60_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/schema\[0\]\.file: .*big\.sql is 65\.0 MiB; a schema file is at most 64 MiB/);
    expect(r.stdout.length).toBeLessThan(10_000);
  });

  it('as root, replicate --dry-run refuses to print /etc/shadow (a file only root may read), exit 2', async () => {
    if (!IS_ROOT || !fs.existsSync('/etc/shadow')) {
      if (IN_CI && IS_ROOT) throw new Error('/etc/shadow is missing');
      console.warn('SKIPPED: not root (or no /etc/shadow): the kernel already refuses this read');
      return;
    }
    const config = sideConfig('shadow.yaml', 'schema:\n  - file: /etc/shadow\n');
    const r = await cliAsync(['-f', config, 'replicate', '--dry-run'], lab.dir, 20_000);
    // Not printed on failure either: the assertion compares booleans, never the text.
    expect(r.stdout.includes('root:')).toBe(false);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/schema\[0\]\.file: .*\/etc\/shadow is not readable by everyone \(mode 0640/);
  });
});

describe('item 13: the agent survives a flood of idle /metrics connections', () => {
  it('with its fd limit lowered to 256, 2,000 idle sockets to /metrics neither stop its supervision and sampling nor outlast its timeouts', async () => {
    const url = new URL(await metricsUrl());
    const agentPid = agentStatus()!.pid;
    expect(spawnSync('prlimit', ['--pid', String(agentPid), '--nofile=256:256']).status).toBe(0);
    const sockets: net.Socket[] = [];
    let closedByServer = 0;
    try {
      for (let i = 0; i < 2000; i++) {
        const s = net.connect({ host: '127.0.0.1', port: Number(url.port) });
        s.on('error', () => {});
        s.on('close', () => closedByServer++);
        s.resume(); // read, so the server's close (FIN) is seen
        sockets.push(s);
        if (i % 200 === 199) await new Promise((r) => setTimeout(r, 50));
      }
      const before = agentStatus()!;
      // Several turns of the agent's loop (every second) and of the sampler (every 500 ms).
      await new Promise((r) => setTimeout(r, 5000));
      expect(processAlive(agentPid)).toBe(true);
      const log = fs.readFileSync(path.join(lab.config().stateDir, 'agent.log'), 'utf8');
      expect(log).not.toMatch(/the lab state is gone/);
      const after = await waitFor(() => {
        const s = agentStatus();
        return s && s.checkedAt > before.checkedAt && (s.sampling?.lastSampleAt ?? '') > (before.sampling?.lastSampleAt ?? '') ? s : undefined;
      }, 10_000, 'the agent to check and sample again');
      expect(after.nodes.pub?.condition).toBe('running');
      // Idle connections are closed by the server's timeouts, then /metrics answers again.
      await waitFor(() => closedByServer === sockets.length, 30_000, 'the agent to close every idle connection');
      expect((await request(url.href, 'GET')).status).toBe(200);
      expect(processAlive(agentPid)).toBe(true);
    } finally {
      for (const s of sockets) s.destroy();
    }
  }, 90_000);

  it('out of file descriptors, the agent takes a failed read of state.json (EMFILE) for an error, not for a destroyed lab: it logs it, goes on, and recovers', async () => {
    const url = new URL(await metricsUrl());
    const agentPid = agentStatus()!.pid;
    const logFile = path.join(lab.config().stateDir, 'agent.log');
    const logStart = fs.statSync(logFile).size;
    // A limit just above what it has open: a few idle connections exhaust it.
    const open = fs.readdirSync(`/proc/${agentPid}/fd`).length;
    expect(spawnSync('prlimit', ['--pid', String(agentPid), `--nofile=${open + 3}:${open + 3}`]).status).toBe(0);
    const sockets: net.Socket[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const s = net.connect({ host: '127.0.0.1', port: Number(url.port) });
        s.on('error', () => {});
        s.resume();
        sockets.push(s);
      }
      const newLog = () => fs.readFileSync(logFile, 'utf8').slice(logStart);
      await waitFor(() => /cannot read .*state\.json: EMFILE/.test(newLog()), 15_000, 'the agent to log EMFILE');
      expect(newLog()).not.toMatch(/the lab state is gone/);
      expect(processAlive(agentPid)).toBe(true);
      // The idle connections time out, descriptors come back, supervision resumes.
      await waitFor(() => /state\.json is readable again/.test(newLog()), 30_000, 'the agent to read state.json again');
      expect(processAlive(agentPid)).toBe(true);
    } finally {
      for (const s of sockets) s.destroy();
      spawnSync('prlimit', ['--pid', String(agentPid), '--nofile=1024:1024']);
    }
  }, 90_000);
});

describe('item 8: two labs started at once share a port range without colliding', () => {
  it('two `up` of two labs with the same port range, at once, 3 rounds: both succeed every time, on different ports', async () => {
    const yaml = (name: string) => `lab: ${name}\n${portRange(58450)}nodes:\n  n1: {}\n  n2: {}\nmetrics:\n  prometheus: false\n`;
    const a = tempLab(yaml('race-a'));
    const b = tempLab(yaml('race-b'));
    try {
      for (let round = 1; round <= 3; round++) {
        const [ra, rb] = await Promise.all([cliAsync(['up', '--json'], a.dir, 120_000), cliAsync(['up', '--json'], b.dir, 120_000)]);
        expect(ra.code, `round ${round}, lab a: ${ra.stderr}`).toBe(0);
        expect(rb.code, `round ${round}, lab b: ${rb.stderr}`).toBe(0);
        const ports = [ra, rb].flatMap((r) => (JSON.parse(r.stdout) as { nodes: { address: string }[] }).nodes.map((n) => n.address));
        expect(new Set(ports).size).toBe(4);
        for (const l of [a, b]) expect(cli(['destroy', '--yes'], { cwd: l.dir }).code).toBe(0);
      }
    } finally {
      await a.cleanup();
      await b.cleanup();
    }
  }, 600_000);
});
