import crypto from 'node:crypto';
import type { PublicationSpec, PublishedTable, ReplicationConfig, SubscriptionSpec, TableRef } from '../config/index.js';
import { quoteIdent, type ConnectionInfo, type Sql } from '../pg/index.js';
import {
  REPLICATION_SETTINGS, publications as readPublications, qualified, serverFacts, subscriptions as readSubscriptions, tableInfo, tableKey,
  type ServerFacts, type TableInfo,
} from './catalog.js';
import { tableDdl } from './ddl.js';

/**
 * Desired replication (config) + what the servers have (catalogs) + what prodhome applied
 * before (replication.json) → an ordered list of Steps, each with the SQL it runs and a one-line
 * reason. Printed as is, a plan is the step-by-step manual procedure; applied, it converges.
 * Planning happens in stages, because later stages read what earlier ones create (the
 * subscriber's copy of a table is read from the publisher's catalog once the table exists).
 */

export const REPLICATION_ROLE = 'prodhome_replication';

export interface Step {
  node: string;
  reason: string;
  /** What the plan shows: SQL (secrets masked) or a process action in words. */
  show: string;
  kind: 'sql' | 'restart' | 'copy';
  exec: (ctx: PlanContext) => Promise<void>;
  /** Reverts this step when a later one fails; absent when it cannot be undone (said in `remains`). */
  undo?: (ctx: PlanContext) => Promise<void>;
  /** Said to the user when a failed apply cannot undo this step. */
  remains?: string;
  /** Updates the applied-state record once the step succeeded. */
  record?: (applied: AppliedState) => void;
}

export interface Problem {
  node: string;
  what: string;
  fix: string;
}

/** What prodhome applied, kept in the lab's replication.json; drives convergence and revert. */
export interface AppliedState {
  schema: Record<string, string[]>;
  publications: Record<string, { node: string; allTables: boolean; publish: string[]; tables: Record<string, Omit<PublishedTable, 'table'>> }>;
  subscriptions: Record<string, { node: string; publisher: string; publications: string[]; options: SubscriptionSpec['options'] }>;
  /** Settings prodhome changed with ALTER SYSTEM, with their values before. */
  previousSettings: Record<string, Record<string, string>>;
  /** Publishers where prodhome created the replication role. */
  roles: string[];
}

export const emptyApplied = (): AppliedState => ({ schema: {}, publications: {}, subscriptions: {}, previousSettings: {}, roles: [] });

export interface PlanNode {
  connection: ConnectionInfo;
  runtime: 'local' | 'external';
}

export interface PlanContext {
  config: ReplicationConfig;
  nodes: Map<string, PlanNode>;
  sql: (node: string) => Sql;
  /** The replication role's password on a publisher (created and stored if missing). */
  replicationPassword: (publisher: string) => string;
  /** Whether a password for the replication role on this publisher is already stored. */
  hasReplicationPassword: (publisher: string) => boolean;
  restart: (node: string) => Promise<void>;
  applied: AppliedState;
  dryRun: boolean;
}

export type Stage = 'drops' | 'settings' | 'schema' | 'publications' | 'subscriptions';
export const STAGES: Stage[] = ['drops', 'settings', 'schema', 'publications', 'subscriptions'];

export interface StagePlan {
  steps: Step[];
  problems: Problem[];
}

const hash = (s: string) => crypto.createHash('sha1').update(s).digest('hex').slice(0, 16);
const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
const publisherNodes = (c: ReplicationConfig) => [...new Set(c.publications.map((p) => p.node))];
const subscriberNodes = (c: ReplicationConfig) => [...new Set(c.subscriptions.map((s) => s.node))];

export async function planStage(stage: Stage, ctx: PlanContext): Promise<StagePlan> {
  switch (stage) {
    case 'drops':
      return planDrops(ctx);
    case 'settings':
      return planSettings(ctx);
    case 'schema':
      return planSchema(ctx);
    case 'publications':
      return planPublications(ctx);
    case 'subscriptions':
      return planSubscriptions(ctx);
  }
}

