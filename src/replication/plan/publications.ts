import type { PublicationSpec, PublishedTable } from '../../config/index.js';
import { quoteIdent, scramVerifier, type Sql } from '../../pg/index.js';
import { publications as readPublications, qualified, serverFacts, tableInfo, tableKey, type ServerFacts, type TableInfo } from '../catalog.js';
import { runUntracked } from './secret-statements.js';
import { assertRowFilter, checkRowFilter, validateRowFilter } from '../row-filter.js';
import { REPLICATION_ROLE, lit, publisherNodes, type AppliedState, type PlanContext, type Problem, type StagePlan, type Step } from './types.js';

export function filterColumns(where: string, columns: string[]): string[] {
  const noStrings = where.replace(/'(?:[^']|'')*'/g, ' ');
  const found = new Set<string>();
  for (const m of noStrings.matchAll(/"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)/g)) {
    const name = m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]!.toLowerCase();
    if (columns.includes(name)) found.add(name);
  }
  return [...found];
}

export function tableClause(t: PublishedTable): string {
  const cols = t.columns ? ` (${t.columns.map(quoteIdent).join(', ')})` : '';
  const where = t.where ? ` WHERE (${assertRowFilter(t.where, `table ${tableKey(t.table)}`)})` : '';
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
    // Checked without running it: validated as one expression, probed read-only and rolled back.
    const bad = await checkRowFilter(sql, t.table, t.where);
    if (bad) {
      problems.push({ node: pub.node, what: `${where}: the row filter (${t.where}) is ${bad}`, fix: 'fix where: — it is one SQL boolean expression over the table\'s columns (no ";", comments, backslashes or $ quoting)' });
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
export async function planPublications(ctx: PlanContext): Promise<StagePlan> {
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
    if (hasSubscribers && (!role?.exists || ctx.all)) {
      if (!facts.isSuperuser) problems.push({ node, what: `cannot create the replication role ${REPLICATION_ROLE}: the connecting user is not a superuser`, fix: `create it yourself: CREATE ROLE ${REPLICATION_ROLE} LOGIN REPLICATION PASSWORD '…'` });
      steps.push({
        node,
        kind: 'sql',
        reason: 'subscribers connect as a dedicated role with REPLICATION and a password, not as a superuser',
        show: `CREATE ROLE ${REPLICATION_ROLE} LOGIN REPLICATION PASSWORD '********';`,
        // Utility statements take no parameters: the password goes as a SCRAM verifier literal,
        // on a session that neither tracks nor logs it (secret-statements.ts).
        exec: async (c) => runUntracked(c.nodes.get(node)!.connection, `CREATE ROLE ${quoteIdent(REPLICATION_ROLE)} LOGIN REPLICATION PASSWORD ${lit(scramVerifier(c.replicationPassword(node)))}`),
        undo: async (c) => {
          await c.sql(node).unsafe(`DROP OWNED BY ${REPLICATION_ROLE}`);
          await c.sql(node).unsafe(`DROP ROLE IF EXISTS ${REPLICATION_ROLE}`);
        },
        record: (a) => void (a.roles.includes(node) || a.roles.push(node)),
      });
    }

    if (hasSubscribers && role?.exists && !ctx.all && !ctx.hasReplicationPassword(node)) {
      // The role is there but its password is not in this lab's secrets (state lost, or made by hand).
      steps.push({
        node,
        kind: 'sql',
        reason: `${REPLICATION_ROLE} exists but this lab does not know its password; give it a new one`,
        show: `ALTER ROLE ${REPLICATION_ROLE} PASSWORD '********';`,
        exec: async (c) => runUntracked(c.nodes.get(node)!.connection, `ALTER ROLE ${quoteIdent(REPLICATION_ROLE)} PASSWORD ${lit(scramVerifier(c.replicationPassword(node)))}`),
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
      // A refused row filter is a problem above; its publication gets no steps (nothing pasted).
      if (pub.tables.some((t) => t.where && validateRowFilter(t.where))) continue;
      steps.push(...(await publicationSteps(ctx, pub, sql)));
    }
  }
  return { steps, problems };
}

async function publicationSteps(ctx: PlanContext, pub: PublicationSpec, sql: Sql): Promise<Step[]> {
  const existing = ctx.all ? undefined : (await readPublications(sql)).get(pub.name);
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
