import type { ReplicationConfig, TableRef } from '../config/index.js';
import { quoteIdent, type Sql } from '../pg/index.js';
import { sleep } from '../runtime/index.js';
import { isHeartbeat } from './heartbeat.js';
import { slotName } from './plan/index.js';
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
  /** Up to maxKeys keys each; the counts are of all of them. */
  missing: string[];
  extra: string[];
  changed: string[];
  counts: { missing: number; extra: number; changed: number };
  note?: string;
}

export interface CatchUp {
  subscription: string;
  subscriber: string;
  publisher: string;
  caughtUp: boolean;
  waitedMs: number;
  /** Why it is not caught up (or could not be checked), one line; absent when it is. */
  cause?: string;
}

export interface VerifyResult {
  ok: boolean;
  caughtUp: CatchUp[];
  tables: TableVerdict[];
  /** Every reason the result is not ok, one line each: subscriptions first, then tables. */
  causes: string[];
}

export interface VerifyOptions {
  waitMs: number;
  maxKeys: number;
  /** Nodes known to be down, with why: their subscriptions are reported, not compared. */
  down?: Map<string, string>;
}

const BUCKETS = 256;

export async function verify(config: ReplicationConfig, sql: (node: string) => Sql, opts: VerifyOptions): Promise<VerifyResult> {
  const down = opts.down ?? new Map<string, string>();
  const downEnd = (s: { node: string; publisher: string }) => (down.has(s.publisher) ? s.publisher : down.has(s.node) ? s.node : undefined);
  const reachable = config.subscriptions.filter((s) => !downEnd(s));
  const skipped: CatchUp[] = config.subscriptions
    .filter((s) => downEnd(s))
    .map((s) => {
      const node = downEnd(s)!;
      return { subscription: s.name, subscriber: s.node, publisher: s.publisher, caughtUp: false, waitedMs: 0, cause: `${s.name}: not compared: ${node} is down (${down.get(node)})` };
    });
  // What each subscription receives is read while the catch-up waits run: round trips overlap.
  const majorOf = new Map<string, Promise<number>>();
  const major = (node: string) => majorOf.get(node) ?? majorOf.set(node, serverFacts(sql(node)).then((f) => f.major)).get(node)!;
  const [caughtUp, received] = await Promise.all([
    Promise.all(reachable.map((s) => waitForCatchUp(sql(s.publisher), sql(s.node), s, opts.waitMs))),
    Promise.all(
      reachable.map(async (sub) => {
        const [pubMajor, subMajor] = await Promise.all([major(sub.publisher), major(sub.node)]);
        const existing = new Set(
          (await sql(sub.publisher)<{ name: string }[]>`select pubname::text as name from pg_publication where pubname = any(${sub.publications})`).map((r) => r.name),
        );
        const absent = sub.publications.filter((p) => !existing.has(p));
        const lists = await Promise.all(sub.publications.filter((p) => existing.has(p)).map((p) => publishedTables(sql(sub.publisher), pubMajor, p)));
        return { sub, majors: { pub: pubMajor, sub: subMajor }, tables: lists.flat(), absent };
      }),
    ),
  ]);
  const causes: string[] = [...skipped, ...caughtUp].flatMap((c) => (c.cause ? [c.cause] : []));
  for (const { sub, absent } of received) {
    for (const p of absent) causes.push(`${sub.name}: publication "${p}" does not exist on ${sub.publisher} (\`replicate revert\`?): its tables cannot be compared; \`prodhome replicate\` creates it`);
  }
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
  for (const t of tables) causes.push(...tableCauses(t));
  return { ok: causes.length === 0, caughtUp: [...caughtUp, ...skipped], tables, causes };
}

/** One line per reason a table differs: rows missing, extra, changed, or why it could not be compared. */
function tableCauses(t: TableVerdict): string[] {
  if (t.match) return [];
  const where = `${t.subscriber} ${t.table}`;
  if (t.note) return [`${where}: ${t.note}`];
  const keys = (list: string[], n: number) => `${list.join(', ')}${n > list.length ? `, … (${n - list.length} more)` : ''}`;
  const out: string[] = [];
  if (t.counts.missing) out.push(`${where}: ${t.counts.missing} row${t.counts.missing > 1 ? 's' : ''} missing on ${t.subscriber} (keys ${keys(t.missing, t.counts.missing)})`);
  if (t.counts.extra) out.push(`${where}: ${t.counts.extra} extra row${t.counts.extra > 1 ? 's' : ''} on ${t.subscriber}, not on ${t.publisher} (keys ${keys(t.extra, t.counts.extra)})`);
  if (t.counts.changed) out.push(`${where}: ${t.counts.changed} row${t.counts.changed > 1 ? 's' : ''} changed on ${t.subscriber} (keys ${keys(t.changed, t.counts.changed)})`);
  if (!out.length) out.push(`${where}: ${t.publisherRows} rows on ${t.publisher}, ${t.subscriberRows} on ${t.subscriber}`);
  return out;
}

