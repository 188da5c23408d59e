import { Histogram, type HistogramData } from './histogram.js';
import type { ErrorCount, IntervalData } from './thread.js';

/** Latency figures in milliseconds. */
export interface LatencyMs {
  avg: number;
  stddev: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export interface ErrorSummary {
  /** SQLSTATE (08xxx for connection failures), or ABORTED for a pgbench client that gave up. */
  code: string;
  /** The condition name, for the common codes. */
  name?: string;
  count: number;
  /** The first message seen. */
  message: string;
}

/** What a run did, the same for both engines; `--json` prints it as is. */
export interface LoadSummary {
  workload: string;
  /** What ran, in a few words ("TPC-B (sort of), scale 1"). */
  description: string;
  engine: 'prodhome' | 'pgbench';
  node: string;
  /** host:port */
  server: string;
  clients: number;
  threads: number;
  protocol: string;
  schedule: string;
  /** -R, transactions per second for all clients together. */
  rate?: number;
  requested: { seconds?: number; transactionsPerClient?: number };
  /** From the first transaction's start to the last one's end. */
  seconds: number;
  transactions: number;
  failed: number;
  tps: number;
  latencyMs: LatencyMs;
  /** Under a rate (-R, ramp, pulses at a rate): how late transactions started against their schedule. */
  lagMs?: { avg: number; max: number };
  errors: ErrorSummary[];
  /** CPU the load generator itself used: this process (all its threads), or the pgbench process. */
  clientCpu: { userSeconds: number; systemSeconds: number; seconds: number; perTransactionMicros: number };
  stoppedBy: 'duration' | 'transactions' | 'interrupted' | 'max-errors';
  seed?: number;
}

/** Per-second figures, for `onSecond` (the future metrics sinks) and -P progress. */
export interface SecondStats {
  second: number;
  /** When the second ended, ms since the epoch. */
  at?: number;
  transactions: number;
  failed: number;
  tps: number;
  latencyMs: LatencyMs;
  lagMs?: { avg: number; max: number };
  errors: Record<string, number>;
}

export function latencyMs(h: Histogram): LatencyMs {
  const ms = (us: number) => round(us / 1000);
  return { avg: ms(h.mean()), stddev: ms(h.stddev()), p50: ms(h.percentile(50)), p95: ms(h.percentile(95)), p99: ms(h.percentile(99)), max: ms(h.count ? h.max : 0) };
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits));

/** Adds intervals together (several threads' same second, or several seconds). */
export class Totals {
  latency = new Histogram();
  transactions = 0;
  failed = 0;
  lag = { count: 0, sum: 0, max: 0 };
  errors = new Map<string, ErrorCount>();

  add(d: IntervalData | Totals): this {
    if (d instanceof Totals) {
      this.latency.add(d.latency.toData());
    } else this.latency.add(d.latency);
    this.transactions += d.transactions;
    this.failed += d.failed;
    this.lag.count += d.lag.count;
    this.lag.sum += d.lag.sum;
    this.lag.max = Math.max(this.lag.max, d.lag.max);
    const errors = d instanceof Totals ? d.errors : new Map(Object.entries(d.errors));
    for (const [code, e] of errors) {
      const known = this.errors.get(code);
      if (known) known.count += e.count;
      else this.errors.set(code, { ...e });
    }
    return this;
  }

  errorCount(): number {
    let n = 0;
    for (const e of this.errors.values()) n += e.count;
    return n;
  }

  lagMs(): { avg: number; max: number } | undefined {
    return this.lag.count ? { avg: round(this.lag.sum / this.lag.count / 1000), max: round(this.lag.max / 1000) } : undefined;
  }

  errorList(): ErrorSummary[] {
    return [...this.errors].sort((a, b) => b[1].count - a[1].count).map(([code, e]) => ({ code, name: SQLSTATE_NAMES[code], count: e.count, message: e.message }));
  }

  second(second: number, seconds = 1): SecondStats {
    return {
      second,
      transactions: this.transactions,
      failed: this.failed,
      tps: round(this.transactions / seconds, 1),
      latencyMs: latencyMs(this.latency),
      lagMs: this.lagMs(),
      errors: Object.fromEntries([...this.errors].map(([k, v]) => [k, v.count])),
    };
  }

