import fs from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_YAML } from '../src/config/index.js';
import { labUp, labVerify, nodeConnection, readSecrets, readState } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { validateRowFilter } from '../src/replication/index.js';
import { resolveBinaries } from '../src/runtime/index.js';
import { IN_CI, cli, portRange, tempLab, type TempLab } from './helpers.js';

/**
 * Replication-side safety (issue 10, items 1, 2, 3 and 6), each against the real servers of one
 * default lab: a table fed by two subscriptions is never truncated for one of them, a row filter
 * cannot smuggle a statement into a dry run or a check, the replication role cannot open a
 * physical replication connection, and its password shows up in no output, log or
 * pg_stat_statements row.
 */

const VERIFY = { waitMs: 30_000, maxKeys: 10 };
const labYaml = (ports: number, postgres: string) =>
  DEFAULT_CONFIG_YAML.replace('ports:\n  from: 54320\n  to: 54399\n', portRange(ports)).replace('runAs: prodhome\n', `runAs: prodhome\n${postgres}`);

let system15: string | undefined;
try {
  system15 = resolveBinaries({ version: 15 }, 'probe').binDir;
} catch {
  if (IN_CI) throw new Error('CI machines have the system Postgres 15; it was not found');
  console.warn('\n*** SKIPPING the Postgres 15 half of the replication safety tests: no Postgres 15 binaries here ***\n');
}
const VARIANTS = [
  { label: 'Postgres 17 (npm)', yaml: labYaml(58000, ''), run: true },
  { label: 'Postgres 15 (system)', yaml: labYaml(58050, 'postgres:\n  version: 15\n'), run: !!system15 },
];

function onNode(lab: TempLab, node: string, text: string) {
  return withConnection(nodeConnection(lab.config(), node), (sql) => sql.unsafe(text));
}
const ids = async (lab: TempLab, node: string) => (await onNode(lab, node, 'select id::int from books order by id')).map((r) => r.id as number);

