import crypto from 'node:crypto';
import { ProdhomeError, messageOf } from '../errors.js';
import { connect, type ConnectionInfo } from '../pg/index.js';
import { formatSchedule, paceOf, parseSchedule, type Pace, type ScheduleSpec } from './schedule.js';
import { progressLine, Totals, type LoadSummary, type SecondStats } from './summary.js';
import { inProcessThread, workerThread, type ThreadHandle } from './thread-handle.js';
import { now, type IntervalData, type ThreadJob } from './thread.js';
import type { AnyWorkload } from './workloads/index.js';
import { workloadNamed, workloads, type WorkloadName } from './workloads/index.js';
import type { Engine, WorkloadOptions } from './types.js';
import { ConnectionLost, type Protocol } from './wire.js';

/** A load run as the CLI (or an experiment) asks for it. */
export interface LoadOptions {
  workload: string;
  options?: WorkloadOptions;
  node: string;
  connection: ConnectionInfo;
  clients?: number;
  threads?: number;
  /** -T: seconds. Neither this nor `transactions`: run until `signal` aborts. */
  seconds?: number;
  /** -t: transactions per client. */
  transactions?: number;
  /** -R: transactions per second, all clients together. */
  rate?: number;
  schedule?: string;
  protocol?: Protocol;
  maxErrors?: number;
  seed?: number;
  /** -P: a progress line every N seconds, handed to onProgress. */
  progressSeconds?: number;
  onProgress?: (line: string) => void;
  /** Called once per second of the run with that second's figures: the hook for metrics sinks. */
  onSecond?: (stats: SecondStats) => void;
  /** Aborting it ends the run early (Ctrl-C); the summary still comes back. */
  signal?: AbortSignal;
  /** Which engine will run it (default prodhome): under pgbench, prepare leaves the script to pgbench. */
  engine?: Engine;
}

/** Everything checked and read before any client connects: a run's fixed settings. */
export interface PreparedLoad {
  workload: AnyWorkload;
  name: WorkloadName;
  options: WorkloadOptions;
  shared: unknown;
  schedule: ScheduleSpec;
  pace: Pace;
  clients: number;
  threads: number;
  protocol: Protocol;
}

export const PROTOCOLS: Protocol[] = ['simple', 'extended', 'prepared'];

/** The checks that need no server: workload, options, schedule. Throws a USAGE error naming the flag. */
export function checkLoad(o: Omit<LoadOptions, 'connection' | 'node'>): Omit<PreparedLoad, 'shared'> {
  const workload = workloadNamed(o.workload);
  if (!workload) throw new ProdhomeError('USAGE', `unknown workload "${o.workload}" (expected ${Object.keys(workloads).join(', ')})`);
  const options = o.options ?? {};
  for (const key of ['file', 'weights', 'scale', 'defines'] as const) {
    const given = options[key] !== undefined && !(key === 'defines' && Object.keys(options.defines ?? {}).length === 0);
    if (given && !workload.takes.includes(key)) {
      const flag = { file: 'a script file', weights: '--weights', scale: '-s/--scale', defines: '-D/--define' }[key];
      throw new ProdhomeError('USAGE', `the ${workload.name} workload does not take ${flag}`);
    }
  }
  const clients = positiveInt(o.clients ?? 1, '-c');
  const threads = Math.min(positiveInt(o.threads ?? 1, '-j'), clients); // as pgbench: never more threads than clients
  if (o.seconds !== undefined && o.transactions !== undefined) throw new ProdhomeError('USAGE', 'specify either a number of transactions (-t) or a duration (-T), not both');
  if (o.seconds !== undefined && !(o.seconds > 0)) throw new ProdhomeError('USAGE', `-T ${o.seconds}: the duration must be a number of seconds above 0`);
  if (o.transactions !== undefined) positiveInt(o.transactions, '-t');
  if (o.maxErrors !== undefined && !(Number.isInteger(o.maxErrors) && o.maxErrors >= 0)) throw new ProdhomeError('USAGE', `--max-errors ${o.maxErrors}: expected a whole number, 0 or more`);
  if (o.progressSeconds !== undefined) positiveInt(o.progressSeconds, '-P');
  const protocol = o.protocol ?? 'simple';
  if (!PROTOCOLS.includes(protocol)) throw new ProdhomeError('USAGE', `-M ${protocol}: expected ${PROTOCOLS.join(', ')}`);
  // -R alone means a constant rate, even for a workload whose default schedule is its own pauses.
  const schedule = parseSchedule(o.schedule ?? (o.rate === undefined ? workload.defaultSchedule : undefined) ?? 'constant');
  const pace = paceOf(schedule, o.rate);
  return { workload, name: workload.name as WorkloadName, options, schedule, pace, clients, threads, protocol };
}

