import { ProdhomeError } from '../errors.js';
import { compileExpr, ExprError, type Compiled } from './expr.js';
import { statementFrom, type Statement } from './statement.js';

/**
 * pgbench's script format, as pgbench 17 reads it: SQL commands ending in ";" (several lines
 * each; quotes, dollar quotes, comments and parentheses respected; "\;" joins statements into
 * one compound command) and backslash meta-commands on one line each (a trailing "\" continues
 * it): \set, \sleep, \setshell, \shell, \if/\elif/\else/\endif, \gset and \aset after a
 * command, \startpipeline/\syncpipeline/\endpipeline. Errors name file:line:column, the token
 * and what was expected, and point at it.
 */
export type Command =
  | { kind: 'set'; line: number; target: number; expr: Compiled }
  | { kind: 'sleep'; line: number; /** a number, or the variable holding one */ amount: number | { variable: number }; /** µs per unit */ scale: number }
  | { kind: 'setshell'; line: number; target: number; words: ShellWord[] }
  | { kind: 'shell'; line: number; words: ShellWord[] }
  | { kind: 'sql'; line: number; sql: SqlCommand }
  /** \if and \elif's test: when false, go to `onFalse` (the next branch, or after \endif). */
  | { kind: 'if'; line: number; expr: Compiled; onFalse: number }
  /** The end of a branch that ran: on to after its \endif. */
  | { kind: 'goto'; line: number; target: number }
  | { kind: 'startpipeline' | 'syncpipeline' | 'endpipeline'; line: number };

/** A \shell or \setshell argument: text, or a variable's value. */
export type ShellWord = string | { variable: number };

export interface SqlCommand {
  /** The command as written (from its first word to its ";"), variables not substituted. */
  text: string;
  /** The text around each :variable occurrence: parts.length = vars.length + 1. */
  parts: string[];
  /** Variable index of each occurrence. */
  vars: number[];
  /** Each occurrence as written (":aid"), kept in simple mode when the variable is not set. */
  written: string[];
  /** For the extended protocols: each occurrence a parameter $1…$n, as pgbench numbers them. */
  statement: Statement;
  /** \gset [prefix] (all: false) or \aset [prefix] (all: true) after the command. */
  store?: { prefix: string; all: boolean };
}

export interface Script {
  file: string;
  commands: Command[];
  /** Variable names by index; the builtins first, then -D's, then in order of appearance. */
  variables: string[];
  index: Map<string, number>;
  /** Whether the script stores query results (\gset, \aset): variables it does not name may appear. */
  stores: boolean;
}

/** Variables every script may use, as pgbench defines them. */
export const BUILTIN_VARIABLES = ['scale', 'client_id', 'random_seed', 'default_seed'] as const;

/** Variables given from outside (-D NAME=VALUE): text, as pgbench takes them (numbers are accepted too). */
export type Defines = Record<string, string | number>;

const META = ['set', 'sleep', 'setshell', 'shell', 'if', 'elif', 'else', 'endif', 'gset', 'aset', 'startpipeline', 'syncpipeline', 'endpipeline'];

/** A meta-command's name, after its backslash. */
const META_NAME = /\\([^\s\\]*)/y;