/** Subscriptions and publications prodhome made that the config no longer has. */
async function planDrops(ctx: PlanContext): Promise<StagePlan> {
  const steps: Step[] = [];
  for (const [name, sub] of Object.entries(ctx.applied.subscriptions)) {
    if (ctx.config.subscriptions.some((s) => s.name === name)) continue;
    if (!ctx.nodes.has(sub.node)) continue;
    steps.push({
      node: sub.node,
      kind: 'sql',
      reason: `subscription ${name} is no longer in the config (its slot on ${sub.publisher} goes too)`,
      show: `DROP SUBSCRIPTION IF EXISTS ${quoteIdent(name)};`,
      exec: async (c) => void (await c.sql(sub.node).unsafe(`DROP SUBSCRIPTION IF EXISTS ${quoteIdent(name)}`)),
      remains: `subscription ${name} was dropped on ${sub.node}`,
      record: (a) => delete a.subscriptions[name],
    });
  }
  for (const [name, pub] of Object.entries(ctx.applied.publications)) {
    if (ctx.config.publications.some((p) => p.name === name) || !ctx.nodes.has(pub.node)) continue;
    steps.push({
      node: pub.node,
      kind: 'sql',
      reason: `publication ${name} is no longer in the config`,
      show: `DROP PUBLICATION IF EXISTS ${quoteIdent(name)};`,
      exec: async (c) => void (await c.sql(pub.node).unsafe(`DROP PUBLICATION IF EXISTS ${quoteIdent(name)}`)),
      remains: `publication ${name} was dropped on ${pub.node}`,
      record: (a) => delete a.publications[name],
    });
  }
  return { steps, problems: [] };
}

/** Server settings logical replication needs, set with ALTER SYSTEM (previous values recorded). */
async function planSettings(ctx: PlanContext): Promise<StagePlan> {
  const steps: Step[] = [];
  const problems: Problem[] = [];
  const wanted = new Map<string, Record<string, number | 'logical'>>();
  for (const node of publisherNodes(ctx.config)) {
    const subs = ctx.config.subscriptions.filter((s) => s.publisher === node).length;
    // Each subscription holds a slot and a sender; its initial sync briefly needs two more.
    wanted.set(node, { wal_level: 'logical', max_replication_slots: subs + 2, max_wal_senders: subs + 2 });
  }
  for (const node of subscriberNodes(ctx.config)) {
    const subs = ctx.config.subscriptions.filter((s) => s.node === node).length;
    const w = wanted.get(node) ?? {};
    w.max_logical_replication_workers = subs + 2;
    w.max_worker_processes = subs + 6;
    wanted.set(node, w);
  }
  for (const [node, want] of wanted) {
    if (!ctx.nodes.has(node)) continue;
    const facts = await serverFacts(ctx.sql(node));
    const changes: [string, string, string][] = [];
    for (const [name, value] of Object.entries(want)) {
      const have = facts.settings[name];
      if (have === undefined) continue;
      const ok = value === 'logical' ? have === 'logical' : Number(have) >= value;
      if (!ok) changes.push([name, have, String(value)]);
    }
    if (!changes.length) continue;
    if (!facts.isSuperuser) {
      problems.push({ node, what: `needs ${changes.map(([n, h, v]) => `${n}=${v} (now ${h})`).join(', ')} for logical replication`, fix: `ask its administrator to set them and restart it` });
      continue;
    }
    for (const [name, have, value] of changes) {
      steps.push({
        node,
        kind: 'sql',
        reason: `${name} is ${have}; logical replication needs ${value === 'logical' ? 'logical' : `at least ${value}`}`,
        show: `ALTER SYSTEM SET ${name} = ${lit(value)};`,
        exec: async (c) => void (await c.sql(node).unsafe(`ALTER SYSTEM SET ${name} = ${lit(value)}`)),
        undo: async (c) => void (await c.sql(node).unsafe(`ALTER SYSTEM RESET ${name}`)),
        record: (a) => {
          a.previousSettings[node] ??= {};
          a.previousSettings[node][name] ??= have;
        },
      });
    }
    if (ctx.nodes.get(node)!.runtime === 'external') {
      problems.push({ node, what: `${changes.map(([n]) => n).join(', ')} ${changes.length > 1 ? 'take' : 'takes'} effect only after a restart, and prodhome does not restart external servers`, fix: `set them, restart ${node} yourself, then run prodhome replicate again` });
    } else {
      steps.push({
        node,
        kind: 'restart',
        reason: `${changes.map(([n]) => n).join(', ')} take effect only at server start`,
        show: `-- prodhome restarts ${node} now (like: pg_ctl restart -m fast)`,
        exec: async (c) => c.restart(node),
      });
    }
  }
  return { steps, problems };
}

