import type { FieldDescription, Point } from '../sinks/index.js';
import { loadCatalog, storeType, type StoreType } from './catalog.js';

/**
 * What every field the agent writes is: the catalog's fields (SQL metrics) and the measurements
 * prodhome makes itself (below: node process stats, the sampler's and sinks' own health, load
 * runs' seconds). One answer for two uses: how stores type each field (forStores), and the help,
 * type, unit and name of its Prometheus family.
 */
export interface FieldInfo extends FieldDescription {
  store: StoreType;
  /** false: written to the stores, left off /metrics */
  exported: boolean;
}

interface BuiltInField {
  help: string;
  kind: 'gauge' | 'counter';
  unit: string;
  /** Prometheus name when `<measurement>_<field>` would mislead */
  name?: string;
  exported?: boolean;
}

const LOAD = 'a prodhome load run';
/** Measurements that do not come from the catalog, by measurement and field. */
const BUILT_IN: Record<string, Record<string, BuiltInField>> = {
  pg_up: {
    up: { help: 'Whether the node answered the last scrape (1) or not (0).', kind: 'gauge', unit: 'up', name: 'pg_up' },
    scrape_seconds: { help: 'How long the last scrape of the node took.', kind: 'gauge', unit: 'seconds', name: 'pg_scrape_seconds' },
  },
  // A node's server processes. Prometheus client libraries name their own process's figures
  // process_*: these are the Postgres node's, so they get names of their own.
  process: {
    processes: { help: "Processes of the node's Postgres server (postmaster and backends).", kind: 'gauge', unit: 'processes', name: 'pg_node_processes' },
    memory_bytes: { help: "Memory of the node's Postgres server: its cgroup's usage, or private memory plus shared buffers.", kind: 'gauge', unit: 'bytes', name: 'pg_node_process_memory_bytes' },
    memory_rss_bytes: { help: "Resident memory of the node's Postgres server, shared buffers included, page cache not.", kind: 'gauge', unit: 'bytes', name: 'pg_node_process_memory_rss_bytes' },
    memory_cache_bytes: { help: "Page cache charged to the node's cgroup (file data the kernel can drop; shared memory excluded).", kind: 'gauge', unit: 'bytes', name: 'pg_node_process_memory_cache_bytes' },
    memory_limit_bytes: { help: "The node's memory cap (cgroup).", kind: 'gauge', unit: 'bytes', name: 'pg_node_process_memory_limit_bytes' },
    cpu_seconds: { help: "CPU time used by the node's Postgres server, backends that exited included.", kind: 'counter', unit: 'seconds', name: 'pg_node_process_cpu_seconds' },
    read_bytes: { help: "Bytes the node's Postgres server read from storage.", kind: 'counter', unit: 'bytes', name: 'pg_node_process_read_bytes' },
    write_bytes: { help: "Bytes the node's Postgres server wrote to storage.", kind: 'counter', unit: 'bytes', name: 'pg_node_process_write_bytes' },
    oom_kills: { help: "Processes the kernel killed for exceeding the node's memory cap.", kind: 'counter', unit: 'kills', name: 'pg_node_oom_kills' },
    cpu_throttled_periods: { help: "CPU periods in which the node's CPU cap throttled it.", kind: 'counter', unit: 'periods', name: 'pg_node_cpu_throttled_periods' },
    cpu_throttled_seconds: { help: "Time the node's CPU cap held it back.", kind: 'counter', unit: 'seconds', name: 'pg_node_cpu_throttled_seconds' },
  },
  prodhome_sampler: {
    points: { help: 'Points the last sample produced.', kind: 'gauge', unit: 'points' },
    scrape_seconds: { help: 'How long the last sample of every node took.', kind: 'gauge', unit: 'seconds' },
  },
  // What each sink did with its points: offered = written + buffered + dropped + rejected.
  prodhome_sink: {
    offered: { help: 'Points handed to a sink.', kind: 'counter', unit: 'points', name: 'prodhome_sink_offered_points' },
    written: { help: 'Points a sink delivered to its store.', kind: 'counter', unit: 'points', name: 'prodhome_sink_written_points' },
    buffered: { help: 'Points waiting in a sink for its store.', kind: 'gauge', unit: 'points', name: 'prodhome_sink_buffered_points' },
    dropped: { help: 'Points a sink threw away: its buffer overflowed while its store was away, or it closed with points unsent.', kind: 'counter', unit: 'points', name: 'prodhome_sink_dropped_points' },
    rejected: { help: 'Points the store refused (HTTP 4xx, a column of another type) or that could not be encoded.', kind: 'counter', unit: 'points', name: 'prodhome_sink_rejected_points' },
    retries: { help: 'Failed attempts to write that a sink retries (the points wait in its buffer).', kind: 'counter', unit: 'attempts', name: 'prodhome_sink_retries' },
    healthy: { help: 'Whether the last write of a sink went through whole (1) or failed or was refused (0).', kind: 'gauge', unit: 'boolean', name: 'prodhome_sink_healthy' },
  },
  prodhome_sink_loss: {
    points: { help: 'Points a sink lost, by outcome (dropped by the sink, rejected by the store) and reason.', kind: 'counter', unit: 'points', name: 'prodhome_sink_lost_points' },
  },
  // A `prodhome load` run's last second, handed to the agent through the state dir.
  workload: {
    tps: { help: `Transactions ${LOAD} completed in its last second.`, kind: 'gauge', unit: 'tps' },
    transactions: { help: `Transactions ${LOAD} completed in its last second.`, kind: 'gauge', unit: 'transactions', exported: false },
    failed: { help: `Transactions of ${LOAD} that failed in its last second.`, kind: 'gauge', unit: 'transactions' },
    latency_avg_ms: { help: `Average latency of the transactions of ${LOAD} in its last second.`, kind: 'gauge', unit: 'milliseconds' },
    latency_p50_ms: { help: `Median latency of the transactions of ${LOAD} in its last second.`, kind: 'gauge', unit: 'milliseconds' },
    latency_p95_ms: { help: `95th percentile latency of the transactions of ${LOAD} in its last second.`, kind: 'gauge', unit: 'milliseconds' },
    latency_p99_ms: { help: `99th percentile latency of the transactions of ${LOAD} in its last second.`, kind: 'gauge', unit: 'milliseconds' },
    latency_max_ms: { help: `Highest latency of the transactions of ${LOAD} in its last second.`, kind: 'gauge', unit: 'milliseconds' },
    schedule_lag_avg_ms: { help: `How late ${LOAD} on a schedule started its transactions, on average, in its last second.`, kind: 'gauge', unit: 'milliseconds' },
  },
  workload_errors: {
    // not workload_errors_count: _count is the suffix of a summary's or histogram's series
    count: { help: `Errors ${LOAD} met in its last second, by SQLSTATE.`, kind: 'gauge', unit: 'errors', name: 'workload_errors' },
  },
};

