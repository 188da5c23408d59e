import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { z } from 'zod';
import { NODE_ROLES, parseDuration, type NodeRole } from '../config/index.js';

/**
 * The metric catalog: metrics as data, one YAML file per family under src/metrics/catalog/.
 * Each metric has SQL per *minimum* Postgres major (the largest key at or below the server's
 * applies), the node roles it is for, which result columns are tags, and which are fields —
 * gauges, or counters that the collector turns into per-second rates. Adding a metric or a
 * version is a data edit.
 */

const FieldSchema = z
  .strictObject({
    /** gauge, counter (also sampled as a per-second `<field>_rate`), or text (a string field, never a tag: query text has no bound) */
    kind: z.enum(['gauge', 'counter', 'text']),
    unit: z.string().min(1).optional(),
    /** What this one field is (HELP of its Prometheus family); the metric's help when absent. */
    help: z.string().min(1).optional(),
  })
  .refine((f) => f.kind === 'text' || f.unit !== undefined, 'gauges and counters need a unit (seconds, bytes, rows…)');

const MetricSchema = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_]*$/, 'metric names are lower_snake_case'),
  help: z.string().min(1),
  roles: z.array(z.enum(NODE_ROLES)).optional(),
  /** A relation the SQL reads that not every node has; the metric is skipped where it is missing. */
  requires: z.string().optional(),
  sql: z.record(z.string().regex(/^\d+$/, 'SQL keys are minimum Postgres major versions, such as "10" or "17"'), z.string().min(1)),
  tags: z.array(z.string()).optional(),
  fields: z.record(z.string(), FieldSchema),
  /** Sampled at most this often (such as 1m), for what changes rarely; every scrape when absent. */
  every: z
    .string()
    .refine((t) => (parseDuration(t) ?? 0) > 0, 'every: expects a duration such as 30s or 1m')
    .optional(),
});

export type MetricField = z.output<typeof FieldSchema>;

/**
 * How a field is stored: integers (line protocol `42i`, a bigint column) for counts, floats
 * for seconds, ratios and other measurements, booleans, text. Decided by the field's unit, so one
 * field keeps one type for its life (InfluxDB refuses a float where it stored an integer).
 */
export type StoreType = 'int' | 'float' | 'bool' | 'text';

const FLOAT_UNITS = new Set(['seconds', 'ratio', 'value', 'percent', 'milliseconds', 'tps']);

export function storeType(field: MetricField): StoreType {
  if (field.kind === 'text') return 'text';
  if (field.unit === 'boolean') return 'bool';
  return FLOAT_UNITS.has(field.unit!) ? 'float' : 'int';
}

export interface MetricDefinition {
  name: string;
  help: string;
  /** Roles it applies to; every role when absent. */
  roles?: NodeRole[];
  requires?: string;
  /** SQL by minimum major version. */
  sql: Record<string, string>;
  tags: string[];
  fields: Record<string, MetricField>;
  /** Minimum milliseconds between two samples of it on one node; absent: every scrape. */
  everyMs?: number;
  /** The catalog file it came from, for messages. */
  family: string;
}

export const CATALOG_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'metrics', 'catalog');

let cached: MetricDefinition[] | undefined;

/** Every metric in the catalog, validated; a broken catalog file is a bug, reported with its name. */
export function loadCatalog(dir = CATALOG_DIR): MetricDefinition[] {
  if (cached && dir === CATALOG_DIR) return cached;
  const metrics: MetricDefinition[] = [];
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
    const family = path.basename(file, '.yaml');
    const parsed = z.array(MetricSchema).safeParse(parse(fs.readFileSync(path.join(dir, file), 'utf8')));
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new Error(`metric catalog ${file}: ${issue.path.join('.')}: ${issue.message}`);
    }
    for (const m of parsed.data) {
      if (metrics.some((x) => x.name === m.name)) throw new Error(`metric catalog ${file}: metric ${m.name} is defined twice`);
      const { every, ...rest } = m;
      metrics.push({ ...rest, tags: m.tags ?? [], family, ...(every ? { everyMs: parseDuration(every)! } : {}) });
    }
  }
  if (dir === CATALOG_DIR) cached = metrics;
  return metrics;
}

/** The SQL a metric runs on a server of this major version, or undefined when none applies. */
export function sqlFor(metric: MetricDefinition, major: number): string | undefined {
  const keys = Object.keys(metric.sql).map(Number).filter((v) => v <= major).sort((a, b) => b - a);
  return keys.length ? metric.sql[String(keys[0])] : undefined;
}

export function appliesTo(metric: MetricDefinition, role: NodeRole): boolean {
  return !metric.roles || metric.roles.includes(role);
}
