import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bookChunks, copyFrom, parseTopics, type CopyChunk } from '../src/data/index.js';
import { VOCABULARIES, COUNTS } from '../src/data/words.js';
import { labUp, nodeConnection } from '../src/lab/index.js';
import { connect, withConnection, type ConnectionInfo } from '../src/pg/index.js';
import { resolveBinaries } from '../src/runtime/index.js';
import { IN_CI, cli, portRange, tempLab, type TempLab } from './helpers.js';

// seed books and seed pgbench on a real server, through the real command where a user would be.

const YAML = `lab: dseed
${portRange(57100)}nodes:
  publisher: { role: publisher }
  other: { role: standalone }
schema:
  - sql: |
      CREATE TABLE IF NOT EXISTS books (id bigint PRIMARY KEY, sku int, title text, topic text);
`;

let lab: TempLab;
let conn: ConnectionInfo;
const q = <T = Record<string, unknown>>(text: string, info = conn) => withConnection(info, (sql) => sql.unsafe(text)) as Promise<T[]>;
const checksum = async () => (await q<{ n: number; sum: string }>("select count(*)::int as n, md5(coalesce(string_agg(b::text, E'\\n' order by id), '')) as sum from books b"))[0]!;
const run = (args: string[]) => cli(args, { cwd: lab.dir });

beforeAll(async () => {
  lab = tempLab(YAML);
  await labUp(lab.config());
  conn = nodeConnection(lab.config(), 'publisher');
});
afterAll(() => lab.cleanup());

