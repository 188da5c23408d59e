import type { NodeRole, ReplicationConfig } from '../config/index.js';
import type { Point } from '../sinks/index.js';

/**
 * The topology and overview the page shows at the top, from the agent's latest sample (in
 * memory, so they are as fresh as the sampler) and the lab's config (what should exist).
 */

export type LivePoint = Point;

export interface NodeOverview {
  name: string;
  role: NodeRole;
  /** true / false from the last scrape; null before the first. */
  up: boolean | null;
  tps?: number;
  connections?: number;
  maxConnections?: number;
  cacheHit?: number;
  /** Subscribers: the largest end-to-end heartbeat latency; publishers: the largest replay lag. */
  lagSeconds?: number;
  lagBytes?: number;
  cpuPercent?: number;
  memoryBytes?: number;
  memoryLimitBytes?: number;
}

export interface LinkView {
  subscription: string;
  publisher: string;
  subscriber: string;
  publications: { name: string; tables: { table: string; where?: string }[]; allTables: boolean }[];
  /** streaming (worker running and connected), down (no worker), error (apply/sync errors), unknown */
  state: 'streaming' | 'down' | 'error' | 'unknown';
  lagBytes?: number;
  lagSeconds?: number;
  heartbeatSeconds?: number;
  applyErrors?: number;
  syncErrors?: number;
}

export interface LiveView {
  sampledAt?: number;
  nodes: NodeOverview[];
  links: LinkView[];
}

const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined);

export function liveView(nodes: { name: string; role: NodeRole }[], replication: ReplicationConfig, points: readonly LivePoint[]): LiveView {
  const of = (measurement: string, node?: string) => points.filter((p) => p.measurement === measurement && (node === undefined || p.tags.node === node));
  const sum = (ps: LivePoint[], field: string) => ps.reduce<number | undefined>((s, p) => (num(p.fields[field]) === undefined ? s : (s ?? 0) + num(p.fields[field])!), undefined);
  const max = (ps: LivePoint[], field: string) => ps.reduce<number | undefined>((m, p) => (num(p.fields[field]) === undefined ? m : Math.max(m ?? -Infinity, num(p.fields[field])!)), undefined);
  const times = points.map((p) => p.time);
  const view: LiveView = { sampledAt: times.length ? Math.max(...times) : undefined, nodes: [], links: [] };
  for (const n of nodes) {
    const up = of('pg_up', n.name)[0];
    const db = of('pg_stat_database', n.name);
    const commits = sum(db, 'xact_commit_rate');
    const limit = of('pg_connections_limit', n.name)[0];
    const hit = of('pg_cache_hit', n.name);
    const proc = of('process', n.name)[0];
    view.nodes.push({
      name: n.name,
      role: n.role,
      up: up ? num(up.fields.up) === 1 : null,
      tps: commits === undefined ? undefined : commits + (sum(db, 'xact_rollback_rate') ?? 0),
      connections: limit ? num(limit.fields.used) : undefined,
      maxConnections: limit ? num(limit.fields.max) : undefined,
      cacheHit: hit.length ? sum(hit, 'ratio')! / hit.length : undefined,
      lagSeconds: max(of('replication_heartbeat', n.name), 'lag_seconds') ?? max(of('pg_replication', n.name), 'replay_lag_seconds'),
      lagBytes: max(of('pg_replication', n.name), 'replay_lag_bytes'),
      cpuPercent: proc ? num(proc.fields.cpu_percent) : undefined,
      memoryBytes: proc ? num(proc.fields.memory_bytes) : undefined,
      memoryLimitBytes: proc ? num(proc.fields.memory_limit_bytes) : undefined,
    });
  }
  for (const s of replication.subscriptions) {
    const pubs = s.publications.map((name) => {
      const p = replication.publications.find((x) => x.name === name);
      return {
        name,
        allTables: p?.allTables ?? false,
        tables: (p?.tables ?? []).map((t) => ({ table: t.table.schema === 'public' ? t.table.name : `${t.table.schema}.${t.table.name}`, where: t.where })),
      };
    });
    const worker = of('pg_subscription', s.node).find((p) => p.tags.subscription === s.name);
    const errors = of('pg_subscription_errors', s.node).find((p) => p.tags.subscription === s.name);
    const sender = of('pg_replication', s.publisher).find((p) => p.tags.subscription === s.name);
    const beat = of('replication_heartbeat', s.node).find((p) => p.tags.subscription === s.name);
    const subscriberUp = view.nodes.find((n) => n.name === s.node)?.up;
    const publisherUp = view.nodes.find((n) => n.name === s.publisher)?.up;
    const applyErrors = errors ? num(errors.fields.apply_errors) : undefined;
    const syncErrors = errors ? num(errors.fields.sync_errors) : undefined;
    const errorRate = errors ? (num(errors.fields.apply_errors_rate) ?? 0) + (num(errors.fields.sync_errors_rate) ?? 0) : 0;
    let state: LinkView['state'] = 'unknown';
    if (subscriberUp === false || publisherUp === false) state = 'down';
    else if (errorRate > 0) state = 'error';
    else if (worker) state = num(worker.fields.worker_running) === 1 ? 'streaming' : 'down';
    view.links.push({
      subscription: s.name,
      publisher: s.publisher,
      subscriber: s.node,
      publications: pubs,
      state,
      lagBytes: sender ? num(sender.fields.replay_lag_bytes) : undefined,
      lagSeconds: sender ? num(sender.fields.replay_lag_seconds) : undefined,
      heartbeatSeconds: beat ? num(beat.fields.lag_seconds) : undefined,
      applyErrors,
      syncErrors,
    });
  }
  return view;
}
