import type { ConnectionInfo } from '../pg/index.js';
import { Histogram, type HistogramData } from './histogram.js';
import { Random } from './random.js';
import { Arrivals, gateOpenAt, type Pace } from './schedule.js';
import { PreciseTimers } from './timers.js';
import type { ScriptSession, Step, WorkloadOptions } from './types.js';
import { ConnectionLost, WireConnection, type Protocol, type ServerError } from './wire.js';
import { workloadNamed, type WorkloadName } from './workloads/index.js';

/**
 * One thread's share of a run: its clients, each with its own connection, running transactions
 * as the pace says. The same code runs in the main thread (-j 1) and in worker threads, so it
 * takes and returns plain data only. Every second it reports what completed in that second.
 */
export interface ThreadJob {
  connection: ConnectionInfo;
  applicationName: string;
  workload: WorkloadName;
  shared: unknown;
  options: WorkloadOptions;
  /** Global client ids this thread runs. */
  clientIds: number[];
  clients: number;
  threads: number;
  pace: Pace;
  protocol: Protocol;
  durationMs?: number;
  transactionsPerClient?: number;
  /** Stop once more errors than this happened (in this thread; the main thread counts all). */
  maxErrors?: number;
  seed: number;
}

export interface ErrorCount {
  count: number;
  /** The first message seen with this code. */
  message: string;
}

/** What completed during one second of the run (by completion time), in one thread or all. */
export interface IntervalData {
  /** 0 for [0 s, 1 s) after the start, and so on. */
  second: number;
  transactions: number;
  failed: number;
  /** Latency of successful transactions, µs. */
  latency: HistogramData;
  /** Schedule lag (start minus scheduled start) under arrivals, µs. */
  lag: { count: number; sum: number; max: number };
  errors: Record<string, ErrorCount>;
}

const origin = performance.timeOrigin;
export const now = (): number => origin + performance.now();

const NO_STEPS: readonly Step[] = [];

class Interval {
  latency = new Histogram();
  transactions = 0;
  failed = 0;
  lag = { count: 0, sum: 0, max: 0 };
  errors: Record<string, ErrorCount> = {};
  constructor(readonly second: number) {}

  data(): IntervalData {
    return { second: this.second, transactions: this.transactions, failed: this.failed, latency: this.latency.toData(), lag: this.lag, errors: this.errors };
  }
}

export class LoadThread {
  private connections: (WireConnection | undefined)[] = [];
  private stopping = false;
  private readonly timers = new PreciseTimers(now, () => !this.connections.some((c) => c?.busy));
  private start = 0;
  private deadline = Infinity;
  private current = new Interval(0);
  private tick?: NodeJS.Timeout;
  private errorsTotal = 0;
  private fatal?: unknown;
  private arrivals?: Arrivals;
  /** Set when this thread stopped because of --max-errors. */
  exceeded = false;

  constructor(
    private readonly job: ThreadJob,
    private readonly onInterval: (d: IntervalData) => void,
  ) {}