let cache: Map<string, Map<string, FieldInfo>> | undefined;

function byMeasurement(): Map<string, Map<string, FieldInfo>> {
  if (cache) return cache;
  cache = new Map();
  for (const m of loadCatalog()) {
    const fields = new Map<string, FieldInfo>();
    for (const [name, f] of Object.entries(m.fields)) {
      const store = storeType(f);
      const type = f.kind === 'text' ? 'untyped' : f.kind;
      fields.set(name, { help: f.help ?? m.help, type, unit: f.unit, store, exported: f.kind !== 'text' });
    }
    cache.set(m.name, fields);
  }
  for (const [measurement, defs] of Object.entries(BUILT_IN)) {
    const fields = new Map<string, FieldInfo>();
    for (const [name, f] of Object.entries(defs)) {
      const store = f.unit === 'boolean' ? 'bool' : storeType({ kind: f.kind, unit: f.unit });
      fields.set(name, { help: f.help, type: f.kind, unit: f.unit, store, exported: f.exported ?? true, ...(f.name ? { name: f.name } : {}) });
    }
    cache.set(measurement, fields);
  }
  return cache;
}

/** What a field is, or undefined for one nobody declared (a `<field>_rate`, a CPU percentage…). */
export function describeField(measurement: string, field: string): FieldInfo | undefined {
  return byMeasurement().get(measurement)?.get(field);
}

/**
 * Points as stores should keep them: declared integer fields as bigint (line protocol `42i`, a
 * bigint column), booleans as booleans, the rest as they are (rates and other derived figures
 * stay floats). The collector's points stay plain numbers for everything else that reads them.
 */
export function forStores(points: readonly Point[]): Point[] {
  const all = byMeasurement();
  return points.map((p) => {
    const declared = all.get(p.measurement);
    if (!declared) return p;
    let fields: Point['fields'] | undefined;
    for (const name in p.fields) {
      const v = p.fields[name];
      const store = declared.get(name)?.store;
      if (typeof v !== 'number' || (store !== 'int' && store !== 'bool')) continue;
      fields ??= { ...p.fields };
      fields[name] = store === 'bool' ? v !== 0 : Number.isFinite(v) ? BigInt(Math.round(v)) : undefined;
    }
    return fields ? { ...p, fields } : p;
  });
}
