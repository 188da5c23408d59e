import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { ProdhomeError } from '../errors.js';
import { isExecutable } from '../fsafe.js';
import { Histogram } from './histogram.js';
import { cpuSummary, type LoadOptions, type PreparedLoad } from './runner.js';
import { formatSchedule } from './schedule.js';
import { latencyMs, SQLSTATE_NAMES, Totals, type ErrorSummary, type LoadSummary, type SecondStats } from './summary.js';

/**
 * `--engine pgbench`: the installed pgbench runs the same workload (tpcb, custom) against the same
 * node, and its output becomes the same LoadSummary. Percentiles come from its per-transaction log
 * (--log, in a temp dir removed afterwards); its CPU from the shell's `times` after it exits.
 * The password reaches pgbench in PGPASSWORD only.
 */

/** pgbench to run: --pgbench > PRODHOME_PGBENCH > PATH > the newest /usr/lib/postgresql/N/bin. */
export function findPgbench(flag?: string): string {
  const given = flag ?? process.env.PRODHOME_PGBENCH;
  if (given) {
    if (!isExecutable(given)) throw new ProdhomeError('PGBENCH_MISSING', `pgbench not found at ${given}`, { hint: 'Give the path of a pgbench binary.' });
    return given;
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, 'pgbench');
    if (dir && isExecutable(p)) return p;
  }
  const root = '/usr/lib/postgresql';
  const majors = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const m of majors) {
    const p = path.join(root, m, 'bin', 'pgbench');
    if (isExecutable(p)) return p;
  }
  throw new ProdhomeError('PGBENCH_MISSING', 'pgbench is not installed (looked on PATH and in /usr/lib/postgresql/*/bin)', {
    hint: 'Install it (Debian: apt install postgresql-contrib or postgresql-client), pass --pgbench PATH, or use the built-in engine.',
  });
}

/** What pgbench cannot do, refused before anything runs. */
export function checkPgbench(p: Pick<PreparedLoad, 'workload' | 'name' | 'schedule'>, o: Pick<LoadOptions, 'seconds' | 'transactions' | 'maxErrors'>): void {
  if (!p.workload.pgbench) throw new ProdhomeError('USAGE', `--engine pgbench runs the tpcb and custom workloads, not ${p.name}`);
  if (p.schedule.kind !== 'constant') {
    throw new ProdhomeError('USAGE', `--engine pgbench: pgbench has no --schedule ${formatSchedule(p.schedule)} (only a constant -R rate); use the prodhome engine`);
  }
  if (o.seconds === undefined && o.transactions === undefined) throw new ProdhomeError('USAGE', '--engine pgbench needs -T SECONDS or -t TRANSACTIONS');
  if (o.maxErrors !== undefined) throw new ProdhomeError('USAGE', '--max-errors applies to the prodhome engine (pgbench ends a client at its first error)');
}

/** pgbench's arguments for a run (no connection settings: those go in the environment). */
export function pgbenchArgs(p: PreparedLoad, o: LoadOptions, logPrefix: string): string[] {
  checkPgbench(p, o);
  const script = p.workload.pgbench!(p.shared);
  // -n: no VACUUM/TRUNCATE of pgbench_history first, so both engines leave the tables alike.
  const args = ['-n', '-c', String(p.clients), '-j', String(p.threads), '-M', p.protocol, '--failures-detailed', '--log', `--log-prefix=${logPrefix}`];
  if (o.seconds !== undefined) args.push('-T', String(Math.max(1, Math.round(o.seconds))));
  if (o.transactions !== undefined) args.push('-t', String(o.transactions));
  if (o.rate !== undefined) args.push('-R', String(o.rate));
  if (o.progressSeconds !== undefined) args.push('-P', String(o.progressSeconds));
  if (o.seed !== undefined) args.push(`--random-seed=${o.seed}`);
  return [...args, ...script];
}

/** What pgbench printed at the end (stdout) and on the way (stderr). */
export interface PgbenchOutput {
  clients?: number;
  threads?: number;
  scale?: number;
  protocol?: string;
  processed?: number;
  failed?: number;
  serializationFailures?: number;
  deadlockFailures?: number;
  latencyAverageMs?: number;
  latencyStddevMs?: number;
  lagMs?: { avg: number; max: number };
  tps?: number;
  progress: string[];
  /** Clients pgbench aborted, by the first line of their error. */
  aborted: Map<string, number>;
  /** Other "pgbench: error:" lines. */
  errors: string[];
}