/** The lab's tables (schema:) and their first rows (seed:). */
async function planSchema(ctx: PlanContext): Promise<StagePlan> {
  const steps: Step[] = [];
  for (const entry of ctx.config.schema) {
    if (!ctx.nodes.has(entry.node)) continue;
    const h = hash(entry.sql);
    if (ctx.applied.schema[entry.node]?.includes(h)) continue;
    steps.push({
      node: entry.node,
      kind: 'sql',
      reason: `the lab's tables (${entry.origin})`,
      show: entry.sql.trim(),
      exec: async (c) => void (await c.sql(entry.node).unsafe(entry.sql)),
      remains: `${entry.origin} ran on ${entry.node}; what it created is still there`,
      record: (a) => {
        a.schema[entry.node] = [...(a.schema[entry.node] ?? []), h];
      },
    });
  }
  for (const seed of ctx.config.seed) {
    if (!ctx.nodes.has(seed.node)) continue;
    const sql = ctx.sql(seed.node);
    const exists = await tableInfo(sql, seed.table);
    if (exists) {
      const [row] = await sql.unsafe(`select exists (select from ${qualified(seed.table)}) as has_rows`);
      if (row?.has_rows) continue;
    }
    const header = seed.csv.split('\n')[0]!.trim();
    const columns = header.split(',').map((c) => quoteIdent(c.trim())).join(', ');
    const rows = seed.csv.trim().split('\n').length - 1;
    const copy = `COPY ${qualified(seed.table)} (${columns}) FROM STDIN WITH (FORMAT csv, HEADER true)`;
    steps.push({
      node: seed.node,
      kind: 'copy',
      reason: `${tableKey(seed.table)} is empty: load ${rows} rows from ${seed.origin}`,
      show: `${copy};  -- ${rows} rows`,
      exec: async (c) => {
        const stream = await c.sql(seed.node).unsafe(copy).writable();
        await new Promise<void>((resolve, reject) => {
          stream.on('error', reject);
          stream.on('finish', resolve);
          stream.end(seed.csv);
        });
      },
      undo: async (c) => void (await c.sql(seed.node).unsafe(`TRUNCATE ${qualified(seed.table)}`)),
    });
  }
  return { steps, problems: [] };
}

/** Columns a row filter mentions: identifiers outside string literals that are table columns. */
export function filterColumns(where: string, columns: string[]): string[] {
  const noStrings = where.replace(/'(?:[^']|'')*'/g, ' ');
  const found = new Set<string>();
  for (const m of noStrings.matchAll(/"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)/g)) {
    const name = m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]!.toLowerCase();
    if (columns.includes(name)) found.add(name);
  }
  return [...found];
}

function tableClause(t: PublishedTable): string {
  const cols = t.columns ? ` (${t.columns.map(quoteIdent).join(', ')})` : '';
  const where = t.where ? ` WHERE (${t.where})` : '';
  return `${qualified(t.table)}${cols}${where}`;
}

const sameTable = (a: Omit<PublishedTable, 'table'> | undefined, b: PublishedTable) =>
  !!a && a.where === b.where && JSON.stringify(a.columns) === JSON.stringify(b.columns);

