import type { TableRef } from '../config/index.js';
import { quoteIdent, type Sql } from '../pg/index.js';

/** What the catalogs say about one table, enough to plan, preflight and copy it. */
export interface TableInfo {
  oid: number;
  ref: TableRef;
  columns: string[];
  primaryKey: string[];
  /** d = default (primary key), f = full, i = index, n = nothing */
  replicaIdentity: 'd' | 'f' | 'i' | 'n';
  /** Columns of the replica identity as Postgres will log them (empty for full/nothing/no key). */
  identityColumns: string[];
}

export const qualified = (t: TableRef) => `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
export const tableKey = (t: TableRef) => `${t.schema}.${t.name}`;

export async function tableInfo(sql: Sql, t: TableRef): Promise<TableInfo | undefined> {
  const rows = await sql<{ oid: number; relreplident: string; columns: string[]; pk: string[] | null; ident: string[] | null }[]>`
    select c.oid::int as oid, c.relreplident::text as relreplident,
      array(select a.attname::text from pg_attribute a
             where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum) as columns,
      array(select a.attname::text from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
             where i.indrelid = c.oid and i.indisprimary order by array_position(i.indkey::int2[], a.attnum)) as pk,
      array(select a.attname::text from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
             where i.indrelid = c.oid and i.indisreplident) as ident
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = ${t.schema} and c.relname = ${t.name} and c.relkind in ('r', 'p')`;
  const r = rows[0];
  if (!r) return undefined;
  const replicaIdentity = r.relreplident as TableInfo['replicaIdentity'];
  const pk = r.pk ?? [];
  const identityColumns = replicaIdentity === 'd' ? pk : replicaIdentity === 'i' ? (r.ident ?? []) : [];
  return { oid: r.oid, ref: t, columns: r.columns, primaryKey: pk, replicaIdentity, identityColumns };
}

export interface ServerFacts {
  major: number;
  isSuperuser: boolean;
  settings: Record<string, string>;
}

export const REPLICATION_SETTINGS = ['wal_level', 'max_replication_slots', 'max_wal_senders', 'max_logical_replication_workers', 'max_worker_processes'] as const;

export async function serverFacts(sql: Sql): Promise<ServerFacts> {
  const rows = await sql<{ name: string; setting: string }[]>`
    select name, setting from pg_settings where name = any(${[...REPLICATION_SETTINGS, 'server_version_num', 'is_superuser']})`;
  const settings = Object.fromEntries(rows.map((r) => [r.name, r.setting]));
  const [su] = await sql<{ su: boolean }[]>`select rolsuper as su from pg_roles where rolname = current_user`;
  return { major: Math.floor(Number(settings.server_version_num) / 10000), isSuperuser: su?.su ?? false, settings };
}

export interface PublicationRow {
  name: string;
  allTables: boolean;
  tables: string[];
}

export async function publications(sql: Sql): Promise<Map<string, PublicationRow>> {
  const rows = await sql<{ name: string; puballtables: boolean; tables: string[] }[]>`
    select p.pubname::text as name, p.puballtables,
      array(select n.nspname || '.' || c.relname from pg_publication_rel pr join pg_class c on c.oid = pr.prrelid
             join pg_namespace n on n.oid = c.relnamespace where pr.prpubid = p.oid order by 1) as tables
    from pg_publication p`;
  return new Map(rows.map((r) => [r.name, { name: r.name, allTables: r.puballtables, tables: r.tables }]));
}

export interface SubscriptionRow {
  name: string;
  enabled: boolean;
  publications: string[];
}

export async function subscriptions(sql: Sql): Promise<Map<string, SubscriptionRow>> {
  const rows = await sql<{ name: string; enabled: boolean; publications: string[] }[]>`
    select subname::text as name, subenabled as enabled, subpublications::text[] as publications
    from pg_subscription where subdbid = (select oid from pg_database where datname = current_database())`;
  return new Map(rows.map((r) => [r.name, r]));
}

/** Tables a publication publishes, as Postgres sees them (row filter and columns from 15 on). */
export async function publishedTables(sql: Sql, major: number, pubname: string): Promise<{ ref: TableRef; columns?: string[]; rowfilter?: string }[]> {
  if (major >= 15) {
    const rows = await sql<{ schemaname: string; tablename: string; attnames: string[] | null; rowfilter: string | null }[]>`
      select schemaname::text, tablename::text, attnames::text[] as attnames, rowfilter from pg_publication_tables where pubname = ${pubname}`;
    return rows.map((r) => ({ ref: { schema: r.schemaname, name: r.tablename }, columns: r.attnames ?? undefined, rowfilter: r.rowfilter ?? undefined }));
  }
  const rows = await sql<{ schemaname: string; tablename: string }[]>`
    select schemaname::text, tablename::text from pg_publication_tables where pubname = ${pubname}`;
  return rows.map((r) => ({ ref: { schema: r.schemaname, name: r.tablename } }));
}
