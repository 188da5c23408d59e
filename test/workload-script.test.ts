import { describe, expect, it } from 'vitest';
import { ProdhomeError } from '../src/errors.js';
import { parseScript, PgbenchRandom, scriptSource, TPCB_SCRIPT, type Script, type ScriptSession } from '../src/workload/index.js';

// The pgbench script language without a server: what scripts parse into, what expressions
// compute, where control flow goes, and how bad scripts are refused. The SQL side runs against a
// recording stand-in for the connection (it only notes the text sent); the same scripts run on a
// real server, side by side with the real pgbench, in pgbench-diff.test.ts.

const sqlOf = (s: Script) => s.commands.flatMap((c) => (c.kind === 'sql' ? [{ line: c.line, text: c.sql.text, extended: c.sql.statement.text, params: c.sql.vars.map((i) => s.variables[i]!) }] : []));

/** Runs the script `times` transactions for client 3 (simple protocol) and returns the SQL sent and the failures. */
async function run(text: string, { defines = {}, times = 1 }: { defines?: Record<string, string | number>; times?: number } = {}) {
  const script = parseScript(text, 't.sql', defines);
  const sent: string[] = [];
  const sleeps: number[] = [];
  const debug: string[] = [];
  const src = scriptSource(script, { scale: 2, clientId: 3, seed: 1n, defaultSeed: 77n, defines }, new PgbenchRandom(1), (t) => debug.push(t));
  const conn = {
    query: async (t: string) => {
      sent.push(t);
      return { status: 'I' as const, rows: 0 };
    },
  };
  const session = { conn, protocol: 'simple', sleep: async (ms: number) => void sleeps.push(ms) } as unknown as ScriptSession;
  const failures = [];
  for (let i = 0; i < times; i++) {
    const f = await src.run!(session);
    if (f) failures.push(f);
  }
  return { sent, sleeps, failures, debug };
}

/** The value \set gives: the script sends it in a SELECT. */
async function value(expr: string, defines: Record<string, string> = {}): Promise<string> {
  const r = await run(`\\set x ${expr}\nSELECT :x;`, { defines });
  if (r.failures.length) return `error ${r.failures[0]!.code}: ${r.failures[0]!.message}`;
  return r.sent[0]!.replace(/^SELECT (.*);$/s, '$1');
}

function syntaxError(text: string): string {
  try {
    parseScript(text, 'bad.sql');
  } catch (e) {
    expect(e).toBeInstanceOf(ProdhomeError);
    expect((e as ProdhomeError).code).toBe('SCRIPT_SYNTAX');
    return (e as ProdhomeError).message;
  }
  throw new Error(`expected a syntax error for: ${text}`);
}