describe.each(VARIANTS.filter((v) => v.run))('replication safety on a default lab, $label', ({ yaml }) => {
  let lab: TempLab;
  beforeAll(async () => {
    expect(yaml).toMatch(/from: 580[05]0/);
    lab = tempLab(yaml);
    const up = await labUp(lab.config());
    expect(up.nodes.length).toBe(4);
  }, 180_000);
  afterAll(() => lab?.cleanup(), 60_000);

  describe('a table fed by two subscriptions is never truncated for one of them', () => {
    it('replication add on a node whose table another subscription feeds truncates nothing', async () => {
      expect((await labVerify(lab.config(), VERIFY)).ok).toBe(true);
      expect(await ids(lab, 'subscriber2')).toEqual([2, 4, 5]); // technical_sub's rows
      const r = cli(['replication', 'add', 'lead2_sub', '--node', 'subscriber2', '--publication', 'leadership_pub'], { cwd: lab.dir });
      expect(r.stderr + r.stdout).not.toMatch(/TRUNCATE/);
      expect(r.code, r.stderr).toBe(0);
      const v = await labVerify(lab.config(), VERIFY);
      expect(v.ok, JSON.stringify(v.tables)).toBe(true);
      expect(await ids(lab, 'subscriber2')).toEqual([1, 2, 3, 4, 5]);
    }, 120_000);

    it('replication resync of a subscription whose table another subscription also feeds deletes only its own rows and loses none', async () => {
      await onNode(lab, 'publisher', "insert into books values (10, 1010, 'Extreme Ownership', 'leadership'), (11, 1011, 'SQL Antipatterns', 'technical')");
      const r = cli(['replication', 'resync', 'technical_sub'], { cwd: lab.dir });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).not.toMatch(/TRUNCATE "public"\."books"/);
      expect(r.stdout).toMatch(/DELETE FROM "public"\."books" WHERE/);
      const v = await labVerify(lab.config(), VERIFY);
      expect(v.ok, JSON.stringify(v.tables)).toBe(true);
      expect(await ids(lab, 'subscriber2')).toEqual([1, 2, 3, 4, 5, 10, 11]);
    }, 120_000);

    it('replication resync of one table that another subscription also feeds keeps that subscription\'s rows', async () => {
      const r = cli(['replication', 'resync', 'technical_sub', 'books'], { cwd: lab.dir });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).not.toMatch(/TRUNCATE/);
      const v = await labVerify(lab.config(), VERIFY);
      expect(v.ok, JSON.stringify(v.tables)).toBe(true);
      expect(await ids(lab, 'subscriber2')).toEqual([1, 2, 3, 4, 5, 10, 11]);
    }, 120_000);

    it('replication add whose initial copy would collide with rows another subscription delivered is refused, naming it, and deletes nothing', async () => {
      const before = fs.readFileSync(lab.file, 'utf8');
      try {
        const r = cli(['replication', 'add', 'tech2_sub', '--node', 'subscriber2', '--publication', 'technical_pub'], { cwd: lab.dir });
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/tech2_sub.*technical_sub|technical_sub.*tech2_sub/s);
        expect(r.stderr).toMatch(/copy_data: false/);
        expect(await ids(lab, 'subscriber2')).toEqual([1, 2, 3, 4, 5, 10, 11]);
        const [sub] = await onNode(lab, 'subscriber2', "select count(*)::int as n from pg_subscription where subname = 'tech2_sub'");
        expect(sub!.n).toBe(0);
      } finally {
        fs.writeFileSync(lab.file, before);
      }
    }, 120_000);
  });

  describe('a row filter is one boolean expression: a dry run and a check change nothing', () => {
    const attacks = [
      "topic = 'technical'); drop table victim; --",
      "topic = 'technical') OR (true",
      "topic = 'technical' /* ); drop table victim; -- */",
      "topic = E'\\\\'); drop table victim; --'",
      "topic = $x$technical$x$); drop table victim; --",
    ];
    for (const [i, where] of attacks.entries()) {
      it(`replicate --dry-run and replicate check with the row filter ${JSON.stringify(where)} drop nothing and name the filter (${i + 1})`, async () => {
        await onNode(lab, 'publisher', 'create table if not exists victim (x int)');
        const before = fs.readFileSync(lab.file, 'utf8');
        try {
          fs.writeFileSync(lab.file, before.replace("where: topic = 'technical'", `where: ${JSON.stringify(where)}`));
          expect(fs.readFileSync(lab.file, 'utf8')).toContain(JSON.stringify(where));
          const dry = cli(['replicate', '--dry-run'], { cwd: lab.dir });
          expect(dry.stdout + dry.stderr).toMatch(/row filter/);
          const check = cli(['replicate', 'check'], { cwd: lab.dir });
          expect(check.code).toBe(2);
          expect(check.stdout).toMatch(/technical_pub, table public\.books: the row filter/);
          const [t] = await onNode(lab, 'publisher', "select to_regclass('public.victim') is not null as there");
          expect(t!.there).toBe(true);
        } finally {
          fs.writeFileSync(lab.file, before);
        }
      }, 60_000);
    }

  });

  describe('the replication role', () => {
    const password = () => readSecrets(lab.config().stateDir).replication?.publisher ?? '';

    it('a physical replication connection as the replication role is refused', async () => {
      expect(password().length).toBeGreaterThan(10);
      const port = nodeConnection(lab.config(), 'publisher').port;
      // The same startup pg_basebackup and pg_receivewal send: replication=true.
      const sql = postgres({ host: '127.0.0.1', port, user: 'prodhome_replication', password: password(), database: 'postgres', max: 1, connect_timeout: 5, fetch_types: false, connection: { replication: 'true' }, onnotice: () => {} });
      try {
        const attempt = sql.unsafe('IDENTIFY_SYSTEM', [], { simple: true } as { prepare?: boolean }).then(() => 'connected', (e: Error) => e.message);
        expect(await attempt).toMatch(/no pg_hba\.conf entry for replication connection/);
      } finally {
        await sql.end({ timeout: 2 });
      }
    });

    it('only the replication role has REPLICATION besides the bootstrap superuser, on every node', async () => {
      for (const node of ['publisher', 'subscriber1', 'subscriber2', 'metrics']) {
        const rows = await onNode(lab, node, 'select rolname::text from pg_roles where rolreplication and not rolsuper order by 1');
        expect(rows.map((r) => r.rolname), node).toEqual(node === 'publisher' ? ['prodhome_replication'] : []);
      }
    });

    it("the replication role's password is in no output: replicate --dry-run/--json, status --json, replication status --json, server and agent logs", () => {
      const secret = password();
      for (const args of [['replicate', '--dry-run'], ['replicate', '--dry-run', '--json'], ['replicate', 'check'], ['status', '--json'], ['replication', 'status', '--json'], ['replication', 'status']]) {
        const r = cli(args, { cwd: lab.dir });
        expect(r.stdout + r.stderr, args.join(' ')).not.toContain(secret);
      }
      const state = readState(lab.config().stateDir)!;
      const logs = [path.join(lab.config().stateDir, 'agent.log'), ...Object.values(state.nodes).map((n) => ('logFile' in n ? n.logFile : ''))].filter((f) => f && fs.existsSync(f));
      expect(logs.length).toBeGreaterThan(1);
      for (const f of logs) expect(fs.readFileSync(f, 'utf8'), f).not.toContain(secret);
    });

    it("no pg_stat_statements row on any node holds the replication role's password (CREATE ROLE, CREATE SUBSCRIPTION)", async () => {
      const secret = password();
      for (const node of ['publisher', 'subscriber1', 'subscriber2']) {
        const [ext] = await onNode(lab, node, "select count(*)::int as n from pg_extension where extname = 'pg_stat_statements'");
        expect(ext!.n, `${node} has pg_stat_statements`).toBe(1);
        const rows = await withConnection(nodeConnection(lab.config(), node), (sql) => sql`select query from pg_stat_statements where strpos(query, ${secret}) > 0`);
        expect(rows.map((r) => r.query), node).toEqual([]);
      }
      // The statements that set the secrets ran (so the check above is not vacuous).
      const [role] = await onNode(lab, 'publisher', "select rolpassword like 'SCRAM-SHA-256$%' as scram from pg_authid where rolname = 'prodhome_replication'");
      expect(role!.scram).toBe(true);
      const state = readState(lab.config().stateDir)!;
      for (const n of Object.values(state.nodes)) {
        const texts = 'dataDir' in n ? path.join(n.dataDir, 'pg_stat_tmp', 'pgss_query_texts.stat') : '';
        if (texts && fs.existsSync(texts)) expect(fs.readFileSync(texts).includes(secret), texts).toBe(false);
      }
    });

    it("no pg_stat_statements row on the metrics node holds the dashboard reader's password (its CREATE ROLE sends a SCRAM verifier)", async () => {
      const reader = readSecrets(lab.config().stateDir).dashboard!;
      const [role] = await onNode(lab, 'metrics', `select rolpassword like 'SCRAM-SHA-256$%' as scram from pg_authid where rolname = '${reader.user}'`);
      expect(role!.scram).toBe(true);
      const rows = await withConnection(nodeConnection(lab.config(), 'metrics'), (sql) => sql`select query from pg_stat_statements where strpos(query, ${reader.password}) > 0`);
      expect(rows.map((r) => r.query)).toEqual([]);
    });

    it("a CREATE SUBSCRIPTION that fails leaves the password out of the subscriber's log and the error", async () => {
      const secret = password();
      const before = fs.readFileSync(lab.file, 'utf8');
      // A wrong password on the publisher makes the next CREATE SUBSCRIPTION fail, and Postgres logs a failing statement's text.
      await onNode(lab, 'publisher', "alter role prodhome_replication password 'not-the-lab-secret'");
      try {
        const r = cli(['replication', 'add', 'tech1_sub', '--node', 'subscriber1', '--publication', 'technical_pub'], { cwd: lab.dir });
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/password authentication failed/);
        expect(r.stdout + r.stderr).not.toContain(secret);
        const node = readState(lab.config().stateDir)!.nodes.subscriber1!;
        const log = fs.readFileSync('logFile' in node ? node.logFile : '', 'utf8');
        expect(log).toMatch(/password authentication failed/);
        expect(log).not.toContain(secret);
      } finally {
        fs.writeFileSync(lab.file, before);
      }
    }, 60_000);
  });
});

describe('a row filter is checked as one expression before it is pasted into SQL', () => {
  it('the filter check accepts what Postgres accepts inside one expression', () => {
    for (const ok of ["topic = 'technical'", "title = 'a;b -- c /* d */' and (sku > 3 or id in (1, 2))", `"odd;col" = 'x'`, "topic = 'it''s'"]) {
      expect(validateRowFilter(ok), ok).toBeUndefined();
    }
    for (const bad of ['topic = 1;', "topic = 'x' --", 'a) or (b', '(a', "topic = 'open", 'a = $1', 'a = E\'\\\'\'']) {
      expect(validateRowFilter(bad), bad).toBeTypeOf('string');
    }
  });
});
