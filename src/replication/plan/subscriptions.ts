import type { SubscriptionSpec, TableRef } from '../../config/index.js';
import { quoteIdent } from '../../pg/index.js';
import { qualified, subscriptions as readSubscriptions, tableInfo, tableKey } from '../catalog.js';
import { tableDdl } from '../ddl.js';
import { HEARTBEAT_SUBSCRIBER_SQL, isHeartbeat } from '../heartbeat.js';
import { sharedTableCollisions } from '../shared-tables.js';
import { runUntracked } from './secret-statements.js';
import { REPLICATION_ROLE, hash, lit, type AppliedState, type PlanContext, type Problem, type StagePlan, type Step } from './types.js';

function conninfo(c: PlanContext, publisher: string, masked: boolean): string {
  const info = c.nodes.get(publisher)!.connection;
  const q = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const password = masked ? '********' : c.replicationPassword(publisher);
  return `host=${q(info.host)} port=${info.port} dbname=${q(info.database)} user=${REPLICATION_ROLE} password=${masked ? password : q(password)}`;
}

/**
 * The replication slot a subscription uses. Slot names allow only a-z, 0-9 and _, while
 * subscription names may be any identifier; other names get a sanitised slot with a short hash.
 */
export function slotName(subscription: string): string {
  if (/^[a-z0-9_]{1,63}$/.test(subscription)) return subscription;
  const base = subscription.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 50);
  return `${base}_${hash(subscription).slice(0, 8)}`;
}

function optionsClause(o: SubscriptionSpec['options'], creating: boolean, name?: string): string {
  const parts: string[] = [];
  if (creating && name && slotName(name) !== name) parts.push(`slot_name = ${lit(slotName(name))}`);
  if (creating && o.copy_data !== undefined) parts.push(`copy_data = ${o.copy_data}`);
  if (o.streaming !== undefined) parts.push(`streaming = ${typeof o.streaming === 'boolean' ? o.streaming : o.streaming}`);
  if (o.binary !== undefined) parts.push(`binary = ${o.binary}`);
  if (o.disable_on_error !== undefined) parts.push(`disable_on_error = ${o.disable_on_error}`);
  return parts.join(', ');
}