  /** Opens every client's connection; rejects (closing the rest) if any cannot connect. */
  async connect(): Promise<void> {
    const settled = await Promise.allSettled(this.job.clientIds.map(() => WireConnection.connect(this.job.connection, this.job.applicationName)));
    this.connections = settled.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) {
      this.close();
      throw (failed as PromiseRejectedResult).reason;
    }
  }

  /** Runs every client from `startEpochMs` until the end; resolves at the end with its time. */
  async run(startEpochMs: number): Promise<number> {
    const { job } = this;
    this.start = startEpochMs;
    if (job.durationMs !== undefined) this.deadline = startEpochMs + job.durationMs;
    if (job.pace.kind === 'arrivals') this.arrivals = new Arrivals(job.pace.shape, new Random(job.seed ^ 0x5eed ^ job.clientIds[0]!), 1 / job.threads);
    await this.sleepUntil(startEpochMs);
    this.scheduleTick();
    try {
      await Promise.all(job.clientIds.map((id, i) => this.client(id, i)));
    } finally {
      clearTimeout(this.tick);
      this.close();
    }
    const end = now();
    this.advance(end);
    this.onInterval(this.current.data()); // the last, partial second
    if (this.fatal) throw this.fatal;
    return end;
  }

  private readonly sleeper = (ms: number) => this.sleep(ms);

  /** Asks every client to finish its transaction and stop; wakes sleeping ones. */
  stop(): void {
    this.stopping = true;
    this.timers.wakeAll();
  }

  private close(): void {
    this.timers.close();
    for (const c of this.connections) c?.close();
  }

  private async client(clientId: number, slot: number): Promise<void> {
    const { job } = this;
    const random = new Random((job.seed + Math.imul(clientId + 1, 0x9e3779b1)) >>> 0);
    const workload = workloadNamed(job.workload)!;
    const source = workload.client(job.shared, { clientId, clients: job.clients, random, seed: job.seed });
    const pace = job.pace;
    // One session object per client, its connection swapped on reconnect: nothing allocated per transaction.
    const session: ScriptSession = { conn: undefined as unknown as WireConnection, protocol: job.protocol, sleep: this.sleeper };
    let done = 0;
    let credit = 0; // think time overslept last time (timers wake late), taken off the next pause
    try {
      while (!this.stopping && (job.transactionsPerClient === undefined || done < job.transactionsPerClient)) {
        let scheduled: number | undefined;
        if (this.arrivals) {
          scheduled = this.start + this.arrivals.next() * 1000;
          if (scheduled >= this.deadline) {
            await this.sleepUntil(this.deadline); // a run lasts its -T even when the schedule is quiet at the end
            break;
          }
          await this.sleepUntil(scheduled);
        } else if (pace.kind === 'gate') {
          // Timers may fire a little early: check again until the gate is really open.
          for (let open = this.gateOpen(pace); open > now() && !this.stopping; open = this.gateOpen(pace)) {
            if (open >= this.deadline) break;
            await this.sleep(Math.max(1, open - now()));
          }
          if (this.gateOpen(pace) >= this.deadline) {
            await this.sleepUntil(this.deadline);
            break;
          }
        }
        if (this.stopping || now() >= this.deadline) break;

        let conn = this.connections[slot];
        if (!conn?.alive) {
          conn = await this.reconnect(slot);
          if (!conn) {
            done++; // a transaction that could not even start: failed, and counted against -t
            continue;
          }
        }
        const began = now();
        let failure: ServerError | undefined;
        if (source.run) {
          try {
            session.conn = conn;
            const f = await source.run(session);
            if (f) {
              failure = f;
              // Like an application would: end the failed transaction before the next one.
              if (f.inTransaction && conn.alive) await conn.query('ROLLBACK').catch(() => undefined);
            }
          } catch (e) {
            if (!(e instanceof ConnectionLost)) throw e;
            failure = { code: e.code, message: e.message };
          }
        }
        const steps = source.run ? NO_STEPS : source.next();
        for (const step of steps) {
          if ('sleepMicros' in step) {
            await this.sleep(step.sleepMicros / 1000);
            continue;
          }
          try {
            const o = await conn.run(step.statement, step.values, job.protocol);
            if (o.error) {
              failure = o.error;
              // Like an application would: end the failed transaction before the next one.
              if (o.status !== 'I') await conn.query('ROLLBACK').catch(() => undefined);
              break;
            }
          } catch (e) {
            if (!(e instanceof ConnectionLost)) throw e;
            failure = { code: e.code, message: e.message };
            break;
          }
        }
        const end = now();
        done++;
        this.advance(end);
        if (failure) {
          this.current.failed++;
          this.error(failure);
        } else {
          this.current.transactions++;
          this.current.latency.record((end - (scheduled ?? began)) * 1000);
          if (scheduled !== undefined) {
            const lag = Math.max(0, began - scheduled) * 1000;
            this.current.lag.count++;
            this.current.lag.sum += lag;
            if (lag > this.current.lag.max) this.current.lag.max = lag;
          }
        }
        if (pace.kind === 'think') {
          const want = random.rayleigh(pace.meanMs) - credit;
          if (want > 0) {
            const t0 = now();
            await this.sleep(want);
            credit = now() - t0 - want;
          } else credit = -want;
        }
      }
    } catch (e) {
      // A bug or a script error (division by zero…): stop the whole thread and report it.
      this.fatal ??= e;
      this.stop();
    }
  }

  /** A new connection for a client whose connection died; undefined (error counted, after a pause) if the server will not have it. */
  private async reconnect(slot: number): Promise<WireConnection | undefined> {
    try {
      const c = await WireConnection.connect(this.job.connection, this.job.applicationName, 5000);
      if (this.stopping) {
        c.close();
        return undefined;
      }
      this.connections[slot] = c;
      return c;
    } catch (e) {
      this.advance(now());
      this.current.failed++;
      this.error(e instanceof ConnectionLost ? { code: e.code, message: e.message } : { code: '08001', message: String(e) });
      await this.sleep(1000);
      return undefined;
    }
  }

  private error(e: ServerError): void {
    const known = this.current.errors[e.code];
    if (known) known.count++;
    else this.current.errors[e.code] = { count: 1, message: e.message };
    this.errorsTotal++;
    if (this.job.maxErrors !== undefined && this.errorsTotal > this.job.maxErrors && !this.exceeded) {
      this.exceeded = true;
      this.stop();
    }
  }

  /** Reports every second that ended before `t`. */
  private advance(t: number): void {
    const second = Math.floor((t - this.start) / 1000);
    while (second > this.current.second) {
      this.onInterval(this.current.data());
      this.current = new Interval(this.current.second + 1);
    }
  }

  private scheduleTick(): void {
    const next = this.start + (this.current.second + 1) * 1000;
    this.tick = setTimeout(() => {
      this.advance(now());
      this.scheduleTick();
    }, Math.max(0, next - now()) + 1);
  }

  private gateOpen(pace: { onMs: number; offMs: number }): number {
    return this.start + gateOpenAt(pace, now() - this.start);
  }

  /** Waits until `t` (epoch ms, to the µs); stop() cuts it short. */
  private sleepUntil(t: number): Promise<void> {
    return this.stopping ? Promise.resolve() : this.timers.until(t);
  }

  /** Waits `ms` milliseconds, fractions included (\sleep 100 us is 0.1); stop() cuts it short. */
  private sleep(ms: number): Promise<void> {
    return this.sleepUntil(now() + ms);
  }
}