/** Checks the options, then runs the workload's prepare on the node (one short connection). */
export async function prepareLoad(o: LoadOptions): Promise<PreparedLoad> {
  const checked = checkLoad(o);
  const sql = connect(o.connection);
  try {
    return { ...checked, shared: await checked.workload.prepare({ sql, node: o.node, options: checked.options, engine: o.engine ?? 'prodhome' }) };
  } catch (e) {
    throw connectError(e, o.node, o.connection);
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/** Runs a load: prepares, connects every client, runs them, and sums it all up. */
export async function runLoad(o: LoadOptions): Promise<LoadSummary> {
  return runPrepared(await prepareLoad(o), o);
}

export async function runPrepared(p: PreparedLoad, o: LoadOptions): Promise<LoadSummary> {
  const seed = o.seed ?? crypto.randomInt(0, 2 ** 31);
  const cpu0 = process.cpuUsage();

  // Per-second figures: a second is complete once every thread has reported it.
  const seconds = new Map<number, { totals: Totals; reports: number }>();
  const all = new Totals();
  let emitted = -1;
  let window = new Totals();
  let windowStart = 0;
  let start = 0; // the run's clock: every thread starts on it
  const emit = (second: number, t: Totals) => {
    o.onSecond?.({ ...t.second(second), at: start + (second + 1) * 1000 });
    // Like pgbench, progress covers whole intervals of the run, not the tail of in-flight transactions after -T.
    if (o.progressSeconds && o.onProgress && (o.seconds === undefined || second < o.seconds)) {
      window.add(t);
      if ((second + 1 - windowStart) >= o.progressSeconds) {
        o.onProgress(progressLine(window.second(second, second + 1 - windowStart), second + 1));
        window = new Totals();
        windowStart = second + 1;
      }
    }
  };
  const flush = (upTo: number) => {
    while (emitted < upTo) {
      const s = seconds.get(++emitted);
      emit(emitted, s?.totals ?? new Totals());
      seconds.delete(emitted);
    }
  };
  let handles: ThreadHandle[] = [];
  const stopAll = () => handles.forEach((h) => h.stop());
  let exceeded = false;
  const onInterval = (d: IntervalData) => {
    all.add(d);
    let s = seconds.get(d.second);
    if (!s) seconds.set(d.second, (s = { totals: new Totals(), reports: 0 }));
    s.totals.add(d);
    if (++s.reports === p.threads && d.second === emitted + 1) {
      let k = d.second;
      while (seconds.get(k)?.reports === p.threads) k++;
      flush(k - 1);
    }
    if (o.maxErrors !== undefined && !exceeded && all.errorCount() > o.maxErrors) {
      exceeded = true;
      stopAll();
    }
  };

  const jobs: ThreadJob[] = [];
  for (let t = 0; t < p.threads; t++) {
    const from = Math.floor((t * p.clients) / p.threads);
    const to = Math.floor(((t + 1) * p.clients) / p.threads);
    jobs.push({
      connection: o.connection,
      applicationName: 'prodhome load',
      workload: p.name,
      shared: p.shared,
      options: p.options,
      clientIds: Array.from({ length: to - from }, (_, i) => from + i),
      clients: p.clients,
      threads: p.threads,
      pace: p.pace,
      protocol: p.protocol,
      durationMs: o.seconds === undefined ? undefined : o.seconds * 1000,
      transactionsPerClient: o.transactions,
      maxErrors: o.maxErrors,
      seed,
    });
  }
  // Thread 0 runs here, as pgbench's first thread runs in its main thread: -j 2 is two event loops, not three.
  handles = jobs.map((job, t) => (t === 0 ? inProcessThread(job, onInterval) : workerThread(job, onInterval)));
  const abort = () => stopAll();
  o.signal?.addEventListener('abort', abort);
  let end = 0;
  try {
    const connected = await Promise.allSettled(handles.map((h) => h.connect()));
    const failed = connected.find((c) => c.status === 'rejected');
    if (failed) throw connectError((failed as PromiseRejectedResult).reason, o.node, o.connection, p.clients);
    // Every thread starts on the same clock, shortly after the last connection is up.
    start = now() + 20;
    const ends = await Promise.all(handles.map((h) => h.run(start)));
    end = Math.max(...ends.map((e) => e.end));
    exceeded ||= ends.some((e) => e.exceeded);
  } finally {
    o.signal?.removeEventListener('abort', abort);
    await Promise.all(handles.map((h) => h.dispose()));
  }
  flush(Math.max(emitted, ...seconds.keys()));
  const cpu = process.cpuUsage(cpu0);

  const elapsed = Math.max(0.001, (end - start) / 1000);
  const lat = all.second(0, elapsed);
  const attempts = all.transactions + all.failed;
  const described = p.workload.plan(p.shared).summary;
  return {
    workload: p.name,
    description: described,
    engine: 'prodhome',
    node: o.node,
    server: `${o.connection.host}:${o.connection.port}`,
    clients: p.clients,
    threads: p.threads,
    protocol: p.protocol,
    schedule: formatSchedule(p.schedule),
    rate: o.rate,
    requested: { seconds: o.seconds, transactionsPerClient: o.transactions },
    seconds: Number(elapsed.toFixed(3)),
    transactions: all.transactions,
    failed: all.failed,
    tps: Number((all.transactions / elapsed).toFixed(6)),
    latencyMs: lat.latencyMs,
    lagMs: all.lagMs(),
    errors: all.errorList(),
    clientCpu: cpuSummary(cpu.user / 1e6, cpu.system / 1e6, attempts),
    stoppedBy: exceeded ? 'max-errors' : o.signal?.aborted ? 'interrupted' : o.transactions !== undefined ? 'transactions' : 'duration',
    seed,
  };
}

export function cpuSummary(userSeconds: number, systemSeconds: number, transactions: number): LoadSummary['clientCpu'] {
  const seconds = userSeconds + systemSeconds;
  const r = (x: number, d = 3) => Number(x.toFixed(d));
  return { userSeconds: r(userSeconds), systemSeconds: r(systemSeconds), seconds: r(seconds), perTransactionMicros: r(transactions ? (seconds * 1e6) / transactions : 0, 1) };
}

/** A failure to reach the node, in words that say what to do; anything else passes through. */
export function connectError(e: unknown, node: string, c: ConnectionInfo, clients?: number): unknown {
  if (e instanceof ProdhomeError) return e;
  const code = e instanceof ConnectionLost ? e.code : (e as { code?: string }).code;
  const where = `${node} (${c.host}:${c.port})`;
  if (code === 'ECONNREFUSED' || code === 'CONNECT_TIMEOUT' || code === '08006' || code === '08001') {
    return new ProdhomeError('LOAD_CONNECT', `${where}: cannot connect: ${messageOf(e)}`, { hint: 'Is the lab up? Run: prodhome up (prodhome status shows each node).', cause: e });
  }
  if (code === '53300') {
    return new ProdhomeError('LOAD_CONNECT', `${where}: the server refused ${clients ?? 'the'} connections: ${messageOf(e)}`, {
      hint: 'Use fewer clients (-c), or raise max_connections for this node in prodhome.yaml.',
      cause: e,
    });
  }
  if (e instanceof ConnectionLost) return new ProdhomeError('LOAD_CONNECT', `${where}: cannot connect: ${e.message} (${e.code})`, { cause: e });
  return e;
}

function positiveInt(n: number, flag: string): number {
  if (!Number.isInteger(n) || n < 1) throw new ProdhomeError('USAGE', `${flag} ${n}: expected a whole number, 1 or more`);
  return n;
}
