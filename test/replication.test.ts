import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_YAML } from '../src/config/index.js';
import { labReplicate, labReplicationStatus, labSetSubscriptionEnabled, labUp, labVerify, nodeConnection, replicationFile } from '../src/lab/index.js';
import { readApplied } from '../src/replication/index.js';
import { connectionUrl, withConnection } from '../src/pg/index.js';
import { resolveBinaries } from '../src/runtime/index.js';
import { IN_CI, cli, tempLab, waitFor, type TempLab } from './helpers.js';

const VERIFY = { waitMs: 20_000, maxKeys: 10 };

/** Runs SQL on a node of a lab, as its superuser. */
function onNode(lab: TempLab, node: string, text: string) {
  return withConnection(nodeConnection(lab.config(), node), (sql) => sql.unsafe(text));
}

describe('the default lab: the origin replication, with updates and deletes that work', () => {
  let lab: TempLab;
  beforeAll(async () => {
    lab = tempLab(DEFAULT_CONFIG_YAML.replace('from: 54320', 'from: 56500').replace('to: 54399', 'to: 56549'));
    await labUp(lab.config());
  });
  afterAll(() => lab.cleanup());

  it('ends up with 2 leadership rows on subscriber1 and 3 technical rows on subscriber2', async () => {
    const result = await labVerify(lab.config(), VERIFY);
    expect(result.ok).toBe(true);
    expect(result.tables.map((t) => [t.subscriber, t.table, t.publisherRows, t.subscriberRows, t.match])).toEqual([
      ['subscriber1', 'public.books', 2, 2, true],
      ['subscriber2', 'public.books', 3, 3, true],
    ]);
    expect(await onNode(lab, 'publisher', 'select count(*)::int as n from books')).toEqual([{ n: 5 }]);
  });

  it('replication status shows each subscription streaming, its tables ready, lag and slot', async () => {
    const status = await waitFor(async () => {
      const st = await labReplicationStatus(lab.config());
      return st.every((x) => x.state === 'streaming' && x.tables.every((t) => t.state === 'ready')) ? st : undefined;
    }, 20_000, 'both subscriptions to stream');
    expect(status.map((x) => [x.subscription, x.subscriber, x.publisher, x.enabled])).toEqual([
      ['leadership_sub', 'subscriber1', 'publisher', true],
      ['technical_sub', 'subscriber2', 'publisher', true],
    ]);
    for (const x of status) {
      expect(x.workerPid).toBeGreaterThan(0);
      // books, and the heartbeat that measures commit-to-apply latency
      expect(x.tables).toEqual([
        { table: 'public.books', state: 'ready' },
        { table: 'public.prodhome_heartbeat', state: 'ready' },
      ]);
      expect(x.slot?.active).toBe(true);
      // an idle lab is caught up but for the heartbeat's few bytes in flight
      expect(x.lagBytes.replay).toEqual(expect.any(Number));
      expect(x.lagBytes.replay).toBeLessThan(1024 * 1024);
      expect([x.applyErrors, x.syncErrors]).toEqual([0, 0]);
    }
    const r = cli(['replication', 'status'], { cwd: lab.dir });
    expect(r.stdout).toMatch(/leadership_sub\s+subscriber1\s+publisher\s+streaming/);
  });

  it('subscribers connect as a replication role that is not a superuser', async () => {
    const [role] = await onNode(lab, 'publisher', "select rolsuper, rolreplication from pg_roles where rolname = 'prodhome_replication'");
    expect(role).toEqual({ rolsuper: false, rolreplication: true });
    const [conn] = await onNode(lab, 'subscriber1', "select subconninfo from pg_subscription where subname = 'leadership_sub'");
    expect(conn!.subconninfo).toMatch(/user=prodhome_replication/);
  });

  it('INSERT, UPDATE, DELETE propagate, and an UPDATE of topic moves the row between subscribers', async () => {
    await onNode(lab, 'publisher', `
      insert into books values (6, 1006, 'Leaders Eat Last', 'leadership');
      update books set title = 'DDIA' where id = 2;
      update books set topic = 'technical' where id = 3;
      delete from books where id = 5`);
    const result = await labVerify(lab.config(), VERIFY);
    expect(result.ok).toBe(true);
    expect(await onNode(lab, 'subscriber1', 'select id::int from books order by id')).toEqual([{ id: 1 }, { id: 6 }]);
    expect(await onNode(lab, 'subscriber2', 'select id::int, title from books order by id')).toEqual([
      { id: 2, title: 'DDIA' },
      { id: 3, title: 'Turn the Ship Around!' },
      { id: 4, title: 'The Art of PostgreSQL' },
    ]);
  });

  it('verify finds a divergence made on purpose and names its key', async () => {
    expect(await labSetSubscriptionEnabled(lab.config(), 'leadership_sub', false)).toBe('ALTER SUBSCRIPTION "leadership_sub" DISABLE;');
    await onNode(lab, 'subscriber1', 'delete from books where id = 6');
    await onNode(lab, 'publisher', "insert into books values (7, 1007, 'Extreme Ownership', 'leadership')");
    const r = cli(['verify', '--wait', '1s', '--json'], { cwd: lab.dir });
    expect(r.code).toBe(1);
    const result = JSON.parse(r.stdout);
    const s1 = result.tables.find((t: { subscriber: string }) => t.subscriber === 'subscriber1');
    expect(s1).toMatchObject({ match: false, missing: ['6', '7'], extra: [], changed: [] });
    expect(result.caughtUp.find((c: { subscription: string }) => c.subscription === 'leadership_sub').caughtUp).toBe(false);

    await labSetSubscriptionEnabled(lab.config(), 'leadership_sub', true);
    await onNode(lab, 'subscriber1', "insert into books values (6, 1006, 'Leaders Eat Last', 'leadership')");
    // After ENABLE, Postgres may take up to wal_retrieve_retry_interval (5 s) to restart the worker.
    const healed = await waitFor(async () => {
      const v = await labVerify(lab.config(), VERIFY);
      return v.ok ? v : undefined;
    }, 30_000, 'leadership_sub to catch up');
    expect(healed.tables.find((t) => t.subscriber === 'subscriber1')!.subscriberRows).toBe(3);
  });

  it('verify still sees a changed row when another of its columns is NULL on both sides, and a key change as missing and extra', async () => {
    await waitFor(async () => (await labVerify(lab.config(), VERIFY)).ok || undefined, 30_000, 'the lab to verify clean');
    const [row] = (await onNode(lab, 'subscriber2', 'select id from books order by id limit 1')) as unknown as { id: string }[];
    const id = String(row!.id);
    await onNode(lab, 'publisher', `update books set sku = null where id = ${id}`);
    await waitFor(async () => (await labVerify(lab.config(), VERIFY)).ok || undefined, 30_000, 'the NULL to arrive');
    await onNode(lab, 'subscriber2', `update books set title = title || ' (2nd ed.)' where id = ${id}`);
    let v = await labVerify(lab.config(), VERIFY);
    expect(v.tables.find((t) => t.subscriber === 'subscriber2')).toMatchObject({ match: false, changed: [id], missing: [], extra: [] });
    await onNode(lab, 'subscriber2', `update books set title = replace(title, ' (2nd ed.)', ''), id = id + 1000 where id = ${id}`);
    v = await labVerify(lab.config(), VERIFY);
    expect(v.tables.find((t) => t.subscriber === 'subscriber2')).toMatchObject({ match: false, changed: [], missing: [id], extra: [String(Number(id) + 1000)] });
    await onNode(lab, 'subscriber2', `update books set id = ${id} where id = ${Number(id) + 1000}`);
    await onNode(lab, 'publisher', `update books set sku = 1000 + id where id = ${id}`);
    await waitFor(async () => (await labVerify(lab.config(), VERIFY)).ok || undefined, 30_000, 'the lab to verify clean again');
  });

  it('a second apply does nothing', async () => {
    const again = await labReplicate(lab.config());
    expect(again.steps).toEqual([]);
    const up = cli(['up'], { cwd: lab.dir });
    expect(up.stdout, up.stderr).toContain('already up; nothing changed');
  });

  it('converges on config edits with ALTER, not by rebuilding: a table added, a subscription removed', async () => {
    const yaml = fs.readFileSync(lab.file, 'utf8');
    const withAuthors = yaml
      .replace('schema:\n  - sql: |\n', 'schema:\n  - sql: |\n      CREATE TABLE IF NOT EXISTS authors (id int PRIMARY KEY, name text NOT NULL DEFAULT \'anon\');\n      CREATE INDEX IF NOT EXISTS authors_name ON authors (name);\n')
      .replace("        where: topic = 'leadership'\n        replicaIdentity: full\n", "        where: topic = 'leadership'\n        replicaIdentity: full\n      authors: {}\n")
      .replace(/ {2}technical_sub:\n {4}node: subscriber2\n {4}publications: \[technical_pub\]\n/, '');
    fs.writeFileSync(lab.file, withAuthors);
    const plan = await labReplicate(lab.config(), { dryRun: true });
    const shown = plan.steps.map((s) => s.show).join('\n');
    expect(shown).toContain('DROP SUBSCRIPTION IF EXISTS "technical_sub";');
    expect(shown).toContain('ALTER PUBLICATION "leadership_pub" ADD TABLE "public"."authors";');
    expect(shown).not.toMatch(/CREATE PUBLICATION/);

    const applied = await labReplicate(lab.config());
    expect(applied.steps.map((s) => s.show.split('\n')[0])).toEqual(
      expect.arrayContaining(['DROP SUBSCRIPTION IF EXISTS "technical_sub";', 'ALTER SUBSCRIPTION "leadership_sub" REFRESH PUBLICATION;', 'CREATE TABLE "public"."authors" (']),
    );
    await onNode(lab, 'publisher', "insert into authors values (1, 'Simon Sinek')");
    const v = await labVerify(lab.config(), VERIFY);
    expect(v.ok).toBe(true);
    expect(v.tables.map((t) => `${t.subscriber}:${t.table}:${t.subscriberRows}`).sort()).toEqual(['subscriber1:public.authors:1', 'subscriber1:public.books:3']);
    // The subscriber's copy came from the publisher's catalog: default and index included.
    const [col] = await onNode(lab, 'subscriber1', "select column_default from information_schema.columns where table_name = 'authors' and column_name = 'name'");
    expect(col!.column_default).toBe("'anon'::text");
    expect(await onNode(lab, 'subscriber1', "select indexname from pg_indexes where tablename = 'authors' order by 1")).toEqual([{ indexname: 'authors_name' }, { indexname: 'authors_pkey' }]);
    expect(await onNode(lab, 'publisher', "select slot_name from pg_replication_slots order by 1")).toEqual([{ slot_name: 'leadership_sub' }]);
    expect(Object.keys(readApplied(replicationFile(lab.config().stateDir)).subscriptions)).toEqual(['leadership_sub']);
  });
});