export function parsePgbenchOutput(stdout: string, stderr: string): PgbenchOutput {
  const num = (re: RegExp) => {
    const m = re.exec(stdout);
    return m ? Number(m[1]) : undefined;
  };
  const lag = /^rate limit schedule lag: avg ([\d.]+) \(max ([\d.]+)\) ms$/m.exec(stdout);
  const out: PgbenchOutput = {
    clients: num(/^number of clients: (\d+)$/m),
    threads: num(/^number of threads: (\d+)$/m),
    scale: num(/^scaling factor: (\d+)$/m),
    protocol: /^query mode: (\w+)$/m.exec(stdout)?.[1],
    processed: num(/^number of transactions actually processed: (\d+)/m),
    failed: num(/^number of failed transactions: (\d+)/m),
    serializationFailures: num(/^number of serialization failures: (\d+)/m),
    deadlockFailures: num(/^number of deadlock failures: (\d+)/m),
    latencyAverageMs: num(/^latency average = ([\d.]+) ms/m),
    latencyStddevMs: num(/^latency stddev = ([\d.]+) ms/m),
    lagMs: lag ? { avg: Number(lag[1]), max: Number(lag[2]) } : undefined,
    tps: num(/^tps = ([\d.]+)/m),
    progress: [],
    aborted: new Map(),
    errors: [],
  };
  for (const line of stderr.split('\n')) {
    if (line.startsWith('progress: ')) out.progress.push(line);
    const aborted = /^pgbench: error: client \d+ script \d+ aborted in command \d+ query \d+: (?:ERROR|FATAL): +(.*)$/.exec(line);
    if (aborted) out.aborted.set(aborted[1]!, (out.aborted.get(aborted[1]!) ?? 0) + 1);
    else if (line.startsWith('pgbench: error: ') && !line.includes('Run was aborted')) out.errors.push(line.slice('pgbench: error: '.length));
  }
  return out;
}

/** Reads pgbench's per-transaction logs: latency µs of each success, failures, schedule lag. */
export async function readPgbenchLogs(files: string[]): Promise<{ latency: Histogram; failed: number; lag: { count: number; sum: number; max: number } }> {
  const t = new Totals();
  for (const file of files) {
    const lines = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
    for await (const line of lines) {
      const entry = logEntry(line);
      if (entry) addLogEntry(t, entry.fields);
    }
  }
  return { latency: t.latency, failed: t.failed, lag: t.lag };
}

/** A line of pgbench's per-transaction log: client_id transaction_no time script_no time_epoch time_us [schedule_lag [retries]]. */
function logEntry(line: string): { second: number; fields: string[] } | undefined {
  const fields = line.split(' ');
  const second = Number(fields[4]);
  return fields.length >= 6 && Number.isFinite(second) ? { second, fields } : undefined;
}

/** Counts one logged transaction: its latency and schedule lag (µs), or a failure; skipped ones not at all. */
function addLogEntry(t: Totals, f: string[]): void {
  if (f[2] === 'skipped') return;
  if (f[2] === 'failed') {
    t.failed++;
    return;
  }
  t.transactions++;
  t.latency.record(Number(f[2]));
  if (f[6] !== undefined) {
    const lag = Number(f[6]);
    t.lag.count++;
    t.lag.sum += lag;
    if (lag > t.lag.max) t.lag.max = lag;
  }
}

/**
 * Follows pgbench's per-transaction logs while it runs (one file per thread, appended as it goes)
 * and gives out each second's figures once every log has moved past that second — what the
 * sinks get from the prodhome engine every second. pgbench writes its logs in buffered blocks,
 * so at a few transactions per second a second arrives late, but complete.
 */
export class PgbenchLogTail {
  private readonly files = new Map<string, { offset: number; rest: string; lastSecond: number }>();
  private readonly seconds = new Map<number, Totals>();
  private done = -Infinity;
  private first?: number;

  constructor(
    private readonly dir: string,
    private readonly prefix = 'log.',
  ) {}

  /** Reads what the logs gained; returns the seconds now complete, oldest first (all of them when `final`). */
  poll(final = false): SecondStats[] {
    for (const name of fs.readdirSync(this.dir)) {
      if (!name.startsWith(this.prefix)) continue;
      let f = this.files.get(name);
      if (!f) this.files.set(name, (f = { offset: 0, rest: '', lastSecond: -Infinity }));
      const text = this.readFrom(path.join(this.dir, name), f);
      const lines = (f.rest + text).split('\n');
      f.rest = lines.pop()!;
      for (const line of lines) this.add(line, f);
    }
    // A second is complete when every log has a transaction that ended after it.
    const upTo = final ? Infinity : Math.min(...[...this.files.values()].map((f) => f.lastSecond)) - 1;
    const ready = [...this.seconds.keys()].filter((s) => s <= upTo).sort((a, b) => a - b);
    return ready.map((s) => {
      const t = this.seconds.get(s)!;
      this.seconds.delete(s);
      this.done = Math.max(this.done, s);
      this.first ??= s;
      return { ...t.second(s - this.first), at: (s + 1) * 1000 };
    });
  }

  private readFrom(file: string, f: { offset: number }): string {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch {
      return '';
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size <= f.offset) return '';
      const b = Buffer.allocUnsafe(size - f.offset);
      const n = fs.readSync(fd, b, 0, b.length, f.offset);
      f.offset += n;
      return b.toString('utf8', 0, n);
    } finally {
      fs.closeSync(fd);
    }
  }

  private add(line: string, f: { lastSecond: number }): void {
    const entry = logEntry(line);
    if (!entry) return;
    f.lastSecond = Math.max(f.lastSecond, entry.second);
    if (entry.second <= this.done) return; // a second already given out stays as it was
    let t = this.seconds.get(entry.second);
    if (!t) this.seconds.set(entry.second, (t = new Totals()));
    addLogEntry(t, entry.fields);
  }
}

