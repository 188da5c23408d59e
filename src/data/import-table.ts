import type { TableRef } from '../config/index.js';
import { didYouMean } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import type { Db } from './target.js';
import { displayName } from './target.js';

/** A column of the table an import loads into, from the catalog. */
export interface TargetColumn {
  name: string;
  /** With its modifier, as Postgres prints it: numeric(5,2), character varying(10). */
  type: string;
  /** Without the modifier: what staged text is cast to (the column applies the modifier). */
  base: string;
  typid: number;
  typmod: number;
  notNull: boolean;
  hasDefault: boolean;
  generated: boolean;
}

/** The table's oid, or undefined when there is no such table (a view or the like is an error). */
export async function findTable(sql: Db, t: TableRef, node: string): Promise<string | undefined> {
  const [row] = await sql<{ oid: string; relkind: string }[]>`
    select c.oid::int8::text as oid, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = ${t.schema} and c.relname = ${t.name}`;
  if (!row) return undefined;
  if (row.relkind !== 'r' && row.relkind !== 'p') {
    throw new ProdhomeError('USAGE', `${node}: ${displayName(t)} is not a table (relkind ${row.relkind}); import loads into tables`);
  }
  return row.oid;
}

/** The table "did you mean", among the node's own tables. */
export async function similarTable(sql: Db, t: TableRef): Promise<string | undefined> {
  const rows = await sql<{ name: string }[]>`
    select case when n.nspname = 'public' then c.relname else n.nspname || '.' || c.relname end as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'`;
  return didYouMean(displayName(t), rows.map((r) => r.name));
}

export async function tableColumns(sql: Db, oid: string): Promise<TargetColumn[]> {
  return sql<TargetColumn[]>`
    select a.attname as name, format_type(a.atttypid, a.atttypmod) as type, format_type(a.atttypid, null) as base,
      a.atttypid::int as typid, a.atttypmod as typmod, a.attnotnull as "notNull",
      (a.atthasdef or a.attidentity <> '') as "hasDefault", a.attgenerated <> '' as generated
    from pg_attribute a where a.attrelid = ${oid}::oid and a.attnum > 0 and not a.attisdropped order by a.attnum`;
}

const loose = (s: string) => s.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '');

/**
 * Which column each header names: the exact name, else the same letters and digits ignoring case
 * and punctuation ("Book Id" → book_id). Every header must find one, none twice, and every NOT
 * NULL column without a default must be among them.
 */
export function mapHeader(headers: string[], columns: TargetColumn[], where: { file: string; table: string }): TargetColumn[] {
  const taken = new Map<string, string>();
  const mapped = headers.map((h, i) => {
    if (!h.trim()) throw new ProdhomeError('CSV_INVALID', `${where.file}: line 1: header field ${i + 1} is empty; each column of the header needs a name`);
    const col = columns.find((c) => c.name === h) ?? columns.find((c) => loose(c.name) === loose(h));
    if (!col) {
      throw new ProdhomeError('CSV_INVALID', `${where.file}: line 1: header "${h}" is not a column of ${where.table} (its columns: ${columns.map((c) => c.name).join(', ')})`, {
        hint: 'Rename the header to match a column, or import into a new table with --create.',
      });
    }
    if (col.generated) throw new ProdhomeError('CSV_INVALID', `${where.file}: line 1: header "${h}" names ${col.name}, a generated column of ${where.table}; it cannot be loaded`);
    const other = taken.get(col.name);
    if (other !== undefined) throw new ProdhomeError('CSV_INVALID', `${where.file}: line 1: headers "${other}" and "${h}" both name column ${col.name} of ${where.table}`);
    taken.set(col.name, h);
    return col;
  });
  const missing = columns.filter((c) => c.notNull && !c.hasDefault && !c.generated && !taken.has(c.name));
  if (missing.length) {
    throw new ProdhomeError('CSV_INVALID', `${where.file}: the header lacks ${missing.map((c) => c.name).join(', ')}, NOT NULL in ${where.table} and without a default`, {
      hint: 'Add the column(s) to the file.',
    });
  }
  return mapped;
}
