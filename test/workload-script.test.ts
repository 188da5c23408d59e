import { describe, expect, it } from 'vitest';
import { ProdhomeError } from '../src/errors.js';
import { parseScript, Random, scriptSource, TPCB_SCRIPT, type Script, type Step } from '../src/workload/index.js';

// The pgbench-syntax script parser, table-driven: what scripts mean, and how bad ones are refused.

/** The values of a statement step. */
const valuesOf = (step: Step | undefined) => (step && 'values' in step ? step.values : undefined);
const sqlOf = (s: Script) => s.commands.flatMap((c) => (c.kind === 'sql' ? [{ line: c.line, text: c.statement.text, params: c.params.map((i) => s.variables[i]!.name) }] : []));

/** Runs the script once for client 3 and returns the values of its statements and its sleeps. */
function once(text: string, defines: Record<string, number> = {}) {
  const script = parseScript(text, 't.sql', defines);
  return scriptSource(script, { scale: 2, client_id: 3, ...defines }, new Random(1)).next();
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

describe('scripts: what they mean', () => {
  it("pgbench's builtin tpcb-like script: four \\set, seven statements, :vars as parameters", () => {
    const s = parseScript(TPCB_SCRIPT, 'tpcb');
    expect(s.commands.map((c) => c.kind)).toEqual(['set', 'set', 'set', 'set', 'sql', 'sql', 'sql', 'sql', 'sql', 'sql', 'sql']);
    expect(sqlOf(s)).toEqual([
      { line: 5, text: 'BEGIN', params: [] },
      { line: 6, text: 'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2', params: ['delta', 'aid'] },
      { line: 7, text: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1', params: ['aid'] },
      { line: 8, text: 'UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2', params: ['delta', 'tid'] },
      { line: 9, text: 'UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2', params: ['delta', 'bid'] },
      { line: 10, text: 'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)', params: ['tid', 'bid', 'aid', 'delta'] },
      { line: 11, text: 'END', params: [] },
    ]);
  });

  it('draws tpcb values in the ranges pgbench uses for the scale', () => {
    const script = parseScript(TPCB_SCRIPT, 'tpcb');
    const src = scriptSource(script, { scale: 3 }, new Random(9));
    for (let i = 0; i < 2000; i++) {
      const [delta, aid] = valuesOf(src.next()[1]) as number[];
      expect(delta! >= -5000 && delta! <= 5000 && aid! >= 1 && aid! <= 300_000).toBe(true);
    }
  });

  it('statements may span lines; quotes, dollar quotes, comments and :: casts are respected', () => {
    const s = parseScript(
      [
        '-- a comment line',
        '\\set id random(1, 10)',
        'SELECT :id::int AS id,',
        "       'a;b :id' AS literal, /* a ; comment */ $$x;y$$ AS dollar,",
        '       :unknown AS kept  -- ; no end here',
        '  ;',
        'SELECT 2; SELECT 3',
      ].join('\n'),
      'multi.sql',
    );
    expect(sqlOf(s)).toEqual([
      // Quoted text stays as written (pgbench would substitute :id even there), and so do unknown :vars.
      { line: 3, text: "SELECT $1::int AS id,\n       'a;b :id' AS literal,   $$x;y$$ AS dollar,\n       :unknown AS kept", params: ['id'] },
      { line: 7, text: 'SELECT 2', params: [] },
      { line: 7, text: 'SELECT 3', params: [] },
    ]);
  });

  it.each([
    ['\\set x 7 / 2', 3],
    ['\\set x -7 / 2', -3],
    ['\\set x 7.0 / 2', 3.5],
    ['\\set x 7 % 3', 1],
    ['\\set x -7 % 3', -1],
    ['\\set x 2 * (3 + 4) - 1', 13],
    ['\\set x :scale * 100000', 200000],
    ['\\set x :client_id', 3],
    ['\\set x greatest(1, 5.5, 3)', 5.5],
    ['\\set x least(4, 2, 9)', 2],
    ['\\set x int(2.5) + int(3.5)', 6],
    ['\\set x abs(-3) + double(1)', 4],
    ['\\set x sqrt(16) + pow(2, 10)', 1028],
    ['\\set x mod(10, 4)', 2],
    ['\\set x 1 + \\\n  2 * 3', 7],
    ['\\set x 1e3', 1000],
  ])('%s → %s', (set, value) => {
    expect(valuesOf(once(`${set}\nSELECT :x;`)[0])).toEqual([value]);
  });

  it('random functions draw within their ranges', () => {
    const text = '\\set a random(5, 7)\n\\set b random_exponential(1, 10, 2.5)\n\\set c random_gaussian(1, 10, 2.5)\n\\set d random_zipfian(1, 10, 1.1)\nSELECT :a, :b, :c, :d;';
    const src = scriptSource(parseScript(text, 'r.sql'), {}, new Random(3));
    for (let i = 0; i < 1000; i++) {
      const [a, b, c, d] = valuesOf(src.next()[0]) as number[];
      expect(a! >= 5 && a! <= 7 && [b, c, d].every((x) => x! >= 1 && x! <= 10)).toBe(true);
    }
  });

  it('\\sleep takes a number or a :variable, in us, ms or s (default s)', () => {
    const steps = once('\\set d 3\n\\sleep 10 ms\n\\sleep :d us\n\\sleep 2\nSELECT 1;');
    expect(steps.slice(0, 3)).toEqual([{ sleepMicros: 10_000 }, { sleepMicros: 3 }, { sleepMicros: 2_000_000 }]);
  });

  it('-D variables are usable like \\set ones', () => {
    expect(valuesOf(once('SELECT :foo + :bar;', { foo: 5, bar: 1.5 })[0])).toEqual([5, 1.5]);
  });

  it('an error while running names file:line (division by a variable that is 0)', () => {
    const script = parseScript('\\set d 0\nSELECT 1;\n\\set x 10 / :d\n', 'div.sql');
    expect(() => scriptSource(script, {}, new Random(1)).next()).toThrow('div.sql:3: division by zero');
  });
});

describe('scripts: errors name file:line and show the offending text', () => {
  it('points at the column', () => {
    expect(syntaxError('SELECT 1;\n\n\\set aid random(1, 100000 * :scale\n')).toBe(
      ['bad.sql:3: expected ")" but found end of expression', '    \\set aid random(1, 100000 * :scale', `    ${' '.repeat(34)}^`].join('\n'),
    );
  });

  it.each([
    ['\\set x random(1)', 1, 'random() takes 2 arguments, not 1'],
    ['\\set x rand(1, 2)', 1, 'unknown function "rand" (known: abs, double, exp, greatest, int, least, ln, mod, pi, pow, power, random, random_exponential, random_gaussian, random_zipfian, sqrt)'],
    ['SELECT 1;\n\\set x :nope + 1', 2, 'undefined variable ":nope"'],
    ['\\set x 1 +', 1, 'expression ends too early'],
    ['\\set x (1 + 2', 1, 'expected ")" but found end of expression'],
    ['\\set x 1 2', 1, 'unexpected "2" after the expression'],
    ['\\set x 5 < 3', 1, 'operator "<" is not supported by prodhome load (run this script with --engine pgbench)'],
    ['\\set x case when 1 then 2 end', 1, '"CASE" expressions are not supported by prodhome load'],
    ['\\set x hash(5)', 1, 'function hash() is not supported by prodhome load'],
    ['\\set x 1 $ 2', 1, 'unexpected character "$"'],
    ['\\set', 1, '\\set needs a variable name and an expression'],
    ['\\set x', 1, '\\set x needs an expression'],
    ['\\set x random(10, 1)', 1, 'empty range given to random: 10 > 1'],
    ['\\set x random_gaussian(1, 10, 1.5)', 1, 'gaussian parameter must be at least 2.0 (got 1.5)'],
    ['\\set x random_exponential(1, 10, 0)', 1, 'exponential parameter must be greater than zero (got 0)'],
    ['\\set x random_zipfian(1, 10, 0.5)', 1, 'zipfian parameter must be in range [1.001, 1000] (not 0.5)'],
    ['\\set x 1 / 0', 1, 'division by zero'],
    ['\\sleep', 1, '\\sleep needs a duration'],
    ['\\sleep 10 hours', 1, 'unknown \\sleep unit "hours" (use us, ms or s)'],
    ['\\sleep 1.5 s', 1, '\\sleep takes an integer or a :variable, not "1.5"'],
    ['\\sleep 1 s now', 1, 'unexpected "now" after \\sleep 1 s'],
    ['\\shell echo hi', 1, '\\shell is not supported by prodhome load (run this script with --engine pgbench)'],
    ['SELECT 1;\n\\foo', 2, 'unknown meta-command "\\foo" (prodhome load knows \\set and \\sleep)'],
    ['SELECT 1 \\gset', 1, '"\\gset" inside an SQL statement: end the statement with ";" first (and \\gset is not supported'],
    ["SELECT 1;\nSELECT 'open", 2, 'unterminated string in this statement'],
    ['SELECT $q$ open', 1, 'unterminated dollar-quoted string $q$'],
  ])('%j: line %i, %s', (text, line, message) => {
    const m = syntaxError(text);
    expect(m.split('\n')[0]).toContain(`bad.sql:${line}: ${message}`);
    expect(m.split('\n')[1]).toBe(`    ${text.split('\n')[line - 1]}`);
    expect(m.split('\n')[2]).toMatch(/^ {4} *\^$/);
  });
});
