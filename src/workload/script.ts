import { ProdhomeError } from '../errors.js';
import { compileExpr, ExprError, type Compiled, type ExprType, type VarInfo } from './expr.js';
import { statementFrom, type Statement } from './statement.js';

/**
 * pgbench's script format: SQL statements ending in ";" (several lines each, quotes, dollar
 * quotes and comments respected) and meta-commands on their own line — `\set VAR EXPR` and
 * `\sleep N [us|ms|s]` (N a number or :var). `:var` in SQL becomes a parameter. Errors name
 * file:line, show the line and point at the offending text.
 */
export type Command =
  | { kind: 'set'; line: number; target: number; expr: Compiled }
  | { kind: 'sleep'; line: number; micros: Compiled }
  | { kind: 'sql'; line: number; statement: Statement; /** variable index per statement value */ params: number[] };

export interface Script {
  file: string;
  commands: Command[];
  /** Variable names by index; builtins first. */
  variables: { name: string; type: ExprType }[];
}

/** Variables every script may use, as pgbench defines them. */
export const BUILTIN_VARIABLES = ['scale', 'client_id', 'random_seed', 'default_seed'] as const;

/** Variables given from outside (-D NAME=VALUE): integers or doubles. */
export type Defines = Record<string, number>;

const PGBENCH_ONLY_META = new Set(['setshell', 'shell', 'gset', 'aset', 'if', 'elif', 'else', 'endif', 'startpipeline', 'endpipeline', 'syncpipeline']);