describe('scripts: what they parse into', () => {
  it("pgbench's builtin tpcb-like script: four \\set, seven statements sent as written, :vars as $n per occurrence", () => {
    const s = parseScript(TPCB_SCRIPT, 'tpcb');
    expect(s.commands.map((c) => c.kind)).toEqual(['set', 'set', 'set', 'set', 'sql', 'sql', 'sql', 'sql', 'sql', 'sql', 'sql']);
    expect(sqlOf(s).map((x) => [x.line, x.extended, x.params])).toEqual([
      [5, 'BEGIN;', []],
      [6, 'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;', ['delta', 'aid']],
      [7, 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;', ['aid']],
      [8, 'UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;', ['delta', 'tid']],
      [9, 'UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;', ['delta', 'bid']],
      [10, 'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);', ['tid', 'bid', 'aid', 'delta']],
      [11, 'END;', []],
    ]);
  });

  it('statements span lines; quotes, dollar quotes, comments, parentheses and :: casts are respected; \\; joins statements', () => {
    const s = parseScript(
      ['-- a comment line', '\\set id random(1, 10)', 'SELECT :id::int AS id,', "       'a;b :id' AS literal, /* a ; comment */ $$x;y$$ AS dollar,", '       :unknown AS kept  -- ; no end here', '  ;', 'SELECT 2; SELECT (3;', '4);', 'SELECT 5 \\; SELECT 6;'].join('\n'),
      'multi.sql',
    );
    expect(sqlOf(s)).toEqual([
      {
        line: 3,
        text: "SELECT :id::int AS id,\n       'a;b :id' AS literal, /* a ; comment */ $$x;y$$ AS dollar,\n       :unknown AS kept  -- ; no end here\n  ;",
        // pgbench makes every :name a parameter in the extended protocols, even in a literal
        extended: "SELECT $1::int AS id,\n       'a;b $2' AS literal, /* a ; comment */ $$x;y$$ AS dollar,\n       $3 AS kept  -- ; no end here\n  ;",
        params: ['id', 'id', 'unknown'],
      },
      { line: 7, text: 'SELECT 2;', extended: 'SELECT 2;', params: [] },
      { line: 7, text: 'SELECT (3;\n4);', extended: 'SELECT (3;\n4);', params: [] },
      { line: 9, text: 'SELECT 5 ; SELECT 6;', extended: 'SELECT 5 ; SELECT 6;', params: [] },
    ]);
  });

  it('\\gset and \\aset attach to the command before them; -D values are text', () => {
    const s = parseScript('SELECT 1 AS one \\gset\nSELECT 2 AS two;\n\\aset p_\nSELECT :name;', 'g.sql', { name: 'abc' });
    expect(s.commands.map((c) => (c.kind === 'sql' ? c.sql.store ?? null : c.kind))).toEqual([{ prefix: '', all: false }, { prefix: 'p_', all: true }, null]);
    expect(s.stores).toBe(true);
  });
});

describe('expressions compute what pgbench computes', () => {
  it.each([
    ['7 / 2', '3'],
    ['-7 / 2', '-3'],
    ['7.0 / 2', '3.5'],
    ['7 % 3', '1'],
    ['-7 % 3', '-1'],
    ['2 * (3 + 4) - 1', '13'],
    [':scale * 100000', '200000'],
    [':client_id', '3'],
    ['greatest(1, 5.5, 3)', '5.5'],
    ['least(4, 2, 9)', '2'],
    ['int(2.5) + int(3.5) + int(-2.5)', '4'],
    ['abs(-3) + double(1)', '4'],
    ['sqrt(16) + pow(2, 10)', '1028'],
    ['mod(10, 4)', '2'],
    ['1 + \\\n  2 * 3', '7'],
    ['1e3', '1000'],
    ['1.0 / 3', '0.333333333333333'],
    ['pi()', '3.14159265358979'],
    ['1e20 * 10', '1e+21'],
    ['0.00001', '1e-05'],
    ['9223372036854775807', '9223372036854775807'],
    ['-9223372036854775807 - 1', '-9223372036854775808'],
    ['-9223372036854775808', '-9223372036854775808'],
    ['9223372036854775807 + 0.0', '9.22337203685478e+18'],
    ['5 > 3', 'true'],
    ['5 < 3 or 2 <> 2', 'false'],
    ['1 = 1.0 and 2 != 3', 'true'],
    ['not (1 >= 2)', 'true'],
    ['null', 'NULL'],
    ['1 + null', 'NULL'],
    ['null is null', 'true'],
    ['5 is not null', 'true'],
    ['5 notnull', 'true'],
    ['true is true and false is not true', 'true'],
    ['case when 1 > 2 then 10 when 3 > 2 then 20 else 30 end', '20'],
    ['case when false then 1 end', 'NULL'],
    ['5 & 3 | 8', '9'],
    ['5 # 1', '4'],
    ['~0', '-1'],
    ['1 << 62', '4611686018427387904'],
    ['-16 >> 2', '-4'],
    ['hash(5, 0)', '-208465272938114760'],
    ['hash_fnv1a(5, 0)', '1000385178204227360'],
    ['hash(5) = hash_murmur2(5, :default_seed)', 'true'],
    ['permute(0, 10, 5)', '6'],
    ['debug(1.5) * 2', '3'],
    [':word', 'hello'],
    [':n + 1', '42'],
    [':d * 2', '5'],
    [':yes and true', 'true'],
  ])('%s → %s', async (expr, expected) => {
    const got = await value(expr, { word: "'hello'", n: '41', d: '2.5', yes: 'on' });
    if (expr === ':word') expect(got).toBe("'hello'"); // a variable read in no expression keeps its text
    else expect(got).toBe(expected);
  });

  it.each([
    ['9223372036854775807 + :one', 'SCRIPT_OUT_OF_RANGE', 'bigint add out of range'],
    ['-9223372036854775807 - 2 * :one', 'SCRIPT_OUT_OF_RANGE', 'bigint sub out of range'],
    ['4611686018427387904 * (2 * :one)', 'SCRIPT_OUT_OF_RANGE', 'bigint mul out of range'],
    ['10 / (:one - 1)', 'SCRIPT_DIVISION_BY_ZERO', 'division by zero'],
    ['10 % (:one - 1)', 'SCRIPT_DIVISION_BY_ZERO', 'division by zero'],
    ['int(1e30 * :one)', 'SCRIPT_OUT_OF_RANGE', 'double to int overflow'],
    ['random(10, 1 * :one)', 'SCRIPT_RANDOM', 'empty range given to random'],
    ['random_gaussian(1, 10, 1.5 * :one)', 'SCRIPT_RANDOM', 'gaussian parameter must be at least 2.000000 (not 1.500000)'],
    ['(:one = 1) + 1', 'SCRIPT_TYPE', 'cannot coerce boolean to int'],
    [':nope2 + 1', 'SCRIPT_TYPE', 'malformed variable'],
  ])('%s fails the transaction: %s', async (expr, code, message) => {
    const r = await run(`\\set x ${expr}\nSELECT :x;`, { defines: { one: '1', nope2: 'abc' } });
    expect(r.sent).toEqual([]);
    expect(r.failures[0]).toMatchObject({ code, inTransaction: false });
    expect(r.failures[0]!.message).toContain(`t.sql:1: ${message}`);
  });

  it('debug() prints the value and its type as pgbench does', async () => {
    const r = await run('\\set x debug(1.5)\n\\set y debug(7)\nSELECT 1;');
    expect(r.debug).toEqual(['debug(script=0,command=1): double 1.5', 'debug(script=0,command=2): int 7']);
  });
});

describe("pgbench's numbers, pinned (seen from pgbench 15 with the same seeds)", () => {
  it('random() per client, :default_seed, hash and permute', async () => {
    const text = '\\set a random(1, 1000000)\n\\set h hash(:a)\nSELECT :a, :h, :default_seed;';
    const draws = (clientId: number) => {
      const src = scriptSource(parseScript(text, 'p.sql'), { scale: 1, clientId, seed: 42n, defaultSeed: PgbenchRandom.defaultSeed(42n, 2) }, PgbenchRandom.forClient(42n, clientId));
      const sent: string[] = [];
      const session = { conn: { query: async (t: string) => (sent.push(t), { status: 'I', rows: 0 }) }, protocol: 'simple', sleep: async () => undefined } as unknown as ScriptSession;
      return (async () => {
        await src.run!(session);
        return sent;
      })();
    };
    // pgbench -c 2 --random-seed=42: client 0's first random(1, 1000000) is 668251, client 1's 844242
    expect(await draws(0)).toEqual(['SELECT 668251, -2846345704759875020, 4482733528210176216;']);
    expect(await draws(1)).toEqual(['SELECT 844242, 5343936370566475051, 4482733528210176216;']);
    expect(await value('permute(123456, 1000000, -7)')).toBe('851997');
    expect(await value('hash(-3, 12345)')).toBe('6738814077042844684');
    expect(await value('hash_fnv1a(-1, -1)')).toBe('9116541788052886162');
  });
});

describe('control flow and meta-commands', () => {
  it('\\if / \\elif / \\else / \\endif, nested, take the branch pgbench takes', async () => {
    const text = [
      '\\set n :client_id',
      '\\if :n = 1',
      'SELECT 1;',
      '\\elif :n = 3',
      '  \\if false',
      '  SELECT 30;',
      '  \\else',
      '  SELECT 31;',
      '  \\endif',
      'SELECT 3;',
      '\\else',
      'SELECT 0;',
      '\\endif',
      'SELECT 99;',
    ].join('\n');
    expect((await run(text)).sent).toEqual(['SELECT 31;', 'SELECT 3;', 'SELECT 99;']);
  });

  it('\\sleep takes a number or a :variable, in us, ms or s (default s), and "10ms" written together', async () => {
    const r = await run('\\set d 3\n\\sleep 10 ms\n\\sleep :d us\n\\sleep 2\n\\sleep 5ms\n\\sleep 250 US\nSELECT 1;');
    expect(r.sleeps).toEqual([10, 0.003, 2000, 5, 0.25]);
  });

  it('variables are written into SQL as pgbench does: in literals too, unknown ones left as written', async () => {
    const r = await run("\\set aid 5\nSELECT ':aid'::int, :aid, :nope, 1::int, :'x';", { defines: { s: 'text' } });
    expect(r.sent).toEqual(["SELECT '5'::int, 5, :nope, 1::int, :'x';"]);
  });

  it('variables persist from one transaction to the next', async () => {
    const r = await run('\\if :scale = 2\n\\set scale 5\n\\set k 0\n\\endif\n\\set k :k + 1\nSELECT :k, :scale;', { times: 3 });
    expect(r.sent).toEqual(['SELECT 1, 5;', 'SELECT 2, 5;', 'SELECT 3, 5;']);
  });

  it('\\setshell runs /bin/sh and reads an integer; \\shell runs a command', async () => {
    const r = await run('\\set a 20\n\\setshell x echo :a\n\\shell true\nSELECT :x;');
    expect(r.failures).toEqual([]);
    expect(r.sent).toEqual(['SELECT 20;']);
    const bad = await run('\\setshell x echo nope\nSELECT :x;');
    expect(bad.failures[0]).toMatchObject({ code: 'SCRIPT_SHELL' });
    expect(bad.failures[0]!.message).toContain('shell command must return an integer');
  });

  it('a pipeline needs the extended protocol, and an open one at the end fails', async () => {
    expect((await run('\\startpipeline\nSELECT 1;\n\\endpipeline')).failures[0]).toMatchObject({ code: 'SCRIPT_PIPELINE' });
  });
});

describe('scripts: errors name file:line:column, the token and what was expected', () => {
  it('points at the column', () => {
    expect(syntaxError('SELECT 1;\n\n\\set aid random(1, 100000 * :scale\n')).toBe(
      ['bad.sql:3:35: expected ")" but found end of expression', '    \\set aid random(1, 100000 * :scale', `    ${' '.repeat(34)}^`].join('\n'),
    );
  });

  it.each([
    ['\\set x random(1)', 1, 'random() takes 2 arguments, not 1'],
    ['\\set x rand(1, 2)', 1, 'unknown function "rand" (known: abs, debug, double, exp, greatest, hash, hash_fnv1a, hash_murmur2, int, least, ln, mod, permute, pi, pow, power, random, random_exponential, random_gaussian, random_zipfian, sqrt)'],
    ['SELECT 1;\n\\set x :nope + 1', 2, 'undefined variable ":nope"'],
    ['\\set x 1 +', 1, 'expression ends too early'],
    ['\\set x (1 + 2', 1, 'expected ")" but found end of expression'],
    ['\\set x 1 2', 1, 'unexpected "2" after the expression'],
    ['\\set x 1 < 2 < 3', 1, 'comparisons do not chain'],
    ['\\set x case 1 then 2 end', 1, 'expected WHEN but found "1"'],
    ['\\set x 5 is 3', 1, 'expected NULL, TRUE or FALSE after IS but found "3"'],
    ['\\set x 9223372036854775808', 1, 'bigint constant overflow'],
    ['\\set x 99999999999999999999', 1, 'bigint constant overflow (99999999999999999999)'],
    ['\\set x 1 $ 2', 1, 'unexpected character "$"'],
    ['\\set', 1, 'missing argument: \\set needs a variable name'],
    ['\\set x', 1, 'missing argument: \\set x needs an expression'],
    ['\\set x 1 / 0', 1, 'division by zero'],
    ['\\sleep', 1, 'missing argument: \\sleep needs a duration'],
    ['\\sleep 10 hours', 1, 'unrecognized time unit "hours", must be us, ms or s'],
    ['\\sleep 1.5 s', 1, 'invalid sleep time "1.5", must be an integer'],
    ['\\sleep 1 s now', 1, 'unexpected argument "now" after \\sleep'],
    ['\\shell', 1, 'missing command'],
    ['\\setshell x', 1, 'missing argument: \\setshell needs a variable and a command'],
    ['SELECT 1;\n\\foo', 2, 'unknown meta-command "\\foo"'],
    ['\\gset', 1, '\\gset must follow an SQL command'],
    ['\\set x 1\n\\aset', 2, '\\aset must follow an SQL command'],
    ['SELECT 1 \\gset\n\\gset', 2, '\\gset must follow an SQL command'],
    ['\\if true\nSELECT 1;', 1, '\\if without matching \\endif'],
    ['\\endif', 1, '\\endif without matching \\if'],
    ['\\else', 1, '\\else without matching \\if'],
    ['\\if 1\n\\else\n\\elif 2\n\\endif', 3, '\\elif after \\else'],
    ['\\if 1\n\\else\n\\else\n\\endif', 3, '\\else after \\else'],
    ['\\if 1 extra\n\\endif', 1, 'unexpected "extra" after the expression'],
    ['\\startpipeline now', 1, 'unexpected argument "now" after \\startpipeline'],
    ['\\startpipeline\nSELECT 1 \\gset\n\\endpipeline', 2, '\\gset is not allowed in pipeline mode'],
    ["SELECT 1;\nSELECT 'open", 2, 'unterminated quoted string'],
    ['SELECT $q$ open', 1, 'unterminated dollar-quoted string (no closing $q$)'],
  ])('%j: line %i, %s', (text, line, message) => {
    const m = syntaxError(text);
    expect(m.split('\n')[0]).toMatch(new RegExp(`^bad\\.sql:${line}:\\d+: `));
    expect(m.split('\n')[0]).toContain(message);
    expect(m.split('\n')[1]).toBe(`    ${text.split('\n')[line - 1]}`);
    expect(m.split('\n')[2]).toMatch(/^ {4} *\^$/);
  });
});
