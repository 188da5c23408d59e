import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, nodeConnection } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import type { LoadSummary } from '../src/workload/index.js';
import { requirePgbench, cli, portRange, tempLab, type TempLab } from './helpers.js';

// The differential harness: the same script, run by the real pgbench and by `prodhome load
// custom` (-c 1, -t N, the same --random-seed) against the same real server, must send the same
// SQL — text after substitution and parameters, as the server logs them (log_statement=all) —
// and must fail the same way. Values computed by expressions show up in that SQL (every case
// sends what it computed), so equal SQL means equal values: random draws, hashes, permute,
// int64 limits, double formatting, \gset'd results.

const PGBENCH = requirePgbench('the pgbench differential tests');

type Protocol = 'simple' | 'extended' | 'prepared';

interface Case {
  name: string;
  script: string;
  protocols?: Protocol[];
  transactions?: number;
  seed?: number;
  defines?: string[];
  /** The run fails: this text is in pgbench's error and in prodhome's error message (or one text for each). */
  fails?: string | { pgbench: string; prodhome: string };
}

const show = (name: string) => spawnSync(PGBENCH!, [`--show-script=${name}`], { encoding: 'utf8' }).stderr.replace(/^--.*\n/, '');

const CASES: Case[] = [
  { name: 'builtin tpcb-like', script: PGBENCH ? show('tpcb-like') : '', protocols: ['simple', 'extended', 'prepared'], transactions: 15, seed: 11 },
  { name: 'builtin simple-update', script: PGBENCH ? show('simple-update') : '', protocols: ['simple', 'prepared'], transactions: 15, seed: 12 },
  { name: 'builtin select-only', script: PGBENCH ? show('select-only') : '', protocols: ['simple', 'extended'], transactions: 30, seed: 13 },
  {
    name: 'random functions with a fixed seed',
    script: [
      '\\set a random(1, 1000000)',
      '\\set b random(-5000, 5000)',
      '\\set big random(-4611686018427387903, 4611686018427387903)',
      '\\set big2 random(0, 9223372036854775806)',
      '\\set g random_gaussian(1, 1000, 2.5)',
      '\\set e random_exponential(1, 1000, 2.5)',
      '\\set z random_zipfian(1, 1000, 1.5)',
      'SELECT :a, :b, :big, :big2, :g, :e, :z, :random_seed, :client_id, :scale;',
    ].join('\n'),
    protocols: ['simple', 'extended'],
    transactions: 40,
    seed: 4242,
  },
  {
    name: "the documentation's examples (custom script, \\gset on a multi-line UPDATE … RETURNING, functions)",
    script: [
      '\\set nbranches :scale',
      '\\set ntellers 10 * :scale',
      '\\set naccounts 100000 * :scale',
      '\\set aid random(1, :naccounts)',
      '\\set bid random(1, :nbranches)',
      '\\set tid random(1, :ntellers)',
      '\\set delta random(-5000, 5000)',
      'BEGIN;',
      '-- update an account and get its new balance',
      'UPDATE pgbench_accounts',
      '  SET abalance = abalance + :delta',
      '  WHERE aid = :aid',
      '  RETURNING abalance \\gset',
      '-- compute 3 variables',
      'SELECT 1 AS one, 2 AS two, 3 AS three',
      '  \\gset p_',
      'SELECT :abalance, :p_one::int + :p_two::int + :p_three::int;',
      'ROLLBACK; -- (the documentation ends with END; rolling back keeps the balances the same for the second tool)',
      '\\set f1 abs(-17) + double(5432) + exp(1.0) + greatest(5, 4, 3, 2) + int(5.4 + 3.8) + least(5, 4, 3, 2.1)',
      '\\set f2 hash(10, 5432) # hash_fnv1a(10, 5432) # hash_murmur2(10, 5432)',
      '\\set f3 ln(2.718281828459045) + mod(54, 32) + permute(0, 4) + pi() + pow(2.0, 10) + power(2.0, 10) + sqrt(2.0)',
      '\\set f4 random(1, 10) + random_exponential(1, 10, 3.0) + random_gaussian(1, 10, 2.5) + random_zipfian(1, 10, 1.5)',
      '\\set f5 1 is null or TRUE and NOT FALSE',
      '\\set f6 CASE WHEN :aid <> 0 THEN :delta / :aid ELSE NULL END',
      '\\shell echo ::literal :aid > /dev/null',
      '\\setshell nine echo 9',
      'SELECT :f1, :f2, :f3, :f4, :f5, :f6, :nine;',
    ].join('\n'),
    protocols: ['simple', 'extended', 'prepared'],
    transactions: 10,
    seed: 2024,
  },
  {
    name: 'hash, permute and :default_seed',
    script: [
      '\\set a random(1, 100000)',
      '\\set h1 hash(:a)',
      '\\set h2 hash_murmur2(:a, 7)',
      '\\set h3 hash_fnv1a(:a)',
      '\\set h4 hash_fnv1a(-1, -1)',
      '\\set p1 permute(:a, 100000)',
      '\\set p2 permute(:a, 1000, -7)',
      '\\set p3 permute(3, 2)',
      'SELECT :h1, :h2, :h3, :h4, :p1, :p2, :p3, :default_seed;',
    ].join('\n'),
    transactions: 20,
    seed: 7,
  },
  {
    name: 'int64 limits, integer and double arithmetic, formatting',
    script: [
      '\\set max 9223372036854775807',
      '\\set min -9223372036854775808',
      '\\set min2 -9223372036854775807 - 1',
      '\\set d1 7 / 2',
      '\\set d2 -7 / 2',
      '\\set d3 7.0 / 2',
      '\\set d4 -7 % 3',
      '\\set d5 1.0 / 3',
      '\\set d6 9223372036854775807 + 0.0',
      '\\set d7 1e20 * 10',
      '\\set d8 0.00001 + 0',
      '\\set d9 pi() * 1000000',
      '\\set d10 int(2.5) + int(3.5) + int(-2.5)',
      '\\set d11 sqrt(2) + ln(10) + exp(1) + pow(2, 0.5) + power(2, 62)',
      '\\set d12 abs(-5) + abs(-5.5) + double(3) + mod(-11, 4)',
      '\\set d13 greatest(1, 2.5, 2) + least(3, 1, 2)',
      '\\set d14 12345678901234567 * 10',
      '\\set d15 1000000.0 * 1000000000',
      'SELECT :max, :min, :min2, :d1, :d2, :d3, :d4, :d5, :d6, :d7, :d8, :d9, :d10, :d11, :d12, :d13, :d14, :d15;',
    ].join('\n'),
    protocols: ['simple', 'extended'],
  },
  {
    name: 'booleans, comparisons, CASE, IS NULL, bit operators',
    script: [
      '\\set r random(0, 20)',
      '\\set b1 :r > 10 and :r <> 15 or :r = 3',
      '\\set b2 not (:r <= 5)',
      '\\set b3 :r >= 7 and :r < 9',
      '\\set n case when :r < 5 then null when :r < 10 then 1.5 else :r end',
      '\\set b4 :n is null',
      '\\set b5 :n is not null and :r != 2',
      '\\set b6 (:r > 3) is true',
      '\\set k case when :r % 2 = 0 then 100 else -100 end',
      '\\set bits (:r & 6) | (:r # 9) + (1 << :r) - (:r >> 1) + ~:r',
      'SELECT :b1, :b2, :b3, :n, :b4, :b5, :b6, :k, :bits;',
    ].join('\n'),
    transactions: 25,
    seed: 99,
  },
  {
    name: '\\if / \\elif / \\else / \\endif, nested',
    script: [
      '\\set r random(1, 6)',
      '\\if :r = 1',
      'SELECT 1 AS one;',
      '\\elif :r <= 3',
      '  \\if :r = 2',
      '  SELECT 2;',
      '  \\else',
      '  SELECT 3;',
      '  \\endif',
      '\\elif :r = 4',
      'SELECT 4;',
      '\\else',
      'SELECT 56, :r;',
      '\\endif',
      '\\if 0.0',
      'SELECT 0;',
      '\\elif null',
      'SELECT null;',
      '\\else',
      'SELECT :r * 10;',
      '\\endif',
    ].join('\n'),
    transactions: 20,
    seed: 5,
  },
  {
    name: '\\gset and \\aset, with a prefix and a compound command',
    script: [
      '\\set aid random(1, 100000)',
      'SELECT aid, abalance, bid FROM pgbench_accounts WHERE aid = :aid \\gset acc_',
      'SELECT :acc_aid, :acc_abalance + 1, :acc_bid;',
      "SELECT 'x' || :aid AS word, 2.50::numeric AS num, NULL::int AS nothing, true AS flag \\gset",
      "SELECT ':word', :num * 2, :num, ':nothing', ':flag'::bool;",
      'SELECT 1 AS one \\; SELECT 2 AS two WHERE false \\; SELECT 3 AS three \\aset',
      'SELECT :one, :three;',
      '\\set n :num * 3',
      '\\if :flag',
      'SELECT :n;',
      '\\endif',
    ].join('\n'),
    protocols: ['simple'],
    transactions: 10,
    seed: 3,
  },
  {
    name: '\\gset in the extended and prepared protocols',
    script: ['\\set aid random(1, 100000)', 'SELECT abalance AS bal, aid FROM pgbench_accounts WHERE aid = :aid \\gset', 'SELECT :bal::int + :aid::int;'].join('\n'),
    protocols: ['extended', 'prepared'],
    transactions: 10,
    seed: 8,
  },
  {
    name: 'variables inside quoted literals, unknown variables, casts, comments',
    script: [
      '\\set aid random(1, 100000)',
      "SELECT ':aid'::int AS quoted, :aid::bigint AS cast, ':nosuch' AS unknown, 1::int /* :aid in a comment */;",
      'SELECT :name, length(:name), :aid',
      '-- a trailing comment line',
      ';',
    ].join('\n'),
    protocols: ['simple'],
    defines: ["name='some text'"],
    transactions: 5,
    seed: 21,
  },
  {
    name: '-D values are text; they override :scale',
    script: ['\\set x :num * 2', "SELECT :x, :scale, ':word';"].join('\n'),
    protocols: ['simple'],
    defines: ['num=2.5', 'scale=7', 'word=hello'],
    transactions: 2,
  },
  {
    name: '-D values as parameters',
    script: ['\\set x :num * 2', 'SELECT :x, :scale, :word;'].join('\n'),
    protocols: ['extended'],
    defines: ['num=2.5', 'scale=7', 'word=hello'],
    transactions: 2,
  },
  {
    name: '\\sleep units, \\setshell and \\shell',
    script: ['\\set d 10', '\\sleep :d us', '\\sleep 0', '\\sleep 1 ms', '\\sleep 200us', '\\setshell v echo :d', '\\shell true', 'SELECT :v + 1, :d;'].join('\n'),
    protocols: ['simple'],
    transactions: 3,
  },
  {
    name: 'pipelines send the same statements',
    script: ['\\set aid random(1, 100000)', '\\startpipeline', 'SELECT :aid;', 'SELECT abalance FROM pgbench_accounts WHERE aid = :aid;', 'SELECT :aid + 1;', '\\endpipeline', 'SELECT 2;'].join('\n'),
    protocols: ['extended', 'prepared'],
    transactions: 5,
    seed: 17,
  },
  // Failures: pgbench aborts the client; prodhome fails the transaction with the same reason.
  { name: 'division by zero in \\set', script: '\\set z 0\n\\set x 10 / :z\nSELECT :x;', fails: 'division by zero' },
  { name: 'bigint overflow in \\set', script: '\\set m 9223372036854775807\n\\set x :m + 1\nSELECT :x;', fails: 'bigint add out of range' },
  { name: '\\gset on no row', script: 'SELECT 1 AS one WHERE false \\gset\nSELECT :one;', fails: 'expected one row, got 0' },
  { name: '\\gset on two rows', script: 'SELECT * FROM (VALUES (1), (2)) AS t(one) \\gset\nSELECT :one;', fails: 'expected one row, got 2' },
  { name: 'a random range too large', script: '\\set x random(-9223372036854775807, 9223372036854775806)\nSELECT :x;', fails: 'random range is too large' },
  { name: 'a random range upside down', script: '\\set lo 10\n\\set x random(:lo, 1)\nSELECT :x;', fails: 'empty range given to random' },
  { name: 'an SQL error', script: 'SELECT 1 / 0;', fails: 'division by zero' },
  {
    name: 'the connection dies mid-script',
    script: 'SELECT pg_terminate_backend(pg_backend_pid());',
    fails: { pgbench: 'terminating connection due to administrator command', prodhome: 'the server closed the connection' },
  },
  { name: '\\gset of a column that is no variable name', script: 'SELECT 1 \\gset\nSELECT 2;', fails: 'invalid variable name: "?column?"' },
  { name: 'a variable \\gset did not set', script: 'SELECT 1 AS one \\gset\n\\set x :two + 1\nSELECT :x;', fails: 'undefined variable "two"' },
];

