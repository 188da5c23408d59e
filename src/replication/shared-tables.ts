import type { ReplicationConfig, SubscriptionSpec, TableRef } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import type { Sql } from '../pg/index.js';
import { qualified, tableKey } from './catalog.js';
import { filterPredicate, filtersOf, readOnlyProbe } from './row-filter.js';

/**
 * A subscriber table can be fed by several subscriptions (the default lab's row-filtered
 * publications, subscribed on one node). Emptying it for one of them — before an initial copy
 * or a resync — must never take the others' rows: Postgres would not send them again, and only
 * a later `verify` would show the loss. So a shared table is never truncated; only the rows
 * under this subscription's filter, and under none of the others', are ever deleted.
 */

/** Other subscriptions on this subscriber that feed `table`, as the subscriber's catalog says. */
export async function otherFeeders(subSql: Sql, table: TableRef, except: string): Promise<string[]> {
  const rows = await subSql<{ name: string }[]>`
    select distinct s.subname::text as name from pg_subscription_rel r join pg_subscription s on s.oid = r.srsubid
    join pg_class c on c.oid = r.srrelid join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = ${table.schema} and c.relname = ${table.name} and s.subname <> ${except}
      and s.subdbid = (select oid from pg_database where datname = current_database())
    order by 1`;
  return rows.map((r) => r.name);
}

/**
 * Before a new subscription's initial copy into a table others feed: how many rows already
 * there fall under its filter (the copy would collide with them). Undefined when no other
 * subscription feeds the table. Never changes anything.
 */
export async function sharedTableCollisions(
  config: ReplicationConfig,
  sub: SubscriptionSpec,
  table: TableRef,
  subSql: Sql,
): Promise<{ others: string[]; rows: number } | { others: string[]; error: string } | undefined> {
  const others = await otherFeeders(subSql, table, sub.name);
  if (!others.length) return undefined;
  const mine = filtersOf(config, sub, table) ?? 'all';
  try {
    const [row] = await readOnlyProbe<{ n: number }>(subSql, `SELECT count(*)::int AS n FROM ${qualified(table)} WHERE ${filterPredicate(mine, `subscription ${sub.name}`)}`);
    return { others, rows: row?.n ?? 0 };
  } catch (e) {
    return { others, error: (e as Error).message };
  }
}

/**
 * How `sub`'s rows of `table` on its subscriber are emptied before they are copied afresh:
 * truncated when no other subscription feeds it, else a DELETE of this subscription's
 * rows that keeps every row another subscription's filter selects. Refused, before anything
 * changed, when the rows cannot be told apart.
 */
export async function emptyingStatement(config: ReplicationConfig, sub: SubscriptionSpec, table: TableRef, subSql: Sql): Promise<{ truncate: true } | { sql: string }> {
  const others = await otherFeeders(subSql, table, sub.name);
  if (!others.length) return { truncate: true };
  const key = tableKey(table);
  const them = others.join(', ');
  const refuse = (why: string, fix: string): never => {
    throw new ProdhomeError(
      'REPLICATION_PREFLIGHT',
      `${sub.node}: ${key} is fed by ${sub.name} and by ${them}; ${why}, so emptying it for ${sub.name} could delete rows ${them} delivered. Nothing was changed.`,
      { hint: fix },
    );
  };
  const byHand = `Or do it by hand: drop ${sub.name} (prodhome replication drop ${sub.name}), delete its rows of ${key} on ${sub.node} yourself, then run prodhome up.`;
  const mine = filtersOf(config, sub, table);
  if (mine === undefined) refuse(`the config does not say that ${sub.name} receives it`, `Add ${key} to one of ${sub.name}'s publications in prodhome.yaml, or ${byHand}`);
  if (mine === 'all') refuse(`${sub.name} receives every row of it (no row filter), so its rows cannot be told apart from theirs`, `Give ${key} a row filter (where:) in ${sub.name}'s publication. ${byHand}`);
  const theirs: string[] = [];
  for (const name of others) {
    const spec = config.subscriptions.find((s) => s.name === name);
    const f = spec && filtersOf(config, spec, table);
    if (!f || f === 'all') refuse(`${spec ? `${name} receives every row of it` : `${name} is not in the config, so prodhome does not know which rows are its`}`, byHand);
    theirs.push(...(f as string[]));
  }
  const mineP = filterPredicate(mine as string[], `subscription ${sub.name}`);
  const theirsP = filterPredicate(theirs, `subscription(s) ${them}`);
  let both = 0;
  try {
    const [row] = await readOnlyProbe<{ n: number }>(subSql, `SELECT count(*)::int AS n FROM ${qualified(table)} WHERE ${mineP} AND ${theirsP}`);
    both = row?.n ?? 0;
  } catch (e) {
    refuse(`the row filters cannot be evaluated on ${sub.node} (${(e as Error).message})`, byHand);
  }
  if (both > 0) refuse(`${both} of its rows match both ${sub.name}'s row filter and that of ${them}`, `Make the row filters of their publications disjoint. ${byHand}`);
  // The guard repeats in the statement itself: a row another filter selects is never deleted.
  return { sql: `DELETE FROM ${qualified(table)} WHERE ${mineP} AND NOT (${theirsP})` };
}