/** Preflight of a published table: the traps that make UPDATE/DELETE fail or the copy wrong. */
async function checkTable(pub: PublicationSpec, t: PublishedTable, info: TableInfo | undefined, facts: ServerFacts, sql: Sql, problems: Problem[]): Promise<void> {
  const where = `publication ${pub.name}, table ${tableKey(t.table)}`;
  if (!info) {
    problems.push({ node: pub.node, what: `${where}: no such table on ${pub.node}`, fix: 'create it (schema: in prodhome.yaml) or fix the table name' });
    return;
  }
  if ((t.where || t.columns) && facts.major < 15) {
    problems.push({ node: pub.node, what: `${where}: row filters and column lists need a Postgres 15+ publisher; ${pub.node} runs ${facts.major}`, fix: `run ${pub.node} on Postgres 15 or later (postgres.version), or drop where:/columns:` });
  }
  const unknown = (t.columns ?? []).filter((c) => !info.columns.includes(c));
  if (unknown.length) problems.push({ node: pub.node, what: `${where}: no column ${unknown.map((c) => `"${c}"`).join(', ')} (columns: ${info.columns.join(', ')})`, fix: 'fix the column list' });
  if (t.where) {
    try {
      await sql.unsafe(`EXPLAIN SELECT FROM ${qualified(t.table)} WHERE (${t.where})`);
    } catch (e) {
      problems.push({ node: pub.node, what: `${where}: the row filter (${t.where}) is not valid: ${(e as Error).message}`, fix: 'fix where: — it is an SQL boolean expression over the table\'s columns' });
      return;
    }
  }
  const changesRows = pub.publish.includes('update') || pub.publish.includes('delete');
  if (!changesRows) return;
  const identity = t.replicaIdentity === 'full' ? 'f' : t.replicaIdentity === 'default' ? 'd' : info.replicaIdentity;
  const identityCols = identity === 'f' ? info.columns : identity === 'd' ? info.primaryKey : identity === 'i' ? info.identityColumns : [];
  if (identity === 'n' || (identity === 'd' && info.primaryKey.length === 0)) {
    problems.push({
      node: pub.node,
      what: `${where}: the table has no primary key or replica identity, so once published its UPDATE and DELETE fail on ${pub.node}`,
      fix: `add a primary key, or set replicaIdentity: full for ${tableKey(t.table)}, or publish: [insert]`,
    });
    return;
  }
  if (t.where) {
    const outside = filterColumns(t.where, info.columns).filter((c) => !identityCols.includes(c));
    if (outside.length) {
      problems.push({
        node: pub.node,
        what: `${where}: the row filter uses ${outside.join(', ')}, outside the replica identity (${identityCols.join(', ') || 'none'}), so every UPDATE and DELETE of ${tableKey(t.table)} would fail on ${pub.node}`,
        fix: `set replicaIdentity: full for ${tableKey(t.table)} in publication ${pub.name}, or publish only insert`,
      });
    }
  }
  if (t.columns) {
    const missing = identityCols.filter((c) => !t.columns!.includes(c));
    if (identity !== 'f' && missing.length) {
      problems.push({ node: pub.node, what: `${where}: the column list leaves out replica identity column(s) ${missing.join(', ')}, so UPDATE and DELETE would fail`, fix: 'add them to columns:' });
    }
  }
}

