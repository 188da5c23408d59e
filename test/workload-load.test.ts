import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_YAML } from '../src/config/index.js';
import { labUp, labVerify, nodeConnection } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { runLoad, type LoadOptions, type LoadSummary, type SecondStats } from '../src/workload/index.js';
import { CLI, requirePgbench, cli, tempLab, type TempLab } from './helpers.js';

// Every workload against the default lab's topology (publisher feeding two row-filtered
// subscribers), on real servers: what each does to the database, the schedules' rate envelopes,
// errors counted by SQLSTATE, worker threads, Ctrl-C, and the CLI's answers to bad input.

const YAML = DEFAULT_CONFIG_YAML.replace('lab: prodhome', 'lab: loadtest')
  .replace('from: 54320', 'from: 57200')
  .replace('to: 54399', 'to: 57239')
  .replace('  metrics:\n    role: metrics\n    memory: 512MiB\n', '');

const PGBENCH = requirePgbench('the tpcb workload test (no pgbench to create its tables with pgbench -i)');

let lab: TempLab;
const q = <T = Record<string, unknown>>(text: string) => withConnection(nodeConnection(lab.config(), 'publisher'), (sql) => sql.unsafe(text)) as Promise<T[]>;
const count = async (table: string, where = 'true') => (await q<{ n: number }>(`select count(*)::int as n from ${table} where ${where}`))[0]!.n;
const load = (o: Partial<LoadOptions> & { workload: string }) => runLoad({ node: 'publisher', connection: nodeConnection(lab.config(), 'publisher'), ...o });
const loadCli = (args: string[]) => cli(['load', ...args], { cwd: lab.dir });
const json = (r: { stdout: string; stderr: string }): LoadSummary => {
  try {
    return JSON.parse(r.stdout) as LoadSummary;
  } catch {
    throw new Error(`not JSON:\n${r.stdout}\n${r.stderr}`);
  }
};

beforeAll(async () => {
  lab = tempLab(YAML);
  await labUp(lab.config());
  // 200 more books, alternating topics, so updates and reads have rows to work on.
  await q("insert into books select i, 1000 + i, 'Book ' || i, case when i % 2 = 0 then 'technical' else 'leadership' end from generate_series(100, 299) i");
});
afterAll(() => lab?.cleanup());

