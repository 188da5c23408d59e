import type { ReplicationConfig, SubscriptionSpec } from '../config/index.js';
import { quoteIdent, type Sql } from '../pg/index.js';
import { qualified, tableKey } from './catalog.js';
import { withHeartbeat } from './heartbeat.js';
import { REPLICATION_ROLE, slotName, type AppliedState } from './plan/index.js';
import { assertRowFilter } from './row-filter.js';
import { emptyingStatement } from './shared-tables.js';

/**
 * Operations on running replication: drop, resync, revert. Each returns the statements it ran
 * (for the user to see and learn from) and says what remains when it cannot finish everything.
 */

export interface OperationReport {
  ran: { node: string; sql: string }[];
  notes: string[];
}

async function reachable(sql: Sql): Promise<boolean> {
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  }
}

/**
 * Drops a subscription and its slot. With the publisher down, the subscription is detached from
 * its slot first (DISABLE, slot_name = NONE) so the drop does not need the publisher; the slot
 * left there is named with the statement that removes it.
 */
export async function dropSubscription(sub: SubscriptionSpec, subSql: Sql, pubSql: Sql, report: OperationReport): Promise<void> {
  const run = async (node: string, sql: Sql, text: string) => {
    await sql.unsafe(text);
    report.ran.push({ node, sql: `${text};` });
  };
  const [exists] = await subSql<{ n: number }[]>`select count(*)::int as n from pg_subscription where subname = ${sub.name}`;
  if (!exists?.n) {
    report.notes.push(`${sub.name} does not exist on ${sub.node}; nothing to drop`);
    return;
  }
  const name = quoteIdent(sub.name);
  if (await reachable(pubSql)) {
    await run(sub.node, subSql, `DROP SUBSCRIPTION ${name}`);
    return;
  }
  await run(sub.node, subSql, `ALTER SUBSCRIPTION ${name} DISABLE`);
  await run(sub.node, subSql, `ALTER SUBSCRIPTION ${name} SET (slot_name = NONE)`);
  await run(sub.node, subSql, `DROP SUBSCRIPTION ${name}`);
  report.notes.push(
    `${sub.publisher} is down, so its replication slot "${slotName(sub.name)}" is still there and keeps WAL; when ${sub.publisher} is back run on it: SELECT pg_drop_replication_slot('${slotName(sub.name)}');`,
  );
}

/** Tables a subscription receives, as its subscriber knows them. */
async function subscribedTables(subSql: Sql, name: string): Promise<{ schema: string; name: string; quoted: string }[]> {
  return subSql<{ schema: string; name: string; quoted: string }[]>`
    select n.nspname::text as schema, c.relname::text as name, quote_ident(n.nspname) || '.' || quote_ident(c.relname) as quoted
    from pg_subscription_rel r join pg_class c on c.oid = r.srrelid
    join pg_namespace n on n.oid = c.relnamespace join pg_subscription s on s.oid = r.srsubid where s.subname = ${name} order by 3`;
}

/**
 * Resyncs a whole subscription: drop it (and its slot), empty its tables on the subscriber; the
 * caller re-applies the plan, whose CREATE SUBSCRIPTION copies everything afresh. A table
 * another subscription also feeds keeps that subscription's rows (see shared-tables.ts); how
 * each table is emptied is decided before anything changes, so a refusal leaves all as it was.
 */
export async function resetSubscription(config: ReplicationConfig, sub: SubscriptionSpec, subSql: Sql, pubSql: Sql, applied: AppliedState, report: OperationReport): Promise<void> {
  const tables = await subscribedTables(subSql, sub.name);
  const full = withHeartbeat(config);
  const truncate: string[] = [];
  const statements: string[] = [];
  for (const t of tables) {
    const how = await emptyingStatement(full, sub, { schema: t.schema, name: t.name }, subSql);
    if ('truncate' in how) truncate.push(t.quoted);
    else statements.push(how.sql);
  }
  if (truncate.length) statements.unshift(`TRUNCATE ${truncate.join(', ')}`);
  await dropSubscription(sub, subSql, pubSql, report);
  for (const text of statements) {
    await subSql.unsafe(text);
    report.ran.push({ node: sub.node, sql: `${text};` });
  }
  delete applied.subscriptions[sub.name];
}