  static ofHistogram(h: HistogramData): Totals {
    const t = new Totals();
    t.latency.add(h);
    t.transactions = h.count;
    return t;
  }
}

/** Names of the SQLSTATEs a load run meets most. */
export const SQLSTATE_NAMES: Record<string, string> = {
  '08000': 'connection_exception',
  '08001': 'sqlclient_unable_to_establish_sqlconnection',
  '08003': 'connection_does_not_exist',
  '08004': 'sqlserver_rejected_establishment_of_sqlconnection',
  '08006': 'connection_failure',
  '23502': 'not_null_violation',
  '23503': 'foreign_key_violation',
  '23505': 'unique_violation',
  '25P02': 'in_failed_sql_transaction',
  '28P01': 'invalid_password',
  '40001': 'serialization_failure',
  '40P01': 'deadlock_detected',
  '42601': 'syntax_error',
  '42703': 'undefined_column',
  '42P01': 'undefined_table',
  '53300': 'too_many_connections',
  '55P03': 'lock_not_available',
  '57014': 'query_canceled',
  '57P01': 'admin_shutdown',
  '57P03': 'cannot_connect_now',
};

/** The summary as pgbench prints its own, plus percentiles, failures by SQLSTATE and client CPU. */
export function renderSummary(s: LoadSummary): string {
  const f3 = (x: number) => x.toFixed(3);
  const total = s.transactions + s.failed;
  const lines = [
    `workload: ${s.workload} (${s.description})`,
    `engine: ${s.engine}`,
    `node: ${s.node} (${s.server})`,
    `query mode: ${s.protocol}`,
    `number of clients: ${s.clients}`,
    `number of threads: ${s.threads}`,
    `schedule: ${s.schedule}${s.rate !== undefined ? `, rate ${s.rate} tx/s` : ''}`,
    s.requested.seconds !== undefined ? `duration: ${s.requested.seconds} s` : s.requested.transactionsPerClient !== undefined ? `number of transactions per client: ${s.requested.transactionsPerClient}` : 'duration: until interrupted',
    `number of transactions actually processed: ${s.transactions}`,
    `number of failed transactions: ${s.failed} (${f3(total ? (100 * s.failed) / total : 0)}%)`,
    `latency average = ${f3(s.latencyMs.avg)} ms`,
    `latency stddev = ${f3(s.latencyMs.stddev)} ms`,
    `latency p50 = ${f3(s.latencyMs.p50)} ms, p95 = ${f3(s.latencyMs.p95)} ms, p99 = ${f3(s.latencyMs.p99)} ms, max = ${f3(s.latencyMs.max)} ms`,
  ];
  if (s.lagMs) lines.push(`rate limit schedule lag: avg ${f3(s.lagMs.avg)} (max ${f3(s.lagMs.max)}) ms`);
  lines.push(`tps = ${s.tps.toFixed(6)} (without initial connection time)`);
  lines.push(`client CPU: ${s.clientCpu.seconds.toFixed(2)} s (user ${s.clientCpu.userSeconds.toFixed(2)}, system ${s.clientCpu.systemSeconds.toFixed(2)}), ${s.clientCpu.perTransactionMicros.toFixed(1)} µs per transaction`);
  if (s.errors.length) {
    lines.push('failures by SQLSTATE:');
    for (const e of s.errors) lines.push(`  ${e.code}${e.name ? ` ${e.name}` : ''}: ${e.count} (${e.message})`);
  }
  if (s.stoppedBy === 'interrupted') lines.push('stopped early: interrupted');
  if (s.stoppedBy === 'max-errors') lines.push('stopped early: more errors than --max-errors');
  return lines.join('\n');
}

/** A -P line in pgbench's words. */
export function progressLine(s: SecondStats, elapsedSeconds: number): string {
  const lag = s.lagMs ? `, schedule lag ${s.lagMs.avg.toFixed(3)} ms` : '';
  return `progress: ${elapsedSeconds.toFixed(1)} s, ${s.tps.toFixed(1)} tps, lat ${s.latencyMs.avg.toFixed(3)} ms stddev ${s.latencyMs.stddev.toFixed(3)}, ${s.failed} failed${lag}`;
}