/** Runs pgbench and reports its run as a LoadSummary. */
export async function runPgbench(p: PreparedLoad, o: LoadOptions, pgbenchPath: string): Promise<LoadSummary> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-pgbench-'));
  try {
    const prefix = path.join(dir, 'log');
    const args = pgbenchArgs(p, o, prefix);
    const c = o.connection;
    const env = { ...process.env, PGHOST: c.host, PGPORT: String(c.port), PGUSER: c.user, PGDATABASE: c.database, PGPASSWORD: c.password ?? '', PGAPPNAME: 'prodhome load (pgbench)' };
    // `times` after pgbench exits prints the CPU its children used; fd 3 keeps it apart from pgbench's output.
    const child = spawn('/bin/sh', ['-c', '"$0" "$@"; s=$?; times >&3; exit $s', pgbenchPath, ...args], { env, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let times = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stdio[3]!.on('data', (d) => (times += d));
    const errLines = readline.createInterface({ input: child.stderr! });
    errLines.on('line', (line) => {
      stderr += `${line}\n`;
      if (line.startsWith('progress: ')) o.onProgress?.(line);
    });
    // Each second's figures for the sinks, from the logs as pgbench writes them.
    const tail = o.onSecond ? new PgbenchLogTail(dir) : undefined;
    const report = (final: boolean) => {
      for (const second of tail!.poll(final)) o.onSecond!(second);
    };
    const ticker = tail ? setInterval(() => report(false), 1000) : undefined;
    const abort = () => child.kill('SIGINT');
    o.signal?.addEventListener('abort', abort);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (exitCode) => resolve(exitCode));
    }).finally(() => {
      o.signal?.removeEventListener('abort', abort);
      clearInterval(ticker);
    });
    if (tail) report(true);

    const out = parsePgbenchOutput(stdout, stderr);
    const interrupted = o.signal?.aborted ?? false;
    if (out.tps === undefined && out.aborted.size === 0 && !interrupted) {
      // pgbench's own words, as it printed them (a script error: file:line, the line, a caret).
      const said = (stderr || stdout).replace(/\s+$/, '').split('\n').filter((l) => !l.startsWith('progress: ')).slice(-20).join('\n  ');
      throw new ProdhomeError('PGBENCH_FAILED', `pgbench failed (exit ${code}) on ${o.node}:\n  ${said}`, { hint: `It ran as: pgbench ${args.join(' ')}` });
    }
    const logs = await readPgbenchLogs(fs.readdirSync(dir).filter((f) => f.startsWith('log.')).map((f) => path.join(dir, f)));
    const lat = latencyMs(logs.latency);
    const processed = out.processed ?? logs.latency.count;
    const failed = out.failed ?? logs.failed;
    const tps = out.tps ?? 0;

    const errors: ErrorSummary[] = [];
    const failure = (code: string, count: number | undefined, message: string) => {
      if (count) errors.push({ code, name: SQLSTATE_NAMES[code], count, message });
    };
    failure('40001', out.serializationFailures, 'could not serialize access (pgbench counts these as failed transactions)');
    failure('40P01', out.deadlockFailures, 'deadlock detected (pgbench counts these as failed transactions)');
    for (const [message, count] of out.aborted) failure('ABORTED', count, `pgbench aborted the client: ${message}`);

    const cpu = [...times.matchAll(/(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/g)][1]; // line 2: the children's user and system time
    const secs = (m?: string, s?: string) => Number(m ?? 0) * 60 + Number(s ?? 0);
    return {
      workload: p.name,
      description: p.workload.plan(p.shared).summary,
      engine: 'pgbench',
      node: o.node,
      server: `${c.host}:${c.port}`,
      clients: out.clients ?? p.clients,
      threads: out.threads ?? p.threads,
      protocol: out.protocol ?? p.protocol,
      schedule: formatSchedule(p.schedule),
      rate: o.rate,
      requested: { seconds: o.seconds, transactionsPerClient: o.transactions },
      seconds: tps > 0 ? Number((processed / tps).toFixed(3)) : 0,
      transactions: processed,
      failed,
      tps,
      latencyMs: logs.latency.count ? lat : { ...lat, avg: out.latencyAverageMs ?? 0, stddev: out.latencyStddevMs ?? 0 },
      lagMs: logs.lag.count ? { avg: Number((logs.lag.sum / logs.lag.count / 1000).toFixed(3)), max: Number((logs.lag.max / 1000).toFixed(3)) } : out.lagMs,
      errors,
      clientCpu: cpuSummary(secs(cpu?.[1], cpu?.[2]), secs(cpu?.[3], cpu?.[4]), processed + failed),
      stoppedBy: interrupted ? 'interrupted' : o.transactions !== undefined ? 'transactions' : 'duration',
      seed: o.seed,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