/** One statement as the server logged it: its text and its parameters, if any. */
interface Logged {
  text: string;
  params?: string;
}

describe.skipIf(!PGBENCH)('differential: prodhome load custom vs the real pgbench', () => {
  let lab: TempLab;
  let logFile: string;
  const q = (text: string) => withConnection(nodeConnection(lab.config(), 'publisher'), (sql) => sql.unsafe(text));
  const env = () => {
    const c = nodeConnection(lab.config(), 'publisher');
    return { ...process.env, PGHOST: c.host, PGPORT: String(c.port), PGUSER: c.user, PGDATABASE: c.database, PGPASSWORD: c.password, PGAPPNAME: 'pgbench' };
  };

  beforeAll(async () => {
    lab = tempLab(`lab: pgbenchdiff\n${portRange(59600)}nodes:\n  publisher:\n    role: publisher\n`);
    await labUp(lab.config());
    const init = spawnSync(PGBENCH!, ['-i', '-s', '1', '-q'], { env: env(), encoding: 'utf8' });
    expect(init.status, init.stderr).toBe(0);
    await q("ALTER SYSTEM SET log_statement = 'all'");
    await q("ALTER SYSTEM SET log_line_prefix = '@@%a@@ '");
    await q('SELECT pg_reload_conf()');
    logFile = path.join(lab.dir, '.prodhome', 'pgbenchdiff', 'nodes', 'publisher', 'postgres.log');
    expect(fs.existsSync(logFile), logFile).toBe(true);
  }, 120_000);
  afterAll(() => lab?.cleanup());

  /** Runs `fn`, then returns the statements the server logged meanwhile for application `app`. */
  async function logged(app: string, fn: () => void): Promise<Logged[]> {
    const from = fs.statSync(logFile).size;
    fn();
    await new Promise((r) => setTimeout(r, 300)); // the logger writes asynchronously
    const text = fs.readFileSync(logFile, 'utf8').slice(from);
    const entries: { app: string; body: string }[] = [];
    for (const line of text.split('\n')) {
      const m = /^@@(.*?)@@ (.*)$/.exec(line);
      if (m) entries.push({ app: m[1]!, body: m[2]! });
      else if (entries.length) entries[entries.length - 1]!.body += `\n${line}`;
    }
    const out: Logged[] = [];
    for (const e of entries.filter((x) => x.app === app)) {
      const body = e.body.replace(/\n$/, '');
      const st = /^LOG: {2}(?:statement|execute [^:]*): ([\s\S]*)$/.exec(body);
      if (st) out.push({ text: st[1]! });
      const p = /^DETAIL: {2}parameters: ([\s\S]*)$/i.exec(body);
      if (p && out.length) out[out.length - 1]!.params = p[1]!;
    }
    return out;
  }

  for (const c of CASES) {
    for (const protocol of c.protocols ?? ['simple', 'extended']) {
      it(`${c.name} (-M ${protocol})`, async () => {
        const file = path.join(lab.dir, `case-${CASES.indexOf(c)}.sql`);
        fs.writeFileSync(file, `${c.script}\n`);
        const t = String(c.transactions ?? (c.fails ? 1 : 3));
        const seed = String(c.seed ?? 1);
        const defines = (c.defines ?? []).flatMap((d) => ['-D', d]);

        let pg = { status: 0 as number | null, stderr: '' };
        const fromPgbench = await logged('pgbench', () => {
          const r = spawnSync(PGBENCH!, ['-n', '-c', '1', '-t', t, `--random-seed=${seed}`, '-M', protocol, ...defines, '-f', file], { env: env(), encoding: 'utf8', timeout: 60_000 });
          pg = { status: r.status, stderr: r.stderr };
        });
        let ph = { code: 0 as number | null, stdout: '', stderr: '' };
        const fromProdhome = await logged('prodhome load', () => {
          ph = cli(['load', 'custom', file, '-c', '1', '-t', t, '--random-seed', seed, '-M', protocol, ...defines, '--json'], { cwd: lab.dir });
        });

        if (c.fails) {
          expect(pg.status, pg.stderr).toBe(2); // pgbench: a client aborted
          const why = typeof c.fails === 'string' ? { pgbench: c.fails, prodhome: c.fails } : c.fails;
          expect(pg.stderr).toContain(why.pgbench);
          expect(ph.code, ph.stderr).toBe(2); // prodhome: a failed transaction, exit 2 as pgbench
          const s = JSON.parse(ph.stdout) as LoadSummary;
          expect(s.failed).toBe(1);
          expect(s.errors.map((e) => e.message).join('\n')).toContain(why.prodhome);
          // What ran before the failure was the same.
          expect(fromProdhome.slice(0, fromPgbench.length)).toEqual(fromPgbench);
          return;
        }
        expect(pg.status, pg.stderr).toBe(0);
        expect(ph.code, `${ph.stderr}\n${ph.stdout}`).toBe(0);
        expect(fromPgbench.length).toBeGreaterThan(0);
        expect(fromProdhome).toEqual(fromPgbench);
      }, 120_000);
    }
  }
});
