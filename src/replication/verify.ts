import type { ReplicationConfig, TableRef } from '../config/index.js';
import { quoteIdent, type Sql } from '../pg/index.js';
import { sleep } from '../runtime/index.js';
import { isHeartbeat } from './heartbeat.js';
import { publishedTables, qualified, serverFacts, tableInfo, tableKey } from './catalog.js';

/**
 * "Did every row arrive?" For each subscriber and table: wait (bounded) until its subscriptions
 * have caught up with the publisher's current WAL position, then compare the subscriber's rows
 * with the publisher's rows that pass the row filters and column lists: count plus an
 * order-independent checksum, computed on both servers at once. On a mismatch, hash buckets
 * narrow it down to the primary keys that are missing, extra or changed.
 */

export interface TableVerdict {
  subscriber: string;
  publisher: string;
  subscriptions: string[];
  table: string;
  filter?: string;
  publisherRows: number;
  subscriberRows: number;
  match: boolean;
  missing: string[];
  extra: string[];
  changed: string[];
  note?: string;
}

export interface VerifyResult {
  ok: boolean;
  caughtUp: { subscription: string; caughtUp: boolean; waitedMs: number }[];
  tables: TableVerdict[];
}

export interface VerifyOptions {
  waitMs: number;
  maxKeys: number;
}

const BUCKETS = 256;

export async function verify(config: ReplicationConfig, sql: (node: string) => Sql, opts: VerifyOptions): Promise<VerifyResult> {
  // What each subscription receives is read while the catch-up waits run: round trips overlap.
  const majorOf = new Map<string, Promise<number>>();
  const major = (node: string) => majorOf.get(node) ?? majorOf.set(node, serverFacts(sql(node)).then((f) => f.major)).get(node)!;
  const [caughtUp, received] = await Promise.all([
    Promise.all(config.subscriptions.map((s) => waitForCatchUp(sql(s.publisher), sql(s.node), s.name, opts.waitMs))),
    Promise.all(
      config.subscriptions.map(async (sub) => {
        const [pubMajor, subMajor] = await Promise.all([major(sub.publisher), major(sub.node)]);
        const lists = await Promise.all(sub.publications.map((p) => publishedTables(sql(sub.publisher), pubMajor, p)));
        return { sub, majors: { pub: pubMajor, sub: subMajor }, tables: lists.flat() };
      }),
    ),
  ]);
  const groups = new Map<string, Group>();
  for (const { sub, majors, tables } of received) {
    for (const t of tables) {
      // The heartbeat changes every sampling interval by design: nothing to verify there.
      if (isHeartbeat(t.ref)) continue;
      const key = `${sub.node}|${tableKey(t.ref)}`;
      const g = groups.get(key) ?? { subscriber: sub.node, publisher: sub.publisher, subs: [], ref: t.ref, filters: [], columns: [], majors };
      if (!g.subs.includes(sub.name)) g.subs.push(sub.name);
      g.filters.push(t.rowfilter);
      g.columns.push(t.columns);
      groups.set(key, g);
    }
  }
  const tables: TableVerdict[] = [];
  for (const g of groups.values()) tables.push(await compareTable(sql(g.publisher), sql(g.subscriber), g, opts.maxKeys));
  return { ok: caughtUp.every((c) => c.caughtUp) && tables.every((t) => t.match), caughtUp, tables };
}

