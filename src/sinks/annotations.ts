import type { Sql } from '../pg/index.js';

/**
 * The metrics store's annotations: one row per event worth marking on every time chart — a load
 * run, a fault and its clear, an experiment's phase — with its span (time, "end"), kind, node,
 * text and tags. Load runs, faults and experiments write here; the dashboard, Grafana and
 * reports read it. The one definition of the table.
 */
export const ANNOTATIONS_DDL =
  'CREATE TABLE IF NOT EXISTS metrics.annotations (id bigserial PRIMARY KEY, time timestamptz NOT NULL, "end" timestamptz, kind text NOT NULL, node text, text text NOT NULL, tags jsonb NOT NULL DEFAULT \'{}\')';

export interface Annotation {
  time: Date | number;
  end?: Date | number;
  kind: string;
  node?: string;
  text: string;
  tags?: Record<string, unknown>;
}

/** The schema and table, if this store has none yet. */
export async function ensureAnnotations(sql: Sql): Promise<void> {
  await sql.unsafe('CREATE SCHEMA IF NOT EXISTS metrics');
  await sql.unsafe(ANNOTATIONS_DDL);
}

/** Writes one annotation (creating the table when needed); returns its id. */
export async function writeAnnotation(sql: Sql, a: Annotation): Promise<number> {
  await ensureAnnotations(sql);
  const at = (t: Date | number) => (t instanceof Date ? t : new Date(t));
  const [row] = await sql<{ id: string }[]>`insert into metrics.annotations (time, "end", kind, node, text, tags)
    values (${at(a.time)}, ${a.end === undefined ? null : at(a.end)}, ${a.kind}, ${a.node ?? null}, ${a.text}, ${sql.json((a.tags ?? {}) as never)})
    returning id`;
  return Number(row!.id);
}

/** Sets an annotation's end (once: a second call keeps the first end). */
export async function endAnnotation(sql: Sql, id: number, end: Date | number): Promise<void> {
  await sql`update metrics.annotations set "end" = ${end instanceof Date ? end : new Date(end)} where id = ${id} and "end" is null`;
}