export function parseScript(text: string, file: string, defines: Defines = {}): Script {
  const variables: { name: string; type: ExprType }[] = [];
  const index = new Map<string, VarInfo>();
  const define = (name: string, type: ExprType) => {
    const known = index.get(name);
    if (known) {
      // A variable keeps its first type; pgbench's are dynamic, ours are compiled.
      if (known.type !== type) variables[known.index]!.type = known.type = 'double';
      return known;
    }
    const info = { index: variables.length, type };
    variables.push({ name, type });
    index.set(name, info);
    return info;
  };
  for (const name of BUILTIN_VARIABLES) define(name, 'int');
  for (const [name, value] of Object.entries(defines)) define(name, Number.isInteger(value) ? 'int' : 'double');

  const lines = text.split('\n');
  const fail = (line: number, col: number, message: string): never => {
    const src = (lines[line - 1] ?? '').replace(/\r$/, '');
    throw new ProdhomeError('SCRIPT_SYNTAX', `${file}:${line}: ${message}\n    ${src}\n    ${' '.repeat(Math.max(0, col))}^`, {
      hint: 'prodhome load reads pgbench script syntax: SQL ending in ";", \\set VAR EXPR, \\sleep N [us|ms|s].',
    });
  };

  const commands: Command[] = [];
  let i = 0;
  let line = 1;
  const lineStart = () => text.lastIndexOf('\n', i - 1) + 1;

  while (i < text.length) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      i++;
    } else if (/\s/.test(c)) {
      i++;
    } else if (text.startsWith('--', i)) {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '\\') {
      // A meta-command: to the end of the line, or further with a trailing backslash.
      const startLine = line;
      let body = '';
      const bodyCol = i - lineStart() + 1;
      i++;
      for (;;) {
        const end = text.indexOf('\n', i);
        const chunk = (end < 0 ? text.slice(i) : text.slice(i, end)).replace(/\r$/, '');
        i = end < 0 ? text.length : end + 1;
        if (chunk.endsWith('\\') && i < text.length) {
          body += `${chunk.slice(0, -1)} `;
          line++;
          continue;
        }
        body += chunk;
        if (end >= 0) line++;
        break;
      }
      commands.push(meta(body, startLine, bodyCol));
    } else {
      commands.push(...sql(line));
    }
  }
  return { file, commands, variables };

  function meta(body: string, at: number, col: number): Command {
    const name = /^[A-Za-z_]*/.exec(body)![0];
    const args = body.slice(name.length);
    const argCol = col + name.length;
    if (name === 'set') {
      const m = /^(\s+)([A-Za-z0-9_]+)(\s+|$)/.exec(args);
      if (!m) fail(at, argCol + 1, '\\set needs a variable name and an expression: \\set NAME EXPR');
      const exprText = args.slice(m![0].length);
      const exprCol = argCol + m![0].length;
      if (!exprText.trim()) fail(at, exprCol, `\\set ${m![2]} needs an expression`);
      const expr = compile(exprText, at, exprCol);
      const target = define(m![2]!, expr.type).index;
      return { kind: 'set', line: at, target, expr };
    }
    if (name === 'sleep') {
      const words = [...args.matchAll(/\S+/g)];
      const [amount, unit, extra] = words;
      if (!amount) fail(at, argCol, '\\sleep needs a duration: \\sleep N [us|ms|s]');
      if (extra) fail(at, argCol + extra.index, `unexpected "${extra[0]}" after \\sleep ${amount![0]} ${unit![0]}`);
      const scale = unit === undefined ? 1e6 : { us: 1, ms: 1e3, s: 1e6 }[unit[0]];
      if (scale === undefined) fail(at, argCol + unit!.index, `unknown \\sleep unit "${unit![0]}" (use us, ms or s)`);
      if (!/^(:[A-Za-z0-9_]+|\d+)$/.test(amount![0])) fail(at, argCol + amount!.index, `\\sleep takes an integer or a :variable, not "${amount![0]}"`);
      const amountExpr = compile(amount![0], at, argCol + amount!.index);
      const f = amountExpr.eval;
      return { kind: 'sleep', line: at, micros: { type: 'int', eval: (v, r) => f(v, r) * scale! } };
    }
    if (PGBENCH_ONLY_META.has(name.toLowerCase())) return fail(at, col - 1, `\\${name} is not supported by prodhome load (run this script with --engine pgbench)`);
    return fail(at, col - 1, `unknown meta-command "\\${name}" (prodhome load knows \\set and \\sleep)`);
  }

  function compile(exprText: string, at: number, col: number): Compiled {
    try {
      return compileExpr(exprText, (n) => index.get(n));
    } catch (e) {
      if (e instanceof ExprError) return fail(at, col + e.column, e.message);
      throw e;
    }
  }

  /** One SQL statement from i to its ";" (or the end of the file). */
  function sql(startLine: number): Command[] {
    const parts: string[] = [];
    const params: number[] = [];
    const slots: number[] = [];
    let piece = '';
    let hasCode = false;
    const put = (s: string) => {
      piece += s;
    };
    const count = (s: string) => {
      for (const ch of s) if (ch === '\n') line++;
    };
    while (i < text.length) {
      const c = text[i]!;
      const rest = () => text.slice(i);
      if (c === ';') {
        i++;
        break;
      }
      if (c === "'" || c === '"') {
        // A quoted literal or identifier; E'…' strings also escape with backslashes.
        const escapes = c === "'" && /[eE]$/.test(piece) && !/[A-Za-z0-9_][eE]$/.test(piece);
        let j = i + 1;
        for (;;) {
          if (j >= text.length) return fail(startLine, 0, `unterminated ${c === "'" ? 'string' : 'quoted identifier'} in this statement`);
          if (escapes && text[j] === '\\') j += 2;
          else if (text[j] === c && text[j + 1] === c) j += 2;
          else if (text[j] === c) break;
          else j++;
        }
        const s = text.slice(i, j + 1);
        count(s);
        put(s);
        hasCode = true;
        i = j + 1;
        continue;
      }
      const dollar = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(rest());
      if (dollar && !/[A-Za-z0-9_]$/.test(piece)) {
        const end = text.indexOf(dollar[0], i + dollar[0].length);
        if (end < 0) return fail(startLine, 0, `unterminated dollar-quoted string ${dollar[0]}`);
        const s = text.slice(i, end + dollar[0].length);
        count(s);
        put(s);
        hasCode = true;
        i = end + dollar[0].length;
        continue;
      }
      if (text.startsWith('--', i)) {
        const end = text.indexOf('\n', i);
        i = end < 0 ? text.length : end;
        continue;
      }
      if (text.startsWith('/*', i)) {
        let depth = 0;
        let j = i;
        do {
          if (text.startsWith('/*', j)) {
            depth++;
            j += 2;
          } else if (text.startsWith('*/', j)) {
            depth--;
            j += 2;
          } else j++;
          if (j >= text.length && depth > 0) return fail(line, i - lineStart(), 'unterminated /* comment');
        } while (depth > 0);
        count(text.slice(i, j));
        put(' ');
        i = j;
        continue;
      }
      if (c === ':' && text[i + 1] === ':') {
        put('::');
        i += 2;
        continue;
      }
      const v = c === ':' ? /^:([A-Za-z0-9_]+)/.exec(rest()) : null;
      if (v && index.has(v[1]!)) {
        // pgbench substitutes only variables that exist; anything else stays as written.
        const vi = index.get(v[1]!)!.index;
        let slot = params.indexOf(vi);
        if (slot < 0) slot = params.push(vi) - 1;
        parts.push(piece);
        piece = '';
        slots.push(slot);
        hasCode = true;
        i += v[0].length;
        continue;
      }
      if (c === '\\') {
        const name = /^\\([A-Za-z_]*)/.exec(rest())![1];
        return fail(line, i - lineStart(), `"\\${name}" inside an SQL statement: end the statement with ";" first${
          PGBENCH_ONLY_META.has((name ?? '').toLowerCase()) ? ` (and \\${name} is not supported by prodhome load; use --engine pgbench)` : ''
        }`);
      }
      if (c === '\n') line++;
      if (!/\s/.test(c)) hasCode = true;
      put(c);
      i++;
    }
    if (!hasCode) return [];
    parts.push(piece);
    const first = parts[0]!.replace(/^\s+/, '');
    parts[0] = first;
    parts[parts.length - 1] = parts[parts.length - 1]!.replace(/\s+$/, '');
    return [{ kind: 'sql', line: startLine, statement: statementFrom(parts, slots), params }];
  }
}