/** Waits until the subscription's tables are synced and its slot has confirmed the publisher's current LSN. */
async function waitForCatchUp(pub: Sql, sub: Sql, name: string, waitMs: number): Promise<{ subscription: string; caughtUp: boolean; waitedMs: number }> {
  const start = Date.now();
  const [{ lsn } = { lsn: '0/0' }] = await pub<{ lsn: string }[]>`select pg_current_wal_lsn()::text as lsn`;
  for (;;) {
    const [syncing] = await sub<{ n: number }[]>`
      select count(*)::int as n from pg_subscription_rel r join pg_subscription s on s.oid = r.srsubid
      where s.subname = ${name} and r.srsubstate not in ('r', 's')`;
    const [rep] = await pub<{ done: boolean }[]>`
      select coalesce(bool_or(replay_lsn >= ${lsn}::pg_lsn), false) as done from pg_stat_replication where application_name = ${name}`;
    if (syncing?.n === 0 && rep?.done) return { subscription: name, caughtUp: true, waitedMs: Date.now() - start };
    if (Date.now() - start > waitMs) return { subscription: name, caughtUp: false, waitedMs: Date.now() - start };
    // The subscriber confirms within milliseconds once it has the WAL: poll fast at first.
    await sleep(Date.now() - start < 1000 ? 10 : 50);
  }
}

interface Group {
  subscriber: string;
  publisher: string;
  subs: string[];
  ref: TableRef;
  filters: (string | undefined)[];
  columns: (string[] | undefined)[];
  majors: { pub: number; sub: number };
}

async function compareTable(pub: Sql, sub: Sql, g: Group, maxKeys: number): Promise<TableVerdict> {
  const base = { subscriber: g.subscriber, publisher: g.publisher, subscriptions: g.subs, table: tableKey(g.ref), missing: [] as string[], extra: [] as string[], changed: [] as string[] };
  const [pubInfo, subInfo] = await Promise.all([tableInfo(pub, g.ref), tableInfo(sub, g.ref)]);
  if (!pubInfo || !subInfo) {
    return { ...base, publisherRows: 0, subscriberRows: 0, match: false, note: `${tableKey(g.ref)} is missing on ${!pubInfo ? g.publisher : g.subscriber}` };
  }
  // Rows reach this subscriber if any of its publications' filters passes them.
  const filter = g.filters.some((f) => f === undefined) ? undefined : g.filters.map((f) => `(${f})`).join(' OR ');
  const columns = g.columns.some((c) => c === undefined) ? pubInfo.columns : [...new Set(g.columns.flat() as string[])];
  const missingCols = columns.filter((c) => !subInfo.columns.includes(c));
  if (missingCols.length) {
    return { ...base, filter, publisherRows: 0, subscriberRows: 0, match: false, note: `${g.subscriber} lacks column(s) ${missingCols.join(', ')}` };
  }
  const key = pubInfo.primaryKey.length ? pubInfo.primaryKey : columns;
  const record = `row(${columns.map(quoteIdent).join(', ')})`;
  const keyText = key.length === 1 ? `${quoteIdent(key[0]!)}::text` : `row(${key.map(quoteIdent).join(', ')})::text`;
  const bucket = `(hashtext(${keyText}) & ${BUCKETS - 1})`;
  const where = (side: 'pub' | 'sub') => (side === 'pub' && filter ? ` WHERE ${filter}` : '');
  // Per-row hash: each column through its type's own 64-bit hash function (the one hash
  // partitioning uses, stable across versions), seeded by position and XORed — about 3x a
  // count(*) here, where md5 of the row's text form costs 25x. Types without a hash function
  // (json, point…) make the query fail, and the table falls back to md5 of the text form.
  const textHash = `('x' || substr(md5(${record}::text), 1, 16))::bit(64)::bigint`;
  const fastHash = await columnHashes(pub, pubInfo.oid, columns);
  const summary = (side: 'pub' | 'sub', rowHash: string) =>
    `SELECT count(*)::bigint AS n, coalesce(sum(${rowHash}), 0)::text AS sum FROM ${qualified(g.ref)}${where(side)}`;
  const both = (rowHash: string) => Promise.all([pub.unsafe(summary('pub', rowHash)), sub.unsafe(summary('sub', rowHash))]);
  // Both servers hash at once: the slower side sets the time, not the sum of both.
  let rowHash = Math.min(g.majors.pub, g.majors.sub) >= 14 ? fastHash : textHash;
  let sums;
  try {
    sums = await both(rowHash);
  } catch (e) {
    if (rowHash !== fastHash || !/could not identify (an extended )?hash function/.test((e as Error).message)) throw e;
    rowHash = textHash;
    sums = await both(rowHash);
  }
  const [[p], [s]] = sums;
  const publisherRows = Number(p!.n);
  const subscriberRows = Number(s!.n);
  if (publisherRows === subscriberRows && p!.sum === s!.sum) return { ...base, filter, publisherRows, subscriberRows, match: true };

  const buckets = (side: 'pub' | 'sub') =>
    `SELECT ${bucket} AS b, count(*)::bigint AS n, sum(${rowHash})::text AS sum FROM ${qualified(g.ref)}${where(side)} GROUP BY 1`;
  const [pb, sb] = await Promise.all([pub.unsafe(buckets('pub')), sub.unsafe(buckets('sub'))]);
  const sig = (rows: readonly Record<string, unknown>[]) => new Map(rows.map((r) => [Number(r.b), `${r.n}/${r.sum}`]));
  const ps = sig(pb);
  const ss = sig(sb);
  const differing = [...new Set([...ps.keys(), ...ss.keys()])].filter((b) => ps.get(b) !== ss.get(b));
  const rows = (side: 'pub' | 'sub') =>
    `SELECT ${keyText} AS k, (${rowHash})::text AS h FROM ${qualified(g.ref)} WHERE ${bucket} = ANY($1::int[])${side === 'pub' && filter ? ` AND (${filter})` : ''}`;
  const [pr, sr] = await Promise.all([pub.unsafe(rows('pub'), [differing]), sub.unsafe(rows('sub'), [differing])]);
  const pm = new Map(pr.map((r) => [String(r.k), String(r.h)]));
  const sm = new Map(sr.map((r) => [String(r.k), String(r.h)]));
  const missing: string[] = [];
  const changed: string[] = [];
  const extra: string[] = [];
  for (const [k, h] of pm) {
    if (!sm.has(k)) missing.push(k);
    else if (sm.get(k) !== h) changed.push(k);
  }
  for (const k of sm.keys()) if (!pm.has(k)) extra.push(k);
  const cap = (a: string[]) => a.sort(naturalOrder).slice(0, maxKeys);
  return { ...base, filter, publisherRows, subscriberRows, match: false, missing: cap(missing), extra: cap(extra), changed: cap(changed) };
}