const TRAPS = `lab: traps
ports: { from: 56560, to: 56579 }
nodes:
  pub: { role: publisher }
  sub: { role: subscriber }
schema:
  - sql: |
      CREATE TABLE IF NOT EXISTS events (at timestamptz, kind text);
      CREATE TABLE IF NOT EXISTS books (id bigint PRIMARY KEY, topic text);
publications:
  p:
    node: pub
    tables:
      events: {}
      books: { where: "topic = 'x'" }
subscriptions:
  s: { node: sub, publications: [p] }
`;

describe('preflight catches the traps before they bite', () => {
  it('a keyless table and a row filter outside the replica identity: up fails with both fixes, nothing left', () => {
    const lab = tempLab(TRAPS);
    try {
      const r = cli(['up'], { cwd: lab.dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('replication preflight found 2 problems');
      expect(r.stderr).toContain('publication p, table public.events: the table has no primary key or replica identity, so once published its UPDATE and DELETE fail on pub');
      expect(r.stderr).toMatch(/Fix: add a primary key, or set replicaIdentity: full for public.events, or publish: \[insert\]/);
      expect(r.stderr).toContain('publication p, table public.books: the row filter uses topic, outside the replica identity (id), so every UPDATE and DELETE of public.books would fail on pub');
      expect(r.stderr).toMatch(/Fix: set replicaIdentity: full for public.books in publication p/);
      expect(fs.readdirSync(lab.dir)).toEqual(['prodhome.yaml']);
    } finally {
      fs.rmSync(lab.dir, { recursive: true, force: true });
    }
  });

  it('an invalid row filter shows Postgres\'s message and the publication', async () => {
    const lab = tempLab(TRAPS.replace("topic = 'x'", 'topik = 1').replace('events: {}', 'events: { replicaIdentity: full }'));
    try {
      const r = cli(['up'], { cwd: lab.dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('publication p, table public.books: the row filter (topik = 1) is not valid: column "topik" does not exist');
    } finally {
      await lab.cleanup();
    }
  });
});

describe('identifiers that need quoting, composite keys, and settings set with ALTER SYSTEM', () => {
  const yaml = `lab: quoting
ports: { from: 56580, to: 56599 }
nodes:
  origin: { role: standalone }
  copy: { role: subscriber }
schema:
  - node: origin
    sql: |
      CREATE SCHEMA IF NOT EXISTS "Sales";
      -- json has no hash function: verify falls back to hashing the row's text form.
      CREATE TABLE IF NOT EXISTS "Sales"."Order Items" ("Order Id" int, "Line No" int, "Note's" text, "Meta" json DEFAULT '{}', PRIMARY KEY ("Order Id", "Line No"));
      INSERT INTO "Sales"."Order Items" SELECT o, l, 'n', '{"a": 1}' FROM generate_series(1, 3) o, generate_series(1, 2) l ON CONFLICT DO NOTHING;
publications:
  "Mixed Pub":
    node: origin
    tables:
      Sales.Order Items: { where: '"Line No" > 1' }
subscriptions:
  "Mixed Sub": { node: copy, publications: [Mixed Pub] }
`;
  let lab: TempLab;
  beforeAll(() => {
    lab = tempLab(yaml);
  });
  afterAll(() => lab.cleanup());

  it('plans wal_level=logical with ALTER SYSTEM and a restart for a node not born a publisher', async () => {
    const up = await labUp(lab.config());
    const shown = up.replication!.steps.map((s) => s.show);
    expect(shown).toContain("ALTER SYSTEM SET wal_level = 'logical';");
    expect(shown).toContain('-- prodhome restarts origin now (like: pg_ctl restart -m fast)');
    expect(readApplied(replicationFile(lab.config().stateDir)).previousSettings.origin).toEqual({ wal_level: 'replica' });
    expect(await onNode(lab, 'origin', 'show wal_level')).toEqual([{ wal_level: 'logical' }]);
  });

  it('replicates and verifies a mixed-case, spaced, quoted table with a composite key', async () => {
    const v = await labVerify(lab.config(), VERIFY);
    expect(v.ok).toBe(true);
    expect(v.tables[0]).toMatchObject({ table: 'Sales.Order Items', publisherRows: 3, subscriberRows: 3 });
    await labSetSubscriptionEnabled(lab.config(), 'Mixed Sub', false);
    await onNode(lab, 'copy', 'update "Sales"."Order Items" set "Note\'s" = \'changed\' where "Order Id" = 2');
    const bad = await labVerify(lab.config(), { waitMs: 500, maxKeys: 10 });
    expect(bad.tables[0]).toMatchObject({ match: false, changed: ['(2,2)'], missing: [], extra: [] });
  });
});

let system15: string | undefined;
try {
  system15 = resolveBinaries({ version: 15 }, 'probe').binDir;
} catch {
  if (IN_CI) throw new Error('CI machines have the system Postgres 15; it was not found');
  console.warn('\n*** SKIPPING the Postgres 15 → 17 replication test: no Postgres 15 binaries here ***\n');
}

describe.runIf(system15)('a system Postgres 15 publisher to a Postgres 17 subscriber', () => {
  it('replicates the row-filtered books and verifies', async () => {
    const yaml = DEFAULT_CONFIG_YAML.replace('from: 54320', 'from: 56600')
      .replace('to: 54399', 'to: 56649')
      .replace('  publisher:\n    role: publisher\n', '  publisher:\n    role: publisher\n    postgres:\n      version: 15\n')
      .replace(/ {2}metrics:\n {4}role: metrics\n {4}memory: 512MiB\n/, '');
    const lab = tempLab(yaml);
    try {
      const up = await labUp(lab.config());
      expect(up.nodes.find((n) => n.name === 'publisher')!.version).toMatch(/^15\./);
      expect(up.nodes.find((n) => n.name === 'subscriber1')!.version).toMatch(/^17\./);
      await onNode(lab, 'publisher', "update books set topic = 'leadership' where id = 2");
      const v = await labVerify(lab.config(), VERIFY);
      expect(v.ok).toBe(true);
      expect(v.tables.map((t) => t.subscriberRows)).toEqual([3, 2]);
    } finally {
      await lab.cleanup();
    }
  });
});

describe('operations: add, resync, drop with the publisher down, revert', () => {
  const yaml = `lab: ops
ports: { from: 56650, to: 56699 }
nodes:
  pub: { role: standalone }
  sub1: { role: subscriber }
schema:
  - node: pub
    sql: |
      CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, v text);
      INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g ON CONFLICT DO NOTHING;
      CREATE TABLE IF NOT EXISTS solo (id int PRIMARY KEY);
      INSERT INTO solo SELECT generate_series(1, 10) ON CONFLICT DO NOTHING;
publications:
  p: { node: pub, tables: { items: {} } }
  q: { node: pub, tables: { solo: {} } }
subscriptions:
  s1: { node: sub1, publications: [p, q] }
`;
  let lab: TempLab;
  beforeAll(async () => {
    lab = tempLab(yaml);
    await labUp(lab.config());
  });
  afterAll(() => lab.cleanup());

  it('replication add writes the subscription (and a new node) into prodhome.yaml and brings it up', async () => {
    const r = cli(['replication', 'add', 's2', '--node', 'sub2', '--publication', 'p'], { cwd: lab.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('prodhome.yaml: nodes.sub2: a new subscriber node');
    expect(r.stdout).toContain('CREATE SUBSCRIPTION "s2"');
    const text = fs.readFileSync(lab.file, 'utf8');
    expect(text).toContain('  s1: { node: sub1, publications: [p, q] }\n  s2: { node: sub2, publications: [p] }\n');
    const v = await labVerify(lab.config(), VERIFY);
    expect(v.ok).toBe(true);
    expect(v.tables.map((t) => [t.subscriber, t.table, t.subscriberRows])).toEqual([
      ['sub1', 'public.items', 100],
      ['sub1', 'public.solo', 10],
      ['sub2', 'public.items', 100],
    ]);
  });

  it('resync of the whole subscription repairs a diverged subscriber', async () => {
    await onNode(lab, 'sub1', 'delete from items where id <= 10');
    expect((await labVerify(lab.config(), { waitMs: 2000, maxKeys: 3 })).tables.find((t) => t.subscriber === 'sub1')!.missing).toEqual(['1', '2', '3']);
    const r = cli(['replication', 'resync', 's1'], { cwd: lab.dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('DROP SUBSCRIPTION "s1";');
    expect(r.stdout).toContain('TRUNCATE public.items, public.prodhome_heartbeat, public.solo;');
    expect(r.stdout).toContain('CREATE SUBSCRIPTION "s1"');
    const v = await waitFor(async () => {
      const x = await labVerify(lab.config(), VERIFY);
      return x.ok ? x : undefined;
    }, 30_000, 's1 to resync');
    expect(v.tables.find((t) => t.subscriber === 'sub1')!.subscriberRows).toBe(100);
  });

  it('replication drop with the publisher down detaches the slot and says how to remove it; up recreates cleanly', async () => {
    const pubPid = (await onNode(lab, 'pub', 'select pg_postmaster_start_time(), pg_backend_pid()'), Number(fs.readFileSync(`${(JSON.parse(fs.readFileSync(`${lab.config().stateDir}/state.json`, 'utf8')).nodes.pub.dataDir)}/postmaster.pid`, 'utf8').split('\n')[0]));
    process.kill(pubPid, 'SIGINT');
    await waitFor(() => {
      try {
        process.kill(pubPid, 0);
        return false;
      } catch {
        return true;
      }
    }, 10_000, 'the publisher to stop');
    const r = cli(['replication', 'drop', 's2'], { cwd: lab.dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ALTER SUBSCRIPTION "s2" SET (slot_name = NONE);');
    expect(r.stdout).toContain(`SELECT pg_drop_replication_slot('s2');`);
    expect(await onNode(lab, 'sub2', 'select count(*)::int as n from pg_subscription')).toEqual([{ n: 0 }]);

    const up = await labUp(lab.config());
    expect(up.nodes.find((n) => n.name === 'pub')!.action).toBe('restarted (it had died)');
    // (heartbeat rows the agent's sampler left there are emptied too, when there are any)
    expect(up.replication!.steps.map((s) => s.show.split('\n')[0]!).filter((line) => !line.includes('prodhome_heartbeat'))).toEqual([
      `SELECT pg_drop_replication_slot('s2');`,
      'TRUNCATE "public"."items";',
      expect.stringMatching(/^CREATE SUBSCRIPTION "s2"/),
    ]);
    expect((await labVerify(lab.config(), VERIFY)).ok).toBe(true);
  });

  it('resync of one table copies it afresh', async () => {
    await waitFor(async () => (await labVerify(lab.config(), VERIFY)).ok, 30_000, 'the lab to be in sync first');
    await onNode(lab, 'sub2', "update items set v = 'wrong' where id = 42");
    expect((await labVerify(lab.config(), { waitMs: 2000, maxKeys: 3 })).tables.find((t) => t.subscriber === 'sub2')!.changed).toEqual(['42']);
    // p feeds both s1 and s2: a one-table resync would disturb s1, so it is refused with the alternative.
    const refused = cli(['replication', 'resync', 's2', 'items'], { cwd: lab.dir });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('publication p also feeds s1; resync the whole subscription instead: prodhome replication resync s2');

    // solo reaches only s1 (through q): that one table is copied afresh, the rest untouched.
    await onNode(lab, 'sub1', 'delete from solo where id > 5');
    const r = cli(['replication', 'resync', 's1', 'solo'], { cwd: lab.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').filter((l) => !l.startsWith('--'))).toEqual([
      'ALTER PUBLICATION "q" DROP TABLE "public"."solo";',
      'ALTER SUBSCRIPTION "s1" REFRESH PUBLICATION;',
      'TRUNCATE "public"."solo";',
      'ALTER PUBLICATION "q" ADD TABLE "public"."solo";',
      'ALTER SUBSCRIPTION "s1" REFRESH PUBLICATION WITH (copy_data = true);',
    ]);
    const v = await waitFor(async () => {
      const x = await labVerify(lab.config(), VERIFY);
      return x.tables.find((t) => t.subscriber === 'sub1' && t.table === 'public.solo')?.match ? x : undefined;
    }, 30_000, 'solo to be copied again');
    expect(v.tables.find((t) => t.table === 'public.solo')!.subscriberRows).toBe(10);
  });

  it('replicate revert removes subscriptions, publications and the role, and restores wal_level', async () => {
    expect(await onNode(lab, 'pub', 'show wal_level')).toEqual([{ wal_level: 'logical' }]);
    const r = cli(['replicate', 'revert'], { cwd: lab.dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("ALTER SYSTEM SET wal_level = 'replica';");
    expect(await onNode(lab, 'pub', 'show wal_level')).toEqual([{ wal_level: 'replica' }]);
    expect(await onNode(lab, 'pub', "select (select count(*) from pg_publication)::int as pubs, (select count(*) from pg_replication_slots)::int as slots, (select count(*) from pg_roles where rolname = 'prodhome_replication')::int as roles")).toEqual([{ pubs: 0, slots: 0, roles: 0 }]);
    for (const node of ['sub1', 'sub2']) expect(await onNode(lab, node, 'select count(*)::int as n from pg_subscription')).toEqual([{ n: 0 }]);
    expect(await onNode(lab, 'sub1', 'select count(*)::int as n from items')).toEqual([{ n: 100 }]);
  });
});

describe('external servers: a user\'s Postgres as publisher, a lab subscriber', () => {
  let host: TempLab;
  let lab: TempLab | undefined;
  beforeAll(async () => {
    // Stands in for "your own server": a node of another lab, which this lab only knows by URL.
    host = tempLab(`lab: yours\nports: { from: 56700, to: 56709 }\nnodes:\n  db:\n    role: publisher\n${system15 ? '    postgres:\n      version: 15\n' : ''}  plain:\n    role: standalone\n`);
    await labUp(host.config());
    await onNode(host, 'db', "create table books (id bigint primary key, sku int, title text, topic text); insert into books select g, g, 't' || g, case when g % 3 = 0 then 'technical' else 'leadership' end from generate_series(1, 30) g");
  });
  afterAll(async () => {
    await lab?.cleanup();
    await host.cleanup();
  });

  it('publishes from the external server with a row filter and verifies on the lab subscriber', async () => {
    const url = connectionUrl(nodeConnection(host.config(), 'db'), { withPassword: true });
    lab = tempLab(`lab: mine
ports: { from: 56710, to: 56719 }
nodes:
  legacy: { role: publisher, url: "${url}" }
  sub: { role: subscriber }
publications:
  tech: { node: legacy, tables: { books: { where: "topic = 'technical'", replicaIdentity: full } } }
subscriptions:
  tech_sub: { node: sub, publications: [tech] }
`);
    const up = await labUp(lab.config());
    expect(up.nodes.find((n) => n.name === 'legacy')!.action).toBe('checked (external: left as it is)');
    const v = await labVerify(lab.config(), VERIFY);
    expect(v.ok).toBe(true);
    expect(v.tables[0]).toMatchObject({ subscriber: 'sub', publisherRows: 10, subscriberRows: 10 });
    await onNode(host, 'db', "update books set topic = 'technical' where id = 1");
    expect((await labVerify(lab.config(), VERIFY)).tables[0]!.subscriberRows).toBe(11);
    // destroy removes what the lab made on the external server (subscription slot, publication,
    // role) and leaves the server and its data as they were.
    await lab.cleanup();
    lab = undefined;
    expect(await onNode(host, 'db', 'select count(*)::int as n from books')).toEqual([{ n: 30 }]);
    expect(await onNode(host, 'db', "select (select count(*) from pg_replication_slots)::int as slots, (select count(*) from pg_publication)::int as pubs, (select count(*) from pg_roles where rolname = 'prodhome_replication')::int as roles")).toEqual([{ slots: 0, pubs: 0, roles: 0 }]);
  });

  it('an external publisher that needs a restart is a preflight problem, not a surprise restart', () => {
    const url = connectionUrl(nodeConnection(host.config(), 'plain'), { withPassword: true });
    const l = tempLab(`lab: needsrestart
ports: { from: 56720, to: 56729 }
nodes:
  legacy: { url: "${url}" }
  sub: { role: subscriber }
schema:
  - { node: legacy, sql: "create table if not exists t (id int primary key)" }
publications:
  p: { node: legacy, tables: { t: {} } }
subscriptions:
  s: { node: sub, publications: [p] }
`);
    try {
      const r = cli(['up'], { cwd: l.dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('legacy: wal_level takes effect only after a restart, and prodhome does not restart external servers');
      expect(r.stderr).toContain('Fix: set them, restart legacy yourself, then run prodhome replicate again');
    } finally {
      fs.rmSync(l.dir, { recursive: true, force: true });
    }
  });
});
