import type { SubscriptionSpec } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { quoteIdent, type Sql } from '../pg/index.js';
import { onNode } from './common.js';
import type { FaultEnv, Fault } from './types.js';

/**
 * A conflict as production meets it: a row on the subscriber with the key the publisher's next
 * insert will use. When that insert arrives, the apply worker fails on the unique key (23505)
 * and retries for ever: the subscription stalls until `prodhome replication resolve`.
 */

interface Target {
  table: string;
  column: string;
  key: string;
}

export const conflict: Fault = {
  name: 'conflict',
  summary: "plant a row on the subscriber that the publisher's next insert collides with: the subscription stalls",
  targets: 'subscription',
  async plan(args, env) {
    const sub = env.subscription(args.target);
    const t = await chooseTarget(sub, env);
    return [
      `${sub.node}: INSERT INTO ${t.table} -- a copy of its newest row with ${quoteIdent(t.column)} = ${t.key}, the key the publisher (${sub.publisher}) hands out next`,
      `then: the next row the publisher inserts into ${t.table} with ${t.column} = ${t.key} that ${sub.name} receives collides (23505) and ${sub.name} stalls`,
      `way out: prodhome replication resolve ${sub.name} --delete-local | --skip; undo: DELETE the planted row (fault clear)`,
    ];
  },
  async inject(args, env) {
    const sub = env.subscription(args.target);
    const t = await chooseTarget(sub, env);
    const subscriber = env.node(sub.node);
    const rowText = await onNode(subscriber.connection, `${sub.node}: planting the conflicting row`, async (sql) => {
      const existing = await sql.unsafe<{ r: string }[]>(`select t::text as r from ${t.table} t where ${quoteIdent(t.column)} = $1`, [t.key]);
      if (existing[0]) return existing[0].r;
      const cols = await columnsOf(sql, t.table);
      const list = cols.map(quoteIdent).join(', ');
      const values = cols.map((c) => (c === t.column ? '$1' : quoteIdent(c))).join(', ');
      const copied = await sql.unsafe(
        `insert into ${t.table} (${list}) overriding system value select ${values} from ${t.table} order by ${quoteIdent(t.column)} desc limit 1`,
        [t.key],
      );
      if (copied.count === 0) await sql.unsafe(`insert into ${t.table} (${quoteIdent(t.column)}) overriding system value values ($1)`, [t.key]);
      const [row] = await sql.unsafe<{ r: string }[]>(`select t::text as r from ${t.table} t where ${quoteIdent(t.column)} = $1`, [t.key]);
      return row!.r;
    });
    return {
      summary: `planted ${t.table} ${t.column}=${t.key} on ${sub.node}: the publisher's next insert of that key into ${sub.name} collides`,
      data: { subscription: sub.name, table: t.table, column: t.column, key: t.key, row: rowText },
    };
  },
  async heal(record, env) {
    const node = env.node(record.node);
    const { table, column, key, row } = record.data as { table: string; column: string; key: string; row: string };
    const text = `DELETE FROM ${table} t WHERE ${quoteIdent(column)} = '${key.replace(/'/g, "''")}' AND t::text = '${row.replace(/'/g, "''")}'`;
    // Only the row we planted, unchanged: a replicated row with the same key stays.
    const deleted = await onNode(node.connection, `${node.name}: removing the planted row`, async (sql) => (await sql.unsafe(text)).count);
    return deleted ? [`${node.name}: ${text};`] : [];
  },
  async active(record, env) {
    const node = env.node(record.node);
    const { table, column, key, row } = record.data as { table: string; column: string; key: string; row: string };
    try {
      return await onNode(node.connection, 'conflict', async (sql) =>
        (await sql.unsafe(`select 1 from ${table} t where ${quoteIdent(column)} = $1 and t::text = $2`, [key, row])).length > 0,
      );
    } catch {
      return true;
    }
  },
};

/** The first table of the subscription with a one-column integer primary key, and its next key. */
async function chooseTarget(sub: SubscriptionSpec, env: FaultEnv): Promise<Target> {
  const tables = env.replication.publications
    .filter((p) => sub.publications.includes(p.name))
    .flatMap((p) => p.tables.map((t) => `${quoteIdent(t.table.schema)}.${quoteIdent(t.table.name)}`));
  const publisher = env.node(sub.publisher);
  const found = await onNode(publisher.connection, `${sub.publisher}: choosing a table for the conflict`, async (sql) => {
    for (const table of [...new Set(tables)]) {
      const [pk] = await sql<{ col: string; typ: string; seq: string | null }[]>`
        select a.attname as col, format_type(a.atttypid, null) as typ, pg_get_serial_sequence(${table}, a.attname) as seq
        from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
        where i.indrelid = to_regclass(${table}) and i.indisprimary and i.indnatts = 1`;
      if (!pk || !['bigint', 'integer', 'smallint'].includes(pk.typ)) continue;
      const [next] = await sql.unsafe<{ k: string }[]>(
        `select greatest(coalesce((select max(${quoteIdent(pk.col)}) from ${table}), 0) + 1,
                         coalesce((select case when s.last_value is null then s.start_value else s.last_value + s.increment_by end
                                   from pg_sequences s where format('%I.%I', s.schemaname, s.sequencename) = $1), 0))::text as k`,
        [pk.seq ?? ''],
      );
      return { table, column: pk.col, key: next!.k };
    }
    return undefined;
  });
  if (!found) {
    throw new ProdhomeError('USAGE', `fault conflict ${sub.name}: none of its tables (${tables.join(', ') || 'none'}) has a one-column integer primary key to collide on`, {
      hint: 'Plant a conflicting row by hand (prodhome psql SUBSCRIBER) — the resolve command works for any unique-key conflict.',
    });
  }
  return found;
}

async function columnsOf(sql: Sql, table: string): Promise<string[]> {
  const rows = await sql<{ c: string }[]>`
    select attname as c from pg_attribute where attrelid = to_regclass(${table}) and attnum > 0 and not attisdropped and attgenerated = '' order by attnum`;
  return rows.map((r) => r.c);
}