/**
 * `hashint8extended("id", 0) # coalesce(hashtextextended("title", 1), -2) # …`: a
 * column whose type has no default hash opclass of its own goes through hash_record_extended of
 * a one-column row (Postgres 14+), which finds its type's hash function itself.
 */
async function columnHashes(sql: Sql, relid: number, columns: string[]): Promise<string> {
  const rows = await sql<{ name: string; fn: string | null; notnull: boolean }[]>`
    select a.attname::text as name, a.attnotnull as notnull,
      (select p.amproc::regproc::text from pg_opclass oc
         join pg_am am on am.oid = oc.opcmethod and am.amname = 'hash'
         join pg_amproc p on p.amprocfamily = oc.opcfamily and p.amproclefttype = oc.opcintype and p.amprocnum = 2
       where oc.opcdefault and oc.opcintype = a.atttypid limit 1) as fn
    from pg_attribute a where a.attrelid = ${relid} and a.attname = any(${columns})`;
  const byName = new Map(rows.map((r) => [r.name, r]));
  return columns
    .map((c, i) => {
      const col = byName.get(c);
      const hashed = col?.fn ? `${col.fn}(${quoteIdent(c)}, ${i})` : `hash_record_extended(row(${quoteIdent(c)}), ${i})`;
      // A NULL stands for a constant of its own, so a row with NULLs still counts in the sum.
      return col?.notnull ? hashed : `coalesce(${hashed}, ${-(i + 1)})`;
    })
    .join(' # ');
}

function naturalOrder(a: string, b: string): number {
  return a.localeCompare(b, undefined, { numeric: true });
}