/** Replication role, replica identity, grants and publications on each publisher. */
async function planPublications(ctx: PlanContext): Promise<StagePlan> {
  const steps: Step[] = [];
  const problems: Problem[] = [];
  for (const node of publisherNodes(ctx.config)) {
    if (!ctx.nodes.has(node)) continue;
    const sql = ctx.sql(node);
    const facts = await serverFacts(sql);
    const pubs = ctx.config.publications.filter((p) => p.node === node);
    const hasSubscribers = ctx.config.subscriptions.some((s) => s.publisher === node);

    // The role subscribers connect as: REPLICATION and SELECT on what is published, no more.
    const [role] = await sql<{ exists: boolean }[]>`select exists (select from pg_roles where rolname = ${REPLICATION_ROLE}) as exists`;
    if (hasSubscribers && !role?.exists) {
      if (!facts.isSuperuser) problems.push({ node, what: `cannot create the replication role ${REPLICATION_ROLE}: the connecting user is not a superuser`, fix: `create it yourself: CREATE ROLE ${REPLICATION_ROLE} LOGIN REPLICATION PASSWORD '…'` });
      steps.push({
        node,
        kind: 'sql',
        reason: 'subscribers connect as a dedicated role with REPLICATION and a password, not as a superuser',
        show: `CREATE ROLE ${REPLICATION_ROLE} LOGIN REPLICATION PASSWORD '********';`,
        exec: async (c) => {
          // The password is a literal (utility statements take no parameters), built server-side by format(%L).
          const [q] = await c.sql(node)<{ q: string }[]>`select format('CREATE ROLE %I LOGIN REPLICATION PASSWORD %L', ${REPLICATION_ROLE}::text, ${c.replicationPassword(node)}::text) as q`;
          await c.sql(node).unsafe(q!.q);
        },
        undo: async (c) => {
          await c.sql(node).unsafe(`DROP OWNED BY ${REPLICATION_ROLE}`);
          await c.sql(node).unsafe(`DROP ROLE IF EXISTS ${REPLICATION_ROLE}`);
        },
        record: (a) => void (a.roles.includes(node) || a.roles.push(node)),
      });
    }

    if (hasSubscribers && role?.exists && !ctx.hasReplicationPassword(node)) {
      // The role is there but its password is not in this lab's secrets (state lost, or made by hand).
      steps.push({
        node,
        kind: 'sql',
        reason: `${REPLICATION_ROLE} exists but this lab does not know its password; give it a new one`,
        show: `ALTER ROLE ${REPLICATION_ROLE} PASSWORD '********';`,
        exec: async (c) => {
          const [q] = await c.sql(node)<{ q: string }[]>`select format('ALTER ROLE %I PASSWORD %L', ${REPLICATION_ROLE}::text, ${c.replicationPassword(node)}::text) as q`;
          await c.sql(node).unsafe(q!.q);
        },
      });
    }

    for (const pub of pubs) {
      const tableInfos = new Map<string, TableInfo | undefined>();
      for (const t of pub.tables) {
        const info = await tableInfo(sql, t.table);
        tableInfos.set(tableKey(t.table), info);
        await checkTable(pub, t, info, facts, sql, problems);
        if (!info) continue;
        const wantIdent = t.replicaIdentity === 'full' ? 'f' : t.replicaIdentity === 'default' ? 'd' : undefined;
        if (wantIdent && info.replicaIdentity !== wantIdent && !steps.some((s) => s.show.startsWith(`ALTER TABLE ${qualified(t.table)} REPLICA IDENTITY`))) {
          const filterCols = t.where ? filterColumns(t.where, info.columns).filter((c) => !info.primaryKey.includes(c)) : [];
          steps.push({
            node,
            kind: 'sql',
            reason:
              wantIdent === 'f'
                ? `${filterCols.length ? `the row filter uses ${filterCols.join(', ')}, outside the primary key: ` : ''}UPDATE/DELETE must log the whole old row`
                : 'replicaIdentity: default in the config',
            show: `ALTER TABLE ${qualified(t.table)} REPLICA IDENTITY ${wantIdent === 'f' ? 'FULL' : 'DEFAULT'};`,
            exec: async (c) => void (await c.sql(node).unsafe(`ALTER TABLE ${qualified(t.table)} REPLICA IDENTITY ${wantIdent === 'f' ? 'FULL' : 'DEFAULT'}`)),
            undo: async (c) => void (await c.sql(node).unsafe(`ALTER TABLE ${qualified(t.table)} REPLICA IDENTITY ${info.replicaIdentity === 'f' ? 'FULL' : 'DEFAULT'}`)),
          });
        }
        if (hasSubscribers) {
          const granted = role?.exists
            ? (await sql<{ ok: boolean }[]>`select has_table_privilege(${REPLICATION_ROLE}, ${info.oid}::oid, 'SELECT') as ok`)[0]?.ok
            : false;
          const grantShow = `GRANT USAGE ON SCHEMA ${quoteIdent(t.table.schema)} TO ${REPLICATION_ROLE}; GRANT SELECT ON ${qualified(t.table)} TO ${REPLICATION_ROLE};`;
          if (!granted && !steps.some((s) => s.show === grantShow)) {
            steps.push({
              node,
              kind: 'sql',
              reason: `the initial copy reads ${tableKey(t.table)} as ${REPLICATION_ROLE}`,
              show: grantShow,
              exec: async (c) => void (await c.sql(node).unsafe(grantShow)),
            });
          }
        }
      }
      if (pub.allTables && hasSubscribers) {
        const show = `GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${REPLICATION_ROLE};`;
        steps.push({ node, kind: 'sql', reason: 'the initial copy reads every published table', show, exec: async (c) => void (await c.sql(node).unsafe(show)) });
      }
      steps.push(...(await publicationSteps(ctx, pub, sql)));
    }
  }
  return { steps, problems };
}