/** A variable reference in SQL, as pgbench's parseVariable reads one (no leading digit). */
const SQL_VARIABLE = /:([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)/y;

const parsed = new Map<string, Script>();

/**
 * A script parsed once per thread for all its clients (a script is read-only once parsed; each
 * client keeps its own variables).
 */
export function sharedScript(text: string, file: string, defines: Defines = {}): Script {
  const key = `${file}\0${JSON.stringify(defines)}\0${text}`;
  let s = parsed.get(key);
  if (!s) parsed.set(key, (s = parseScript(text, file, defines)));
  return s;
}

export function parseScript(text: string, file: string, defines: Defines = {}): Script {
  const variables: string[] = [];
  const index = new Map<string, number>();
  const slot = (name: string) => {
    let i = index.get(name);
    if (i === undefined) {
      i = variables.push(name) - 1;
      index.set(name, i);
    }
    return i;
  };
  const assigned = new Set<string>([...BUILTIN_VARIABLES, ...Object.keys(defines)]);
  for (const name of assigned) slot(name);
  let stores = false;

  /** Line and column (1-based) of an offset in the text (line starts found once, then a binary search). */
  const lineStarts = [0];
  for (let k = text.indexOf('\n'); k >= 0; k = text.indexOf('\n', k + 1)) lineStarts.push(k + 1);
  const where = (at: number) => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= at) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: at - lineStarts[lo]! + 1, start: lineStarts[lo]! };
  };
  const fail = (at: number, message: string): never => {
    const { line, col, start } = where(at);
    const end = text.indexOf('\n', start);
    const src = text.slice(start, end < 0 ? text.length : end).replace(/\r$/, '');
    throw new ProdhomeError('SCRIPT_SYNTAX', `${file}:${line}:${col}: ${message}\n    ${src}\n    ${' '.repeat(Math.max(0, col - 1))}^`, {
      hint: 'prodhome load reads pgbench scripts: SQL ending in ";", and \\set, \\sleep, \\if/\\elif/\\else/\\endif, \\gset, \\aset, \\setshell, \\shell, \\startpipeline/\\syncpipeline/\\endpipeline.',
    });
  };

  const commands: Command[] = [];
  /** Open \if blocks: where each pending jump is, and whether \else was seen. */
  const ifs: { at: number; pendingTest?: number; gotos: number[]; sawElse: boolean }[] = [];
  let i = 0;
  /** A \gset must directly follow its SQL command (an \endif between them counts). */
  let previousWasSql = false;
  /** Between \startpipeline and \endpipeline, as written: no \gset or \aset there. */
  let inPipeline = false;

  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) i++;
    else if (text.startsWith('--', i)) {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '\\' && text[i + 1] !== ';' && text[i + 1] !== ':') meta();
    else sql();
  }
  if (ifs.length) fail(ifs[ifs.length - 1]!.at, '\\if without matching \\endif');
  return { file, commands, variables, index, stores };

  /** Words of a meta-command from `from` to its end of line; "\" + newline continues it. */
  function words(from: number): { words: { text: string; at: number }[]; end: number } {
    const out: { text: string; at: number }[] = [];
    let j = from;
    for (;;) {
      while (j < text.length && /[ \t\r\f\v]/.test(text[j]!)) j++;
      if (text.startsWith('\\\n', j) || text.startsWith('\\\r\n', j)) {
        j += text[j + 1] === '\r' ? 3 : 2;
        continue;
      }
      if (j >= text.length || text[j] === '\n') break;
      const at = j;
      let w = '';
      while (j < text.length && !/\s/.test(text[j]!)) {
        if (text.startsWith('\\\n', j) || text.startsWith('\\\r\n', j)) break;
        w += text[j];
        j++;
      }
      out.push({ text: w, at });
    }
    return { words: out, end: j < text.length ? j + 1 : j };
  }

  /** The rest of a meta-command's line(s) as expression text, continuations blanked so columns stay true. */
  function rest(from: number): { expr: string; end: number } {
    let j = from;
    let out = '';
    while (j < text.length && text[j] !== '\n') {
      if (text.startsWith('\\\n', j)) {
        out += '  ';
        j += 2;
      } else if (text.startsWith('\\\r\n', j)) {
        out += '   ';
        j += 3;
      } else out += text[j++];
    }
    return { expr: out.replace(/\r$/, ''), end: j < text.length ? j + 1 : j };
  }

  function compile(exprText: string, at: number): Compiled {
    try {
      const compiled = compileExpr(exprText, slot);
      if (!stores) for (const name of compiled.reads) if (!assigned.has(name)) throw new ExprError(`undefined variable ":${name}" (set it with \\set before using it)`, exprText.indexOf(`:${name}`));
      return compiled;
    } catch (e) {
      if (e instanceof ExprError) return fail(at + e.column, e.message);
      throw e;
    }
  }

  function meta(): void {
    const start = i;
    const line = where(start).line;
    const afterSql = previousWasSql;
    previousWasSql = false;
    META_NAME.lastIndex = i;
    const nameMatch = META_NAME.exec(text)!;
    const written = nameMatch[1]!;
    const name = written.toLowerCase();
    const after = i + nameMatch[0].length;
    if (!META.includes(name)) {
      fail(start, `unknown meta-command "\\${written}" (pgbench knows ${META.map((m) => `\\${m}`).join(', ')})`);
    }
    if (name === 'set' || name === 'if' || name === 'elif') {
      let exprFrom = after;
      let target = -1;
      if (name === 'set') {
        const w = words(after);
        const v = w.words[0];
        if (!v) fail(after, 'missing argument: \\set needs a variable name and an expression (\\set NAME EXPR)');
        if (!/^[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*$/.test(v!.text)) fail(v!.at, `invalid variable name "${v!.text}" (letters, digits and _, not starting with a digit)`);
        exprFrom = v!.at + v!.text.length;
        target = slot(v!.text);
        const r = rest(exprFrom);
        if (!r.expr.trim()) fail(exprFrom, `missing argument: \\set ${v!.text} needs an expression`);
        const expr = compile(r.expr, exprFrom);
        assigned.add(v!.text);
        commands.push({ kind: 'set', line, target, expr });
        i = r.end;
        return;
      }
      const r = rest(exprFrom);
      if (!r.expr.trim()) fail(exprFrom, `missing argument: \\${name} needs a condition`);
      if (name === 'elif') {
        const top = ifs[ifs.length - 1];
        if (!top) fail(start, '\\elif without matching \\if');
        if (top!.sawElse) fail(start, '\\elif after \\else');
        top!.gotos.push(commands.push({ kind: 'goto', line, target: -1 }) - 1);
        patch(top!, commands.length);
      }
      const expr = compile(r.expr, exprFrom);
      const at = commands.push({ kind: 'if', line, expr, onFalse: -1 }) - 1;
      if (name === 'if') ifs.push({ at: start, pendingTest: at, gotos: [], sawElse: false });
      else ifs[ifs.length - 1]!.pendingTest = at;
      i = r.end;
      return;
    }
    const w = words(after);
    const args = w.words;
    i = w.end;
    const extra = (n: number) => {
      if (args.length > n) fail(args[n]!.at, `unexpected argument "${args[n]!.text}" after \\${name}`);
    };
    switch (name) {
      case 'sleep': {
        if (!args.length) fail(after, 'missing argument: \\sleep needs a duration (\\sleep N [us|ms|s])');
        extra(2);
        let amountText = args[0]!.text;
        let unit = args[1];
        let amount: number | { variable: number };
        if (amountText.startsWith(':')) {
          if (!/^:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*$/.test(amountText)) fail(args[0]!.at, `invalid variable "${amountText}" in \\sleep`);
          amount = { variable: slot(amountText.slice(1)) };
        } else {
          // "10ms" is 10 ms, as in pgbench; the number is an integer, with an optional sign
          const m = /^([+-]?\d+)(.*)$/.exec(amountText);
          if (!m) return void fail(args[0]!.at, `invalid sleep time "${amountText}", must be an integer (or a :variable)`);
          if (m[2]) {
            if (unit) fail(args[0]!.at + m[1]!.length, `invalid sleep time "${amountText}", must be an integer`);
            unit = { text: m[2], at: args[0]!.at + m[1]!.length };
            amountText = m[1]!;
          }
          amount = Number(amountText);
        }
        const scale = unit === undefined ? 1e6 : { us: 1, ms: 1e3, s: 1e6 }[unit.text.toLowerCase()];
        if (scale === undefined) fail(unit!.at, `unrecognized time unit "${unit!.text}", must be us, ms or s`);
        commands.push({ kind: 'sleep', line, amount, scale: scale! });
        return;
      }
      case 'setshell':
      case 'shell': {
        const ws = args.map((a) => (a.text.startsWith('::') ? a.text.slice(1) : a.text.startsWith(':') ? { variable: slot(a.text.slice(1)) } : a.text));
        if (name === 'shell') {
          if (!ws.length) fail(after, 'missing command: \\shell needs a command to run');
          commands.push({ kind: 'shell', line, words: ws });
        } else {
          if (args.length < 2) fail(after, 'missing argument: \\setshell needs a variable and a command (\\setshell VAR COMMAND ...)');
          const v = args[0]!.text;
          if (!/^[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*$/.test(v)) fail(args[0]!.at, `invalid variable name "${v}"`);
          assigned.add(v);
          commands.push({ kind: 'setshell', line, target: slot(v), words: ws.slice(1) });
        }
        return;
      }
      case 'else': {
        extra(0);
        const top = ifs[ifs.length - 1];
        if (!top) fail(start, '\\else without matching \\if');
        if (top!.sawElse) fail(start, '\\else after \\else');
        top!.sawElse = true;
        top!.gotos.push(commands.push({ kind: 'goto', line, target: -1 }) - 1);
        patch(top!, commands.length);
        return;
      }
      case 'endif': {
        extra(0);
        const top = ifs.pop();
        if (!top) fail(start, '\\endif without matching \\if');
        patch(top!, commands.length);
        for (const g of top!.gotos) (commands[g] as { target: number }).target = commands.length;
        return;
      }
      case 'gset':
      case 'aset': {
        extra(1);
        const prev = commands[commands.length - 1];
        if (!prev || prev.kind !== 'sql' || prev.sql.store || !afterSql) fail(start, `\\${name} must follow an SQL command`);
        if (inPipeline) fail(start, `\\${name} is not allowed in pipeline mode (results are read at \\endpipeline)`);
        (prev as { sql: SqlCommand }).sql.store = { prefix: args[0]?.text ?? '', all: name === 'aset' };
        stores = true;
        return;
      }
      default: {
        extra(0);
        if (name === 'startpipeline') inPipeline = true;
        else if (name === 'endpipeline') inPipeline = false;
        commands.push({ kind: name as 'startpipeline' | 'syncpipeline' | 'endpipeline', line });
      }
    }
  }

  /** Points the pending \if/\elif test of a block at `target`. */
  function patch(block: { pendingTest?: number }, target: number): void {
    if (block.pendingTest !== undefined) (commands[block.pendingTest] as { onFalse: number }).onFalse = target;
    block.pendingTest = undefined;
  }

  /** One SQL command from i: to its ";" (included, as pgbench sends it), a backslash command, or the end. */
  function sql(): void {
    const start = i;
    const line = where(start).line;
    let out = '';
    let depth = 0;
    while (i < text.length) {
      const c = text[i]!;
      if (c === ';' && depth === 0) {
        out += ';';
        i++;
        break;
      }
      if (c === '(') depth++;
      else if (c === ')' && depth > 0) depth--;
      if (c === '\\') {
        if (text[i + 1] === ';' || text[i + 1] === ':') {
          out += text[i + 1];
          i += 2;
          continue;
        }
        break; // a meta-command ends the SQL command (\gset, \aset…)
      }
      if (c === "'" || c === '"') {
        // A quoted literal or identifier; E'…' strings also escape with backslashes.
        const escapes = c === "'" && /(^|[^A-Za-z0-9_])[eE]$/.test(out);
        let j = i + 1;
        for (;;) {
          if (j >= text.length) return void fail(i, `unterminated ${c === "'" ? 'quoted string' : 'quoted identifier'} (no closing ${c})`);
          if (escapes && text[j] === '\\') j += 2;
          else if (text[j] === c && text[j + 1] === c) j += 2;
          else if (text[j] === c) break;
          else j++;
        }
        out += text.slice(i, j + 1);
        i = j + 1;
        continue;
      }
      const dollar = c === '$' ? /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i, i + 200)) : null;
      if (dollar && !/[A-Za-z0-9_]$/.test(out)) {
        const end = text.indexOf(dollar[0], i + dollar[0].length);
        if (end < 0) return void fail(i, `unterminated dollar-quoted string (no closing ${dollar[0]})`);
        out += text.slice(i, end + dollar[0].length);
        i = end + dollar[0].length;
        continue;
      }
      if (text.startsWith('--', i)) {
        const end = text.indexOf('\n', i);
        const stop = end < 0 ? text.length : end;
        out += text.slice(i, stop);
        i = stop;
        continue;
      }
      if (text.startsWith('/*', i)) {
        let d = 0;
        let j = i;
        do {
          if (text.startsWith('/*', j)) {
            d++;
            j += 2;
          } else if (text.startsWith('*/', j)) {
            d--;
            j += 2;
          } else j++;
          if (j >= text.length && d > 0) return void fail(i, 'unterminated /* comment');
        } while (d > 0);
        out += text.slice(i, j);
        i = j;
        continue;
      }
      out += c;
      i++;
    }
    if (!out.trim()) return;
    commands.push({ kind: 'sql', line, sql: sqlCommand(out) });
    previousWasSql = true;
  }

  function sqlCommand(written: string): SqlCommand {
    const parts: string[] = [];
    const vars: number[] = [];
    const occurrences: string[] = [];
    let last = 0;
    let p = 0;
    while ((p = written.indexOf(':', p)) >= 0) {
      SQL_VARIABLE.lastIndex = p;
      const m = SQL_VARIABLE.exec(written);
      if (!m) {
        while (written[p] === ':') p++; // "::int" is a cast, as in pgbench
        continue;
      }
      parts.push(written.slice(last, p));
      vars.push(slot(m[1]!));
      occurrences.push(m[0]);
      p += m[0].length;
      last = p;
    }
    parts.push(written.slice(last));
    return { text: written, parts, vars, written: occurrences, statement: statementFrom(parts, vars.map((_, k) => k)) };
  }
}