describe('workloads change the database as they should', () => {
  it('inserter: -c 3 -t 20 adds 60 books with the ids after max(id), none colliding', async () => {
    const before = (await q<{ max: string }>('select max(id)::text as max from books'))[0]!.max;
    const s = await load({ workload: 'inserter', clients: 3, transactions: 20, schedule: 'rayleigh:mean=200us' });
    expect([s.transactions, s.failed, s.errors]).toEqual([60, 0, []]);
    const ids = await q<{ id: string }>(`select id::text from books where id > ${before} order by id`);
    expect(ids.map((r) => Number(r.id))).toEqual(Array.from({ length: 60 }, (_, i) => Number(before) + 1 + i));
    expect(await count('books', `id > ${before} and topic in ('leadership', 'technical') and title like 'The %'`)).toBe(60);
  });

  it('read: selects only; the table stays as it was', async () => {
    const before = await q('select md5(string_agg(b::text, \',\' order by id)) as h from books b');
    const s = await load({ workload: 'read', clients: 2, transactions: 50 });
    expect([s.transactions, s.failed]).toEqual([100, 0]);
    expect(await q('select md5(string_agg(b::text, \',\' order by id)) as h from books b')).toEqual(before);
  });

  it('mixed with updates only: rows flip topic and move between the row-filtered subscribers', async () => {
    const ids = async (node: string) =>
      withConnection(nodeConnection(lab.config(), node), (sql) => sql<{ id: string }[]>`select id::text from books order by id`).then((r) => r.map((x) => x.id).join(','));
    expect((await labVerify(lab.config(), { waitMs: 20_000, maxKeys: 5 })).ok).toBe(true);
    const before = [await ids('subscriber1'), await ids('subscriber2')];
    const topics = await q<{ id: string; topic: string }>('select id::text, topic from books order by id');
    const r = loadCli(['mixed', '--weights', 'update=1', '-c', '2', '-t', '40', '--json', '--random-seed', '11']);
    expect(r.code).toBe(0);
    expect([json(r).transactions, json(r).failed]).toEqual([80, 0]);
    const after = await q<{ id: string; topic: string }>('select id::text, topic from books order by id');
    const flipped = after.filter((row, i) => row.topic !== topics[i]!.topic);
    expect(flipped.length).toBeGreaterThan(10);
    expect(after.length).toBe(topics.length);
    const verify = await labVerify(lab.config(), { waitMs: 20_000, maxKeys: 5 });
    expect(verify.ok).toBe(true);
    expect([await ids('subscriber1'), await ids('subscriber2')]).not.toEqual(before);
  });

  it('mixed with the default weights: inserts, updates, deletes and reads; subscribers still match', async () => {
    const s = await load({ workload: 'mixed', clients: 2, transactions: 100, protocol: 'prepared' });
    expect([s.transactions, s.failed]).toEqual([200, 0]);
    expect((await labVerify(lab.config(), { waitMs: 20_000, maxKeys: 5 })).ok).toBe(true);
  });

  it('the extended and prepared protocols run the same transactions', async () => {
    for (const protocol of ['extended', 'prepared'] as const) {
      const before = await count('books');
      const s = await load({ workload: 'inserter', clients: 2, transactions: 10, protocol, schedule: 'constant' });
      expect([s.protocol, s.transactions, s.failed]).toEqual([protocol, 20, 0]);
      expect(await count('books')).toBe(before + 20);
    }
  });

  it('tpcb without pgbench tables: a clear error that says how to create them', () => {
    const r = loadCli(['tpcb', '-t', '1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('publisher: table "pgbench_branches" does not exist');
    expect(r.stderr).toContain('prodhome seed pgbench --scale 1 (or pgbench -i -s 1)');
  });

  it.skipIf(!PGBENCH)("tpcb: pgbench's transaction on tables from pgbench -i; every balance adds up", async () => {
    const c = nodeConnection(lab.config(), 'publisher');
    const init = spawnSync(PGBENCH!, ['-i', '-s', '1', '-q'], { env: { ...process.env, PGHOST: c.host, PGPORT: String(c.port), PGUSER: c.user, PGDATABASE: c.database, PGPASSWORD: c.password }, encoding: 'utf8' });
    expect(init.status, init.stderr).toBe(0);
    const s = await load({ workload: 'tpcb', clients: 4, transactions: 50 });
    expect([s.transactions, s.failed, s.description]).toEqual([200, 0, 'TPC-B (sort of), scale 1']);
    expect(await count('pgbench_history')).toBe(200);
    const [sums] = await q<Record<string, string>>(`select
      (select sum(abalance) from pgbench_accounts)::text as a, (select sum(tbalance) from pgbench_tellers)::text as t,
      (select sum(bbalance) from pgbench_branches)::text as b, (select sum(delta) from pgbench_history)::text as h`);
    expect(new Set(Object.values(sums!)).size).toBe(1);
    expect(s.latencyMs.p50).toBeLessThanOrEqual(s.latencyMs.p95);
    expect(s.latencyMs.p99).toBeLessThanOrEqual(s.latencyMs.max);
    expect(s.clientCpu.seconds).toBeGreaterThan(0);
  });

  it('custom: a pgbench-syntax script with \\set, :vars, two statements and \\sleep', async () => {
    await q('create table hits (n int, client int)');
    const file = path.join(lab.dir, 'hits.sql');
    fs.writeFileSync(file, '\\set n random(1, 100) * 2\nINSERT INTO hits VALUES (:n, :client_id);\n\\sleep 1 ms\nSELECT count(*) FROM hits WHERE n = :n;\n');
    const r = loadCli(['custom', file, '-c', '2', '-t', '10', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect([json(r).transactions, json(r).failed]).toEqual([20, 0]);
    expect(await q('select count(*)::int as rows, count(distinct client)::int as clients, bool_and(n % 2 = 0 and n between 2 and 200) as even from hits')).toEqual([{ rows: 20, clients: 2, even: true }]);
  });


  it('custom: large results (a 3 MB value, 50,000 rows) are read through whole', async () => {
    const file = path.join(lab.dir, 'big.sql');
    fs.writeFileSync(file, "SELECT repeat('x', 3000000);\nSELECT * FROM generate_series(1, 50000);\nSELECT 1;\n");
    const s = await load({ workload: 'custom', options: { file }, clients: 2, transactions: 3 });
    expect([s.transactions, s.failed]).toEqual([6, 0]);
  });
});

describe('errors are counted by SQLSTATE, and fatal only past --max-errors', () => {
  it('a unique violation fails that transaction and the run goes on (then exits 2, as pgbench after errors)', async () => {
    await q('create table once (id int primary key)');
    const file = path.join(lab.dir, 'once.sql');
    fs.writeFileSync(file, 'BEGIN;\nINSERT INTO once VALUES (1);\nEND;\n');
    const r = loadCli(['custom', file, '-c', '1', '-t', '5', '--json']);
    expect(r.code, r.stderr).toBe(2);
    const s = json(r);
    expect([s.transactions, s.failed]).toEqual([1, 4]);
    expect(s.errors).toEqual([{ code: '23505', name: 'unique_violation', count: 4, message: 'duplicate key value violates unique constraint "once_pkey"' }]);
  });

  it('more than --max-errors ends the run: summary, then exit 1 naming the error', () => {
    const file = path.join(lab.dir, 'missing.sql');
    fs.writeFileSync(file, 'INSERT INTO nosuch VALUES (1);\n');
    const r = loadCli(['custom', file, '-c', '2', '-T', '30', '--max-errors', '5', '--json']);
    expect(r.code).toBe(1);
    const s = json(r);
    expect(s.stoppedBy).toBe('max-errors');
    expect(s.errors[0]).toMatchObject({ code: '42P01', name: 'undefined_table', message: 'relation "nosuch" does not exist' });
    expect(s.errors[0]!.count).toBeGreaterThan(5);
    expect(r.stderr).toContain('prodhome: stopped: more than 5 errors (most: 42P01 relation "nosuch" does not exist');
  });
});

describe('schedules on a real server: the rate envelope, counted per second', () => {
  async function perSecond(o: Partial<LoadOptions> & { workload: string }) {
    const seconds: SecondStats[] = [];
    const s = await load({ ...o, onSecond: (x) => seconds.push(x) });
    return { s, counts: seconds.map((x) => x.transactions + x.failed) };
  }

  it('pulse:on=1s,off=1s at -R 150: about 150 in each "on" second, (almost) none while off', async () => {
    const { s, counts } = await perSecond({ workload: 'read', clients: 4, rate: 150, schedule: 'pulse:on=1s,off=1s', seconds: 4 });
    expect(counts.length).toBeGreaterThanOrEqual(4);
    for (const k of [0, 2]) expect(Math.abs(counts[k]! - 150)).toBeLessThan(70);
    for (const k of [1, 3]) expect(counts[k]!).toBeLessThan(10); // only those scheduled just before the switch
    // a rate-limited run reports its schedule lag, which never exceeds its maximum
    expect(s.lagMs).toEqual({ avg: expect.any(Number), max: expect.any(Number) });
    expect(s.lagMs!.avg).toBeLessThanOrEqual(s.lagMs!.max);
  });

  it('ramp:from=0,to=300,over=3s: per second about 50, 150, 250 — rising', async () => {
    const { counts } = await perSecond({ workload: 'read', clients: 4, schedule: 'ramp:from=0,to=300,over=3s', seconds: 3 });
    const want = [50, 150, 250];
    want.forEach((w, k) => expect(Math.abs(counts[k]! - w)).toBeLessThan(20 + 0.4 * w));
    expect(counts[0]!).toBeLessThan(counts[2]!);
  });

  it('pulse without -R: clients run flat out while on and wait while off', async () => {
    const { counts } = await perSecond({ workload: 'read', clients: 2, schedule: 'pulse:on=1s,off=1s', seconds: 3 });
    expect(counts[0]!).toBeGreaterThan(50);
    expect(counts[1]!).toBeLessThanOrEqual(2); // a transaction begun just before the switch may end after it
    expect(counts[2]!).toBeGreaterThan(50);
  });

  it('rayleigh:mean=20ms: one client makes about T / (20 ms + its latency) inserts', async () => {
    const { s } = await perSecond({ workload: 'inserter', clients: 1, schedule: 'rayleigh:mean=20ms', seconds: 3 });
    const expected = 3000 / (20 + s.latencyMs.avg);
    expect(s.schedule).toBe('rayleigh:mean=20ms');
    expect(Math.abs(s.transactions - expected)).toBeLessThan(0.25 * expected);
  });
});

describe('the command line', () => {
  it('-j 2 runs clients in worker threads; -P prints progress lines on stderr', () => {
    const r = loadCli(['read', '-c', '4', '-j', '2', '-T', '2', '-P', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = json(r);
    expect([s.threads, s.clients, s.failed]).toEqual([2, 4, 0]);
    expect(s.transactions).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/^progress: 1\.0 s, [\d.]+ tps, lat [\d.]+ ms stddev [\d.]+, 0 failed$/m);
    expect(s.clientCpu.perTransactionMicros).toBeGreaterThan(0);
  });

  it('prints a summary like pgbench', () => {
    const r = loadCli(['read', '-c', '2', '-t', '20']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^number of transactions actually processed: 40$/m);
    expect(r.stdout).toMatch(/^latency average = [\d.]+ ms$/m);
    expect(r.stdout).toMatch(/^latency p50 = [\d.]+ ms, p95 = [\d.]+ ms, p99 = [\d.]+ ms, max = [\d.]+ ms$/m);
    expect(r.stdout).toMatch(/^tps = [\d.]+ \(without initial connection time\)$/m);
    expect(r.stdout).toMatch(/^client CPU: [\d.]+ s .*µs per transaction$/m);
  });

  it('--dry-run shows the settings and the SQL, and runs nothing', async () => {
    const before = await count('books');
    const r = loadCli(['inserter', '-c', '2', '-T', '5', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('-- load inserter (books inserts from id');
    expect(r.stdout).toContain('2 clients, 1 thread, rayleigh:mean=1ms, 5 s, engine prodhome');
    expect(r.stdout).toContain('INSERT INTO books (id, sku, title, topic) VALUES ($1, $2, $3, $4)');
    expect(await count('books')).toBe(before);
  });

  it('Ctrl-C ends a run without -T or -t, and the summary still comes (then exit 130)', async () => {
    const child = spawn(process.execPath, [CLI, 'load', 'read', '-c', '2', '--json'], { cwd: lab.dir });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    await new Promise((r) => setTimeout(r, 2500));
    child.kill('SIGINT');
    const code = await new Promise((r) => child.on('close', r));
    expect(code).toBe(130);
    const s = JSON.parse(stdout) as LoadSummary;
    expect(s.stoppedBy).toBe('interrupted');
    expect(s.transactions).toBeGreaterThan(0);
  });

  it.each([
    [['nosuch'], 'unknown workload "nosuch" (expected inserter, tpcb, read, mixed, custom)'],
    [['read', '--schedule', 'pulse:on=5s,of=15s'], '--schedule pulse:on=5s,of=15s: unknown setting "of" for pulse (it takes on, off)'],
    [['read', '--schedule', 'ramp:to=9,over=1s', '-R', '5'], 'sets its own rate'],
    [['read', '-T', '5', '-t', '5'], 'specify either a number of transactions (-t) or a duration (-T), not both'],
    [['read', '-c', 'many'], '-c many: expected a number'],
    [['read', '--weights', 'update=1'], 'the read workload does not take --weights'],
    [['read', '-M', 'fast'], '-M fast: expected simple, extended, prepared'],
    [['custom'], 'the custom workload needs a script file'],
    [['custom', 'x.sql', '-D', 'novalue'], '-D novalue: expected NAME=VALUE (a variable name, then a non-empty value)'],
    [['read', 'extra.sql'], 'unexpected argument "extra.sql": only the custom workload takes a file'],
    [['read', '--node', 'nope'], 'there is no node "nope"'],
    [['read', '--engine', 'pgbench', '-t', '1'], '--engine pgbench runs the tpcb and custom workloads, not read'],
  ])('%j → %s', (args, message) => {
    const r = loadCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).not.toMatch(/ at .*\.js:\d+/); // no stack trace for a user error
  });

  it('a script with a syntax error: file:line:column, the line, and a caret', () => {
    const file = path.join(lab.dir, 'broken.sql');
    fs.writeFileSync(file, '\\set aid random(1, 1000)\n\\set bid random(1 10)\nSELECT :aid;\n');
    const r = loadCli(['custom', file, '-t', '1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}:2:19: expected ")" but found "10"\n    \\set bid random(1 10)\n                      ^`);
  });
});