describe('the books generator', () => {
  const text = (seed: number, firstId = 1, rows = 5000, chunkChars?: number) => [...bookChunks({ rows, firstId, seed, topics: parseTopics('leadership=2,technical=3'), chunkChars })].map((c) => c.data).join('');

  it('the same seed gives byte-identical rows, however they are chunked; another seed other rows', () => {
    expect(text(42)).toBe(text(42));
    expect(text(42, 1, 5000, 100)).toBe(text(42));
    expect(text(43)).not.toBe(text(42));
    // Row k depends on the seed and k, not on the ids it is given.
    expect(text(42, 1001).replace(/^\d+\t/gm, '')).toBe(text(42).replace(/^\d+\t/gm, ''));
  });

  it('makes COPY text rows: id, a 7-digit sku, a title, a topic; chunks of about 64 KB', () => {
    const chunks = [...bookChunks({ rows: 10_000, firstId: 1, seed: 1, topics: parseTopics('leadership=2,technical=3') })];
    expect(chunks.reduce((n, c) => n + c.rows, 0)).toBe(10_000);
    for (const c of chunks.slice(0, -1)) expect(c.data.length).toBeGreaterThanOrEqual(65_536);
    for (const c of chunks.slice(0, -1)) expect(c.data.length).toBeLessThan(65_536 + 200);
    const rows = chunks.map((c) => c.data).join('').trimEnd().split('\n');
    expect(rows[0]).toMatch(/^1\t\d{7}\t[^\t]+\t(leadership|technical)$/);
    expect(new Set(rows.map((r) => r.split('\t')[2])).size).toBeGreaterThan(1000); // varied titles
  });

  it('word lists are printable ASCII with nothing COPY text or CSV would have to escape', () => {
    const words = [...Object.values(VOCABULARIES).flatMap((v) => [...v.adjectives, ...v.nouns, ...v.plurals, ...v.verbs]), ...COUNTS];
    for (const w of words) expect(w).toMatch(/^[ -~]+$/); // binary COPY writes titles as single bytes
    for (const w of words) expect(w).not.toMatch(/[\\",]/);
  });

  it('parses --topics, and refuses what is not a topic mix', () => {
    expect(parseTopics('leadership=2, technical=3,history')).toEqual([
      { topic: 'leadership', weight: 2 },
      { topic: 'technical', weight: 3 },
      { topic: 'history', weight: 1 },
    ]);
    expect(() => parseTopics('a=x')).toThrow(/"a=x" is not topic=weight/);
    expect(() => parseTopics('a=-1')).toThrow(/is not topic=weight/);
    expect(() => parseTopics('a=1,a=2')).toThrow(/topic "a" is given twice/);
    expect(() => parseTopics('a=0')).toThrow(/at least one topic with a weight above 0/);
  });
});

describe('prodhome seed books', () => {
  it('same seed ⇒ same table checksum; a different seed ⇒ a different one', async () => {
    const a = run(['seed', 'books', '--rows', '20000', '--seed', '7', '--truncate', '--json']);
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    expect(JSON.parse(a.stdout)).toMatchObject({ node: 'publisher', table: 'books', rows: 20000, firstId: 1, lastId: 20000, seed: 7, truncated: true });
    const first = await checksum();
    expect(first.n).toBe(20000);
    expect(run(['seed', 'books', '--rows', '20000', '--seed', '7', '--truncate']).code).toBe(0);
    expect(await checksum()).toEqual(first);
    expect(run(['seed', 'books', '--rows', '20000', '--seed', '8', '--truncate']).code).toBe(0);
    const other = await checksum();
    expect(other.n).toBe(20000);
    expect(other.sum).not.toBe(first.sum);
  });

  it('ids continue after the current max id, and --topics sets the mix', async () => {
    await q('truncate books');
    await q("insert into books values (41, 1, 'x', 'leadership')");
    const r = run(['seed', 'books', '--rows', '2000', '--topics', 'leadership=1,technical=0,history=1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^seeded 2,000 books on publisher \(ids 42-2041; seed 42; topics leadership=1,technical=0,history=1\)/);
    const mix = await q<{ topic: string; n: number }>('select topic, count(*)::int as n from books where id > 41 group by 1 order by 1');
    expect(mix.map((m) => m.topic)).toEqual(['history', 'leadership']);
    for (const m of mix) expect(m.n).toBeGreaterThan(800); // ~1000 each
    expect((await q('select min(id)::int as lo, max(id)::int as hi from books where id > 41'))[0]).toEqual({ lo: 42, hi: 2041 });
  });

  it('creates books with the lab definition when a node has none', async () => {
    const other = nodeConnection(lab.config(), 'other');
    const r = run(['seed', 'books', '--rows', '10', '--node', 'other', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ node: 'other', createdTable: true, firstId: 1, lastId: 10 });
    expect(await q("select string_agg(column_name || ' ' || data_type, ', ' order by ordinal_position) as cols from information_schema.columns where table_name = 'books'", other)).toEqual([
      { cols: 'id bigint, sku integer, title text, topic text' },
    ]);
  });

  it('a books table of other (compatible) types gets the very same rows, through text COPY instead of binary', async () => {
    const other = nodeConnection(lab.config(), 'other');
    await q('drop table books; create table books (id int primary key, sku bigint, title varchar(200), topic text)', other);
    expect(run(['seed', 'books', '--rows', '5000', '--seed', '9', '--node', 'other']).code).toBe(0);
    expect(run(['seed', 'books', '--rows', '5000', '--seed', '9', '--truncate']).code).toBe(0);
    const sum = "select md5(string_agg(b::text, ',' order by id)) as sum from books b";
    expect(await q(sum, other)).toEqual(await q(sum));
  });

  const mistakes: { args: string[]; stderr: RegExp }[] = [
    { args: ['--rows', '0'], stderr: /--rows 0: expected a whole number above 0 \(k and M suffixes allowed/ },
    { args: ['--rows', 'lots'], stderr: /--rows lots: expected a whole number/ },
    { args: ['--rows', '5', '--seed', '-1'], stderr: /--seed -1: expected a whole number from 0 to 4294967295/ },
    { args: ['--rows', '5', '--topics', 'leadership=two'], stderr: /--topics leadership=two: "leadership=two" is not topic=weight/ },
    { args: ['--rows', '5', '--node', 'nosuch'], stderr: /there is no node "nosuch" in lab "dseed" \(nodes: publisher, other\)/ },
  ];
  it.each(mistakes)('bad input $args: exit 2, one message, nothing loaded', async ({ args, stderr }) => {
    const before = await checksum();
    const r = run(['seed', 'books', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(stderr);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await checksum()).toEqual(before);
  });

  it('a lab that is not up: says so and what to run', () => {
    const down = tempLab(`lab: dseed-down\n${portRange(57100)}nodes:\n  publisher: { role: publisher }\n`);
    try {
      const r = cli(['seed', 'books', '--rows', '5'], { cwd: down.dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/node "publisher" of lab "dseed-down" has not been created yet\nRun `prodhome up` first\./);
    } finally {
      fs.rmSync(down.dir, { recursive: true, force: true });
    }
  });
});

describe('copyFrom: failures leave a usable connection', () => {
  it('a row the server refuses after the last chunk rejects (no hang), and the connection still works', async () => {
    const sql = connect(conn);
    try {
      await sql`create temp table t (id int primary key)`;
      const chunks: CopyChunk[] = [{ data: '1\n2\n', rows: 2 }, { data: '3\n1\n', rows: 2 }];
      await expect(copyFrom(sql, 'copy t from stdin', chunks)).rejects.toMatchObject({ code: '23505' });
      expect(await sql`select count(*)::int as n from t`).toEqual([{ n: 0 }]);
    } finally {
      await sql.end();
    }
  });

  it('a server that stops reading mid-COPY is given up on (bounded wait), with the connection closed', async () => {
    const sql = connect(conn);
    const pid = (await sql<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]!.pid;
    let stopped = false;
    const big = Buffer.alloc(1 << 20, '1\n');
    function* endless(): Generator<CopyChunk> {
      for (;;) {
        if (!stopped) {
          process.kill(pid, 'SIGSTOP'); // the backend freezes: the socket fills, no drain comes
          stopped = true;
        }
        yield { data: big, rows: big.length / 2 };
      }
    }
    let closed = false;
    const started = performance.now();
    try {
      await sql`create temp table t (id int)`;
      const copy = copyFrom(sql, 'copy t from stdin', endless(), { stallMs: 2000, onStall: () => void sql.end({ timeout: 0 }).then(() => (closed = true)) });
      await expect(copy).rejects.toThrow(/the server took no COPY data for 2 s; gave up/);
      expect(performance.now() - started).toBeLessThan(20_000);
    } finally {
      if (stopped) process.kill(pid, 'SIGCONT');
      await sql.end({ timeout: 1 });
    }
    expect(closed).toBe(true);
  });

  it('a source that throws aborts the COPY: its error comes back, nothing is loaded', async () => {
    const sql = connect(conn);
    try {
      await sql`create temp table t (id int)`;
      function* failing(): Generator<CopyChunk> {
        yield { data: '1\n2\n', rows: 2 };
        throw new Error('the source broke');
      }
      await expect(copyFrom(sql, 'copy t from stdin', failing())).rejects.toThrow('the source broke');
      expect(await sql`select count(*)::int as n from t`).toEqual([{ n: 0 }]);
    } finally {
      await sql.end();
    }
  });
});

/** pgbench from the system's Postgres 15 (or PATH), if this machine has one. */
function findPgbench(): string | undefined {
  try {
    const p = `${resolveBinaries({ version: 15 }, 'probe').binDir}/pgbench`;
    if (fs.existsSync(p)) return p;
  } catch {
    // not there; try PATH
  }
  const which = spawnSync('sh', ['-c', 'command -v pgbench'], { encoding: 'utf8' });
  return which.status === 0 ? which.stdout.trim() : undefined;
}
const pgbench = findPgbench();
if (!pgbench) {
  if (IN_CI) throw new Error('CI machines have pgbench (Postgres 15); it was not found');
  console.warn('\n*** SKIPPING the seed pgbench comparison: no pgbench on this machine ***\n');
}

describe('prodhome seed pgbench', () => {
  // Everything pgbench -i decides: tables, columns, storage options, keys, rows, and vacuum/analyze.
  const DESCRIBE = `
    select c.relname, c.relkind, c.relpersistence, c.reloptions::text as reloptions,
      (select string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || case when a.attnotnull then ' not null' else '' end, ', ' order by a.attnum)
         from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as columns,
      (select string_agg(conname || ' ' || pg_get_constraintdef(oid), '; ') from pg_constraint where conrelid = c.oid) as constraints,
      s.n_live_tup::int as live, s.last_vacuum is not null as vacuumed, s.last_analyze is not null as analyzed
    from pg_class c left join pg_stat_user_tables s on s.relid = c.oid
    where c.relname like 'pgbench%' order by c.relname`;
  const CONTENTS = `
    select (select row(count(*), sum(aid), sum(bid), sum(abalance), count(filler), md5(string_agg(t::text, ',' order by aid)))::text from pgbench_accounts t) as accounts,
      (select row(count(*), sum(bid), sum(bbalance), count(filler))::text from pgbench_branches) as branches,
      (select row(count(*), sum(tid), sum(bid), sum(tbalance), count(filler))::text from pgbench_tellers) as tellers,
      (select count(*)::int from pgbench_history) as history`;

  it.runIf(pgbench)('makes the same tables, keys and rows as a real `pgbench -i -s 3`', async () => {
    await q('drop database if exists ref');
    await q('create database ref');
    const ref = { ...conn, database: 'ref' };
    const real = spawnSync(pgbench!, ['-i', '-s', '3', '-h', ref.host, '-p', String(ref.port), '-U', ref.user, 'ref'], {
      encoding: 'utf8',
      env: { ...process.env, PGPASSWORD: ref.password },
    });
    expect(real.status, real.stderr).toBe(0);

    const r = run(['seed', 'pgbench', '--scale', '3', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ node: 'publisher', scale: 3, rows: { pgbench_branches: 3, pgbench_tellers: 30, pgbench_accounts: 300000, pgbench_history: 0 } });

    const ours = await q(DESCRIBE);
    expect(ours.map((t) => t.relname)).toEqual(['pgbench_accounts', 'pgbench_accounts_pkey', 'pgbench_branches', 'pgbench_branches_pkey', 'pgbench_history', 'pgbench_tellers', 'pgbench_tellers_pkey']);
    expect(ours).toEqual(await q(DESCRIBE, ref));
    const contents = await q(CONTENTS);
    expect(contents).toEqual(await q(CONTENTS, ref));
    expect(contents[0]!.branches).toBe('(3,6,0,0)');
    // A second run starts afresh, as pgbench -i does.
    expect(run(['seed', 'pgbench', '-s', '1']).stdout).toMatch(/pgbench_accounts 100,000[^\n]*\ndone in [\d.]+ s \(drop tables [\d.]+ s, create tables/);
  });

  it('refuses a scale that is not a whole number above 0', () => {
    const r = run(['seed', 'pgbench', '--scale', '1.5']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--scale 1.5: expected a whole number above 0\n/);
  });
});

describe('a lab whose nodes are stopped', () => {
  it('seed says it cannot connect, and to bring the lab up', () => {
    expect(run(['down']).code).toBe(0);
    const r = run(['seed', 'books', '--rows', '5']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^prodhome: publisher: cannot connect to 127\.0\.0\.1:571\d\d: .*\nIs the lab up\? Run `prodhome up`/);
  });
});
