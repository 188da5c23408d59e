import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { z } from 'zod';
import type { Sql } from '../pg/index.js';
import { chooseTier, downsampleSql, readableFields, storedColumns, type DownsampleQuery, type Tier } from '../sinks/index.js';

/**
 * The dashboard's panels, declared as data in panels/*.yaml (like the metric catalog): the page
 * and the Grafana export are both made from these, so they cannot drift apart. This file reads
 * them and turns one into the SQL that reads it, downsampled in the store.
 */

export const PANELS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'dashboard', 'panels');

const ident = z.string().regex(/^[a-z_][a-z0-9_]*$/, 'expected a lower-case SQL name');

const PanelSchema = z
  .strictObject({
    id: z.string().regex(/^[a-z][a-z0-9_]*$/),
    title: z.string().min(1),
    measurement: ident,
    fields: z.array(ident).min(1),
    /** What each field is called in legends (default: the field's name). */
    labels: z.array(z.string()).optional(),
    unit: z.enum(['/s', 'bytes', 'bytes/s', 'seconds', 'ms', 'percent', 'ratio', 'connections', 'locks', 'rows', 'errors']),
    /** Columns that make a series; the first is the node (its colour). */
    by: z.array(ident).min(1),
    /** How rows of one series at one time are combined (several databases of one node). */
    combine: z.enum(['sum', 'avg', 'max']).default('sum'),
    kind: z.enum(['line']).default('line'),
    /** Only the N series with the largest measure over the range (a gauge's max, a counter's increase): "busiest" panels. */
    top: z.number().int().min(1).max(100).optional(),
    /** Panels are shown in groups; `load` panels sit with the load runs. */
    group: z.enum(['lab', 'load']).default('lab'),
    info: z.string().min(1),
  })
  .refine((p) => !p.labels || p.labels.length === p.fields.length, { message: 'labels must name every field' })
  .refine((p) => p.info.trim().split('\n').length === 2, { message: 'info is two lines: what it measures; healthy and worrying values' });

export type Panel = z.output<typeof PanelSchema>;

let cached: Panel[] | undefined;

/** Every panel, in file order (database, activity, io, replication, tables, load). */
export function loadPanels(dir = PANELS_DIR): Panel[] {
  if (dir === PANELS_DIR && cached) return cached;
  const order = ['database', 'activity', 'replication', 'io', 'tables', 'load'];
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort((a, b) => rank(order, a) - rank(order, b) || a.localeCompare(b));
  const panels: Panel[] = [];
  for (const file of files) {
    const parsed = z.array(PanelSchema).safeParse(parse(fs.readFileSync(path.join(dir, file), 'utf8')));
    if (!parsed.success) throw new Error(`dashboard panels ${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    panels.push(...parsed.data);
  }
  const ids = new Set<string>();
  for (const p of panels) {
    if (ids.has(p.id)) throw new Error(`dashboard panels: two panels have the id ${p.id}`);
    ids.add(p.id);
  }
  if (dir === PANELS_DIR) cached = panels;
  return panels;
}

const rank = (order: string[], file: string) => {
  const i = order.indexOf(file.replace(/\.yaml$/, ''));
  return i < 0 ? order.length : i;
};

/**
 * The downsampling query of a panel (sinks' downsampleSql): rows of one series at one time are
 * combined, then averaged per `step` bucket (date_bin), read from the store's tier that fits the
 * bucket, counters' rates derived in the query — so 24 h costs about what 5 m costs. Parameters:
 * $1 from, $2 to (timestamptz), $3 the step (interval), $4 the node names (text[], or null for
 * all). `stored` is the raw table's columns: fields it cannot read are left out.
 */
export function seriesSql(panel: Panel, stored?: ReadonlyMap<string, string>, tier: Tier = 'raw', schema = 'metrics'): string {
  return downsampleSql(panelQuery(panel, stored, schema), tier);
}

export function panelQuery(panel: Panel, stored?: ReadonlyMap<string, string>, schema = 'metrics'): DownsampleQuery {
  return { measurement: panel.measurement, by: panel.by, fields: panel.fields, combine: panel.combine, stored, schema, top: panel.top };
}

/** The fields of a panel the store can read now (a field not sampled yet is left out). */
export function panelFields(panel: Panel, stored: ReadonlyMap<string, string>): string[] {
  return readableFields(panel.fields, stored);
}

/** A panel's series over a range, read once (reports): the fields the store has and the rows. */
export async function readPanel(sql: Sql, panel: Panel, from: number, to: number, stepSeconds: number): Promise<{ fields: string[]; rows: Record<string, unknown>[] }> {
  const stored = await storedColumns(sql, panel.measurement);
  const fields = panelFields(panel, stored);
  if (!fields.length) return { fields, rows: [] };
  const text = seriesSql(panel, stored, chooseTier(stepSeconds, from, Date.now()));
  const rows = await sql.unsafe<Record<string, unknown>[]>(text, [new Date(from), new Date(to), `${stepSeconds} seconds`, null] as never[]);
  return { fields, rows };
}

/** Nice bucket sizes, in seconds (from a minute up, whole minutes; from ten, whole ten minutes: rollups fit). */
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 300, 600, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

/** The step for a range: the smallest nice bucket that keeps it under `points` buckets (a chart's width in pixels). */
export function chooseStep(rangeMs: number, intervalMs: number, points = 400): number {
  const want = Math.max(rangeMs / points / 1000, intervalMs / 1000);
  return STEPS.find((s) => s >= want) ?? STEPS[STEPS.length - 1]!;
}