/**
 * Resyncs one table of a subscription: Postgres copies a table afresh only when it (re)enters a
 * subscription, so the table leaves its publication and comes back, and the subscription is
 * refreshed each time. Changes made meanwhile are in the fresh copy. Refused when the
 * publication feeds other subscriptions, which would lose the table for a moment too.
 */
export async function resyncTable(
  config: ReplicationConfig,
  sub: SubscriptionSpec,
  table: { schema: string; name: string },
  subSql: Sql,
  pubSql: Sql,
  report: OperationReport,
): Promise<void> {
  const key = tableKey(table);
  config = withHeartbeat(config);
  const pubs = config.publications.filter((p) => sub.publications.includes(p.name) && p.tables.some((t) => tableKey(t.table) === key));
  if (!pubs.length) throw new Error(`${key} is not in any publication of ${sub.name}`);
  for (const p of pubs) {
    const others = config.subscriptions.filter((s) => s.name !== sub.name && s.publications.includes(p.name));
    if (others.length) {
      throw new Error(`publication ${p.name} also feeds ${others.map((s) => s.name).join(', ')}; resync the whole subscription instead: prodhome replication resync ${sub.name}`);
    }
  }
  const run = async (node: string, sql: Sql, text: string) => {
    await sql.unsafe(text);
    report.ran.push({ node, sql: `${text};` });
  };
  // Decided before anything changes: the others' rows of a shared table stay (shared-tables.ts).
  const how = await emptyingStatement(config, sub, table, subSql);
  const empty = 'truncate' in how ? `TRUNCATE ${qualified(table)}` : how.sql;
  const clauses = pubs.map((p) => {
    const t = p.tables.find((x) => tableKey(x.table) === key)!;
    const cols = t.columns ? ` (${t.columns.map(quoteIdent).join(', ')})` : '';
    const where = t.where ? ` WHERE (${assertRowFilter(t.where, `publication ${p.name}, table ${key}`)})` : '';
    return { p, cols, where };
  });
  const name = quoteIdent(sub.name);
  for (const p of pubs) await run(sub.publisher, pubSql, `ALTER PUBLICATION ${quoteIdent(p.name)} DROP TABLE ${qualified(table)}`);
  await run(sub.node, subSql, `ALTER SUBSCRIPTION ${name} REFRESH PUBLICATION`);
  await run(sub.node, subSql, empty);
  for (const { p, cols, where } of clauses) {
    await run(sub.publisher, pubSql, `ALTER PUBLICATION ${quoteIdent(p.name)} ADD TABLE ${qualified(table)}${cols}${where}`);
  }
  await run(sub.node, subSql, `ALTER SUBSCRIPTION ${name} REFRESH PUBLICATION WITH (copy_data = true)`);
}

/**
 * Undoes what replication apply did: subscriptions (and slots), publications, the replication
 * role, and the settings changed with ALTER SYSTEM (set back to the values recorded before).
 * Tables and their rows stay. Returns the nodes that need a restart for the settings.
 */
export async function revertReplication(applied: AppliedState, sql: (node: string) => Sql, report: OperationReport): Promise<string[]> {
  const run = async (node: string, text: string) => {
    await sql(node).unsafe(text);
    report.ran.push({ node, sql: `${text};` });
  };
  for (const [name, sub] of Object.entries(applied.subscriptions)) {
    await dropSubscription({ name, node: sub.node, publisher: sub.publisher, publications: sub.publications, options: sub.options }, sql(sub.node), sql(sub.publisher), report);
    delete applied.subscriptions[name];
  }
  for (const [name, pub] of Object.entries(applied.publications)) {
    await run(pub.node, `DROP PUBLICATION IF EXISTS ${quoteIdent(name)}`);
    delete applied.publications[name];
  }
  for (const node of applied.roles) {
    await run(node, `DROP OWNED BY ${REPLICATION_ROLE}`);
    await run(node, `DROP ROLE IF EXISTS ${REPLICATION_ROLE}`);
  }
  applied.roles = [];
  const restart: string[] = [];
  for (const [node, settings] of Object.entries(applied.previousSettings)) {
    for (const [name, value] of Object.entries(settings)) {
      const [q] = await sql(node)<{ q: string }[]>`select format('ALTER SYSTEM SET %I = %L', ${name}::text, ${value}::text) as q`;
      await run(node, q!.q);
    }
    restart.push(node);
    delete applied.previousSettings[node];
  }
  return restart;
}