/**
 * Waits until the subscription's tables are synced and its slot has confirmed the publisher's
 * current LSN. A subscription that does not exist or is disabled will not catch up: no wait.
 */
async function waitForCatchUp(pub: Sql, sub: Sql, s: { name: string; node: string; publisher: string }, waitMs: number): Promise<CatchUp> {
  const start = Date.now();
  const base = { subscription: s.name, subscriber: s.node, publisher: s.publisher };
  const [{ lsn } = { lsn: '0/0' }] = await pub<{ lsn: string }[]>`select pg_current_wal_lsn()::text as lsn`;
  const [row] = await sub<{ enabled: boolean }[]>`select subenabled as enabled from pg_subscription where subname = ${s.name}`;
  if (!row) {
    return { ...base, caughtUp: false, waitedMs: 0, cause: `${s.name}: there is no subscription "${s.name}" on ${s.node} (\`replication drop\` or \`replicate revert\`?): its tables are not replicated; \`prodhome replicate\` creates it again` };
  }
  if (!row.enabled) {
    const behind = await slotBehind(pub, s.name);
    return { ...base, caughtUp: false, waitedMs: 0, cause: `${s.name}: the subscription is disabled on ${s.node}${behind}; \`prodhome replication resume ${s.name}\` enables it` };
  }
  for (;;) {
    const [syncing] = await sub<{ n: number }[]>`
      select count(*)::int as n from pg_subscription_rel r join pg_subscription s on s.oid = r.srsubid
      where s.subname = ${s.name} and r.srsubstate not in ('r', 's')`;
    const [rep] = await pub<{ done: boolean }[]>`
      select coalesce(bool_or(replay_lsn >= ${lsn}::pg_lsn), false) as done from pg_stat_replication where application_name = ${s.name}`;
    if (syncing?.n === 0 && rep?.done) return { ...base, caughtUp: true, waitedMs: Date.now() - start };
    if (Date.now() - start > waitMs) {
      const waited = Date.now() - start;
      const [lag] = await pub<{ seconds: number | null }[]>`
        select extract(epoch from replay_lag)::float8 as seconds from pg_stat_replication where application_name = ${s.name} limit 1`;
      const tablesSyncing = syncing?.n ? `, ${syncing.n} table${syncing.n > 1 ? 's' : ''} still copying` : '';
      const sender = lag ? (lag.seconds !== null ? `, replay lag ${lag.seconds.toFixed(1)} s` : '') : ', no walsender connected for it';
      return {
        ...base,
        caughtUp: false,
        waitedMs: waited,
        cause: `${s.name}: not caught up after ${(waited / 1000).toFixed(1)} s${await slotBehind(pub, s.name)}${sender}${tablesSyncing} (\`prodhome replication status\` shows why)`,
      };
    }
    // The subscriber confirms within milliseconds once it has the WAL: poll fast at first.
    await sleep(Date.now() - start < 1000 ? 10 : 50);
  }
}

/** ", 1234 bytes of WAL behind on pub": how far the subscription's slot trails the publisher. */
async function slotBehind(pub: Sql, subscription: string): Promise<string> {
  const [slot] = await pub<{ behind: string | null }[]>`
    select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text as behind from pg_replication_slots where slot_name = ${slotName(subscription)}`;
  return slot?.behind != null ? `, ${slot.behind} bytes of WAL behind` : '';
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
  const base = {
    subscriber: g.subscriber,
    publisher: g.publisher,
    subscriptions: g.subs,
    table: tableKey(g.ref),
    missing: [] as string[],
    extra: [] as string[],
    changed: [] as string[],
    counts: { missing: 0, extra: 0, changed: 0 },
  };
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
  const counts = { missing: missing.length, extra: extra.length, changed: changed.length };
  return { ...base, filter, publisherRows, subscriberRows, match: false, missing: cap(missing), extra: cap(extra), changed: cap(changed), counts };
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