/** Subscriber tables (copied from the publisher's catalog) and the subscriptions themselves. */
export async function planSubscriptions(ctx: PlanContext): Promise<StagePlan> {
  const steps: Step[] = [];
  const problems: Problem[] = [];
  const created = new Set<string>();
  const emptied = new Set<string>();
  for (const sub of ctx.config.subscriptions) {
    if (!ctx.nodes.has(sub.node) || !ctx.nodes.has(sub.publisher)) continue;
    const subSql = ctx.sql(sub.node);
    const pubSql = ctx.sql(sub.publisher);
    const pubs = sub.publications.map((n) => ctx.config.publications.find((p) => p.name === n)!);
    // Tables this subscription receives, with the columns it needs.
    const tables = new Map<string, { ref: TableRef; columns?: string[] }>();
    for (const p of pubs) {
      const list = p.allTables
        ? (await pubSql<{ schema: string; name: string }[]>`
            select n.nspname::text as schema, c.relname::text as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'`).map((r) => ({ table: r, columns: undefined as string[] | undefined }))
        : p.tables.map((t) => ({ table: t.table, columns: t.columns }));
      for (const t of list) {
        const k = tableKey(t.table);
        const prev = tables.get(k);
        const columns = prev && (!prev.columns || !t.columns) ? undefined : [...new Set([...(prev?.columns ?? []), ...(t.columns ?? [])])];
        tables.set(k, { ref: t.table, columns: prev || t.columns ? columns : undefined });
      }
    }
    for (const [k, t] of tables) {
      const onPublisher = await tableInfo(pubSql, t.ref);
      const onSubscriber = ctx.all ? undefined : await tableInfo(subSql, t.ref);
      const needed = t.columns ?? onPublisher?.columns ?? [];
      if (onSubscriber) {
        const missing = needed.filter((c) => !onSubscriber.columns.includes(c));
        if (missing.length) problems.push({ node: sub.node, what: `subscription ${sub.name}: ${k} on ${sub.node} lacks column(s) ${missing.join(', ')} that ${sub.publisher} publishes`, fix: `add them on ${sub.node} (ALTER TABLE … ADD COLUMN), or drop the table there and let prodhome copy it` });
        continue;
      }
      if (created.has(`${sub.node}:${k}`)) continue;
      created.add(`${sub.node}:${k}`);
      // The heartbeat's subscriber copy also stamps when each beat was applied.
      const extra = isHeartbeat(t.ref) ? HEARTBEAT_SUBSCRIBER_SQL : [];
      const ddl = [...(onPublisher ? await tableDdl(pubSql, onPublisher, t.columns) : [`-- CREATE TABLE ${qualified(t.ref)} (…) from ${sub.publisher}'s catalog, once the table exists there`]), ...extra];
      steps.push({
        node: sub.node,
        kind: 'sql',
        reason: isHeartbeat(t.ref)
          ? `${sub.name} carries the heartbeat that measures commit-to-apply latency; its table is copied, plus an apply-time stamp`
          : `${sub.name} receives ${k}; its table is copied from ${sub.publisher}'s catalog`,
        show: ddl.join('\n'),
        exec: async (c) => {
          const info = await tableInfo(c.sql(sub.publisher), t.ref);
          if (!info) throw new Error(`${k} does not exist on ${sub.publisher}`);
          const statements = [...(await tableDdl(c.sql(sub.publisher), info, t.columns)), ...extra.filter((x) => !x.startsWith('--'))];
          await c.sql(sub.node).begin(async (tx) => {
            for (const s of statements) await tx.unsafe(s);
          });
        },
        undo: async (c) => void (await c.sql(sub.node).unsafe(`DROP TABLE IF EXISTS ${qualified(t.ref)}`)),
      });
    }

    const existing = ctx.all ? undefined : (await readSubscriptions(subSql)).get(sub.name);
    const applied = ctx.applied.subscriptions[sub.name];
    const record = (a: AppliedState) => {
      a.subscriptions[sub.name] = { node: sub.node, publisher: sub.publisher, publications: sub.publications, options: sub.options };
    };
    const pubList = sub.publications.map(quoteIdent).join(', ');
    if (!existing) {
      // A slot of this name left behind (its subscription was dropped while the publisher was
      // down) would make CREATE SUBSCRIPTION fail; it belongs to no one now.
      const [orphan] = ctx.all ? [] : await pubSql<{ active: boolean }[]>`select active from pg_replication_slots where slot_name = ${slotName(sub.name)}`;
      if (orphan && !orphan.active) {
        const text = `SELECT pg_drop_replication_slot(${lit(slotName(sub.name))})`;
        steps.push({ node: sub.publisher, kind: 'sql', reason: `a slot left from an earlier drop of ${sub.name} (its publisher was down then)`, show: `${text};`, exec: async (c) => void (await c.sql(sub.publisher).unsafe(text)) });
      }
      if (sub.options.copy_data !== false) {
        // The initial copy starts from empty tables; rows already there (left by an earlier
        // subscription) would collide with it. Lab nodes are emptied; external ones are not touched.
        // A table another subscription feeds is never emptied (its rows would be lost): the copy
        // goes ahead only when no row there falls under this subscription's filter.
        for (const [k, t] of tables) {
          if (ctx.all || !(await tableInfo(subSql, t.ref))) continue;
          const shared = await sharedTableCollisions(ctx.config, sub, t.ref, subSql);
          if (shared) {
            const them = shared.others.join(', ');
            if ('error' in shared) {
              problems.push({ node: sub.node, what: `subscription ${sub.name}: ${k} on ${sub.node} is fed by ${them} too, and its row filter cannot be evaluated there to tell the rows apart (${shared.error})`, fix: `set options: { copy_data: false } for ${sub.name} if the rows it needs are already there, or subscribe it on another node` });
            } else if (shared.rows > 0) {
              problems.push({
                node: sub.node,
                what: `subscription ${sub.name}: ${shared.rows} row(s) of ${k} on ${sub.node} already fall under its row filter, and ${them} feeds that table too: the initial copy would collide with them, and prodhome never empties a table another subscription feeds`,
                fix: `make the row filters of ${sub.name}'s and ${them}'s publications disjoint, or set options: { copy_data: false } for ${sub.name} if those rows are already right`,
              });
            }
            continue;
          }
          if (emptied.has(`${sub.node}:${k}`)) continue;
          const [row] = await subSql.unsafe(`select exists (select from ${qualified(t.ref)}) as has_rows`);
          if (!row?.has_rows) continue;
          if (ctx.nodes.get(sub.node)!.runtime === 'external') {
            problems.push({ node: sub.node, what: `subscription ${sub.name}: ${k} on ${sub.node} already has rows, which the initial copy would collide with`, fix: `empty it yourself, or set options: { copy_data: false } if the rows are already right` });
            continue;
          }
          const text = `TRUNCATE ${qualified(t.ref)}`;
          // Once per table and run: a later subscription of this run must not empty what an earlier one copies.
          emptied.add(`${sub.node}:${k}`);
          steps.push({ node: sub.node, kind: 'sql', reason: `${k} on ${sub.node} has rows from before; ${sub.name}'s initial copy starts from empty`, show: `${text};`, exec: async (c) => void (await c.sql(sub.node).unsafe(text)) });
        }
      }
      const opts = optionsClause(sub.options, true, sub.name);
      const build = (masked: boolean) =>
        `CREATE SUBSCRIPTION ${quoteIdent(sub.name)} CONNECTION ${lit(conninfo(ctx, sub.publisher, masked))} PUBLICATION ${pubList}${opts ? ` WITH (${opts})` : ''}`;
      steps.push({
        node: sub.node,
        kind: 'sql',
        reason: `${sub.node} subscribes to ${sub.publications.join(', ')} on ${sub.publisher} (copies the rows, then streams changes)`,
        show: `${build(true)};`,
        exec: async (c) => {
          try {
            // Its conninfo carries the password: a session that neither tracks nor logs it.
            await runUntracked(c.nodes.get(sub.node)!.connection, build(false));
          } catch (e) {
            const msg = (e as Error).message;
            if (/could not connect|connection to server/i.test(msg)) {
              throw new Error(`${sub.node} cannot reach its publisher ${sub.publisher} (${c.nodes.get(sub.publisher)!.connection.host}:${c.nodes.get(sub.publisher)!.connection.port}): ${msg}`);
            }
            throw e;
          }
        },
        undo: async (c) => void (await c.sql(sub.node).unsafe(`DROP SUBSCRIPTION IF EXISTS ${quoteIdent(sub.name)}`)),
        record,
      });
      continue;
    }
    const pubsChanged = [...existing.publications].sort().join() !== [...sub.publications].sort().join();
    if (pubsChanged) {
      const text = `ALTER SUBSCRIPTION ${quoteIdent(sub.name)} SET PUBLICATION ${pubList}`;
      steps.push({ node: sub.node, kind: 'sql', reason: 'its publications changed in the config (this also refreshes its tables)', show: `${text};`, exec: async (c) => void (await c.sql(sub.node).unsafe(text)), record });
    } else {
      // Tables added to one of its publications reach it only after a refresh.
      const known = await subSql<{ k: string }[]>`
        select n.nspname || '.' || c.relname as k from pg_subscription_rel r join pg_class c on c.oid = r.srrelid
        join pg_namespace n on n.oid = c.relnamespace join pg_subscription s on s.oid = r.srsubid where s.subname = ${sub.name}`;
      const knownSet = new Set(known.map((r) => r.k));
      const missing = [...tables.keys()].filter((k) => !knownSet.has(k));
      if (missing.length && !pubs.some((p) => p.allTables)) {
        const text = `ALTER SUBSCRIPTION ${quoteIdent(sub.name)} REFRESH PUBLICATION`;
        steps.push({ node: sub.node, kind: 'sql', reason: `pick up ${missing.join(', ')}, newly published`, show: `${text};`, exec: async (c) => void (await c.sql(sub.node).unsafe(text)), record });
      }
    }
    if (applied && JSON.stringify(applied.options) !== JSON.stringify(sub.options)) {
      const opts = optionsClause(sub.options, false);
      if (opts) {
        const text = `ALTER SUBSCRIPTION ${quoteIdent(sub.name)} SET (${opts})`;
        steps.push({ node: sub.node, kind: 'sql', reason: 'its options changed in the config', show: `${text};`, exec: async (c) => void (await c.sql(sub.node).unsafe(text)), record });
      }
    }
    if (!applied) steps.push({ node: sub.node, kind: 'sql', reason: `adopt the existing subscription ${sub.name}`, show: `-- ${sub.name} exists; prodhome manages it from now on`, exec: async () => {}, record });
  }
  return { steps, problems };
}
