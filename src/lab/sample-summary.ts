import { formatBytes } from '../config/index.js';
import type { Point } from '../sinks/index.js';

/**
 * `prodhome sample`'s live summary: one short line per node and sample (≤ 120 characters), or
 * with `wide` the whole lab on one line. End-to-end latency is the newest heartbeat's; once that
 * heartbeat is older than a few intervals it is shown as stale with its age, never as a
 * healthy-looking number from the past.
 */

export interface SummaryOptions {
  /** The sampling interval: the heartbeat is beaten once per sample. */
  intervalMs: number;
  wide?: boolean;
}

export const NARROW_WIDTH = 120;

/** A heartbeat older than this many intervals (and 3 s) no longer says how fast replication is. */
const STALE_INTERVALS = 3;

interface NodeFigures {
  node: string;
  down: boolean;
  tps: number;
  conns?: string;
  hit?: number;
  /** The publisher's side: the worst subscriber's replay lag. */
  lagBytes?: number;
  lagSeconds?: number;
  /** The subscriber's side: heartbeat latency and how old the heartbeat is. */
  e2e?: { seconds: number; ageSeconds: number; stale: boolean };
  cpu?: number;
  mem?: { rss: number; cache?: number; limit?: number; total: number };
}

export function sampleSummary(points: Point[], nodes: string[], opts: SummaryOptions): string[] {
  const time = new Date(points[0]?.time ?? Date.now()).toISOString().slice(11, 23);
  const figures = nodes.map((n) => figuresOf(points, n, opts.intervalMs));
  if (opts.wide) return [`${time}  ${figures.map((f) => `${f.node}: ${describe(f, true)}`).join(' | ')}`];
  const pad = Math.max(...nodes.map((n) => n.length));
  return figures.map((f) => {
    const line = `${time} ${f.node.padEnd(pad)}  ${describe(f, false)}`;
    return line.length <= NARROW_WIDTH ? line : `${line.slice(0, NARROW_WIDTH - 1)}…`;
  });
}

function figuresOf(points: Point[], node: string, intervalMs: number): NodeFigures {
  const of = (m: string) => points.filter((p) => p.measurement === m && p.tags.node === node);
  const num = (p: Point | undefined, field: string) => (typeof p?.fields[field] === 'number' ? (p.fields[field] as number) : undefined);
  if (num(of('pg_up')[0], 'up') !== 1) return { node, down: true, tps: 0 };
  const f: NodeFigures = { node, down: false, tps: of('pg_stat_database').reduce((s, p) => s + (num(p, 'xact_commit_rate') ?? 0), 0) };
  const conns = of('pg_connections_limit')[0];
  if (conns) f.conns = `${num(conns, 'used')}/${num(conns, 'max')}`;
  f.hit = num(of('pg_cache_hit').find((p) => p.tags.datname === 'postgres'), 'ratio');
  const senders = of('pg_replication');
  if (senders.length) {
    f.lagBytes = Math.max(0, ...senders.map((p) => num(p, 'replay_lag_bytes') ?? 0));
    f.lagSeconds = Math.max(0, ...senders.map((p) => num(p, 'replay_lag_seconds') ?? 0));
  }
  const beats = of('replication_heartbeat');
  if (beats.length) {
    const ageSeconds = Math.max(...beats.map((p) => num(p, 'age_seconds') ?? 0));
    const seconds = Math.max(...beats.map((p) => num(p, 'lag_seconds') ?? 0));
    f.e2e = { seconds, ageSeconds, stale: ageSeconds > Math.max(3, (STALE_INTERVALS * intervalMs) / 1000) };
  }
  const proc = of('process')[0];
  f.cpu = num(proc, 'cpu_percent');
  if (proc) {
    const total = num(proc, 'memory_bytes') ?? 0;
    f.mem = { total, rss: num(proc, 'memory_rss_bytes') ?? total, cache: num(proc, 'memory_cache_bytes'), limit: num(proc, 'memory_limit_bytes') };
  }
  return f;
}

/** 31.0M, 2.6K: a short form for a short line (binary units). */
const size = (n: number) => formatBytes(n).replace(/iB$/, '');

function describe(f: NodeFigures, wide: boolean): string {
  if (f.down) return 'DOWN';
  const parts = [`${f.tps.toFixed(0)} tps`, `${f.conns ?? '?'} conn`, `hit ${f.hit !== undefined ? (f.hit * 100).toFixed(1) : '?'}%`];
  // Lag of what this node sends, in bytes and seconds (pg_stat_replication's replay_lag).
  if (f.lagBytes !== undefined) parts.push(`send lag ${size(f.lagBytes)} ${f.lagSeconds!.toFixed(3)}s`);
  if (f.e2e) parts.push(f.e2e.stale ? `e2e STALE ${f.e2e.ageSeconds.toFixed(1)}s old` : `e2e ${(f.e2e.seconds * 1000).toFixed(1)}ms${wide ? ` (heartbeat ${f.e2e.ageSeconds.toFixed(1)}s old)` : ''}`);
  if (f.cpu !== undefined) parts.push(`cpu ${f.cpu.toFixed(0)}%`);
  if (f.mem) {
    const limit = f.mem.limit ? `/${size(f.mem.limit)}` : '';
    parts.push(f.mem.cache !== undefined ? `mem ${size(f.mem.rss)} rss+${size(f.mem.cache)} cache${limit}` : `mem ${size(f.mem.rss)}${limit}`);
  }
  return parts.join(wide ? ', ' : '  ');
}