async function publicationSteps(ctx: PlanContext, pub: PublicationSpec, sql: Sql): Promise<Step[]> {
  const existing = (await readPublications(sql)).get(pub.name);
  const applied = ctx.applied.publications[pub.name];
  const publish = pub.publish.join(', ');
  const record = (a: AppliedState) => {
    a.publications[pub.name] = {
      node: pub.node,
      allTables: pub.allTables,
      publish: pub.publish,
      tables: Object.fromEntries(pub.tables.map(({ table, ...rest }) => [tableKey(table), rest])),
    };
  };
  const run = (text: string) => async (c: PlanContext) => void (await c.sql(pub.node).unsafe(text));
  const target = pub.allTables ? 'FOR ALL TABLES' : `FOR TABLE ${pub.tables.map(tableClause).join(', ')}`;
  if (!existing) {
    const text = `CREATE PUBLICATION ${quoteIdent(pub.name)} ${target} WITH (publish = ${lit(publish)})`;
    return [{
      node: pub.node,
      kind: 'sql',
      reason: `publish ${pub.allTables ? 'every table' : pub.tables.map((t) => `${tableKey(t.table)}${t.where ? ` rows where ${t.where}` : ''}`).join(', ')}`,
      show: `${text};`,
      exec: run(text),
      undo: run(`DROP PUBLICATION IF EXISTS ${quoteIdent(pub.name)}`),
      record,
    }];
  }
  const steps: Step[] = [];
  if (!pub.allTables) {
    const want = new Map(pub.tables.map((t) => [tableKey(t.table), t]));
    const added = pub.tables.filter((t) => !existing.tables.includes(tableKey(t.table)));
    const dropped = existing.tables.filter((k) => !want.has(k));
    const changed = pub.tables.filter((t) => existing.tables.includes(tableKey(t.table)) && applied && !sameTable(applied.tables[tableKey(t.table)], t));
    if (changed.length) {
      const text = `ALTER PUBLICATION ${quoteIdent(pub.name)} SET TABLE ${pub.tables.map(tableClause).join(', ')}`;
      steps.push({ node: pub.node, kind: 'sql', reason: `row filter or columns of ${changed.map((t) => tableKey(t.table)).join(', ')} changed`, show: `${text};`, exec: run(text), record });
    } else {
      for (const t of added) {
        const text = `ALTER PUBLICATION ${quoteIdent(pub.name)} ADD TABLE ${tableClause(t)}`;
        steps.push({ node: pub.node, kind: 'sql', reason: `${tableKey(t.table)} was added to ${pub.name} in the config`, show: `${text};`, exec: run(text), undo: run(`ALTER PUBLICATION ${quoteIdent(pub.name)} DROP TABLE ${qualified(t.table)}`), record });
      }
      for (const k of dropped) {
        const [schema, ...rest] = k.split('.');
        const text = `ALTER PUBLICATION ${quoteIdent(pub.name)} DROP TABLE ${qualified({ schema: schema!, name: rest.join('.') })}`;
        steps.push({ node: pub.node, kind: 'sql', reason: `${k} was removed from ${pub.name} in the config`, show: `${text};`, exec: run(text), record });
      }
    }
  }
  if (applied && applied.publish.join(', ') !== publish) {
    const text = `ALTER PUBLICATION ${quoteIdent(pub.name)} SET (publish = ${lit(publish)})`;
    steps.push({ node: pub.node, kind: 'sql', reason: 'published operations changed', show: `${text};`, exec: run(text), record });
  }
  if (!applied) steps.push({ node: pub.node, kind: 'sql', reason: `adopt the existing publication ${pub.name}`, show: `-- ${pub.name} exists; prodhome manages it from now on`, exec: async () => {}, record });
  return steps;
}

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
async function planSubscriptions(ctx: PlanContext): Promise<StagePlan> {
  const steps: Step[] = [];
  const problems: Problem[] = [];
  const created = new Set<string>();
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
      const onSubscriber = await tableInfo(subSql, t.ref);
      const needed = t.columns ?? onPublisher?.columns ?? [];
      if (onSubscriber) {
        const missing = needed.filter((c) => !onSubscriber.columns.includes(c));
        if (missing.length) problems.push({ node: sub.node, what: `subscription ${sub.name}: ${k} on ${sub.node} lacks column(s) ${missing.join(', ')} that ${sub.publisher} publishes`, fix: `add them on ${sub.node} (ALTER TABLE … ADD COLUMN), or drop the table there and let prodhome copy it` });
        continue;
      }
      if (created.has(`${sub.node}:${k}`)) continue;
      created.add(`${sub.node}:${k}`);
      const ddl = onPublisher ? await tableDdl(pubSql, onPublisher, t.columns) : [`-- CREATE TABLE ${qualified(t.ref)} (…) from ${sub.publisher}'s catalog, once the table exists there`];
      steps.push({
        node: sub.node,
        kind: 'sql',
        reason: `${sub.name} receives ${k}; its table is copied from ${sub.publisher}'s catalog`,
        show: ddl.join('\n'),
        exec: async (c) => {
          const info = await tableInfo(c.sql(sub.publisher), t.ref);
          if (!info) throw new Error(`${k} does not exist on ${sub.publisher}`);
          const statements = await tableDdl(c.sql(sub.publisher), info, t.columns);
          await c.sql(sub.node).begin(async (tx) => {
            for (const s of statements) await tx.unsafe(s);
          });
        },
        undo: async (c) => void (await c.sql(sub.node).unsafe(`DROP TABLE IF EXISTS ${qualified(t.ref)}`)),
      });
    }

    const existing = (await readSubscriptions(subSql)).get(sub.name);
    const applied = ctx.applied.subscriptions[sub.name];
    const record = (a: AppliedState) => {
      a.subscriptions[sub.name] = { node: sub.node, publisher: sub.publisher, publications: sub.publications, options: sub.options };
    };
    const pubList = sub.publications.map(quoteIdent).join(', ');
    if (!existing) {
      // A slot of this name left behind (its subscription was dropped while the publisher was
      // down) would make CREATE SUBSCRIPTION fail; it belongs to no one now.
      const [orphan] = await pubSql<{ active: boolean }[]>`select active from pg_replication_slots where slot_name = ${slotName(sub.name)}`;
      if (orphan && !orphan.active) {
        const text = `SELECT pg_drop_replication_slot(${lit(slotName(sub.name))})`;
        steps.push({ node: sub.publisher, kind: 'sql', reason: `a slot left from an earlier drop of ${sub.name} (its publisher was down then)`, show: `${text};`, exec: async (c) => void (await c.sql(sub.publisher).unsafe(text)) });
      }
      if (sub.options.copy_data !== false) {
        // The initial copy starts from empty tables; rows already there (left by an earlier
        // subscription) would collide with it. Lab nodes are emptied; external ones are not touched.
        for (const [k, t] of tables) {
          if (!(await tableInfo(subSql, t.ref))) continue;
          const [row] = await subSql.unsafe(`select exists (select from ${qualified(t.ref)}) as has_rows`);
          if (!row?.has_rows) continue;
          if (ctx.nodes.get(sub.node)!.runtime === 'external') {
            problems.push({ node: sub.node, what: `subscription ${sub.name}: ${k} on ${sub.node} already has rows, which the initial copy would collide with`, fix: `empty it yourself, or set options: { copy_data: false } if the rows are already right` });
            continue;
          }
          const text = `TRUNCATE ${qualified(t.ref)}`;
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
            await c.sql(sub.node).unsafe(build(false));
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

export { REPLICATION_SETTINGS };
