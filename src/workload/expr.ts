import { hashFnv1a, hashMurmur2, MAX_ZIPFIAN_PARAM, MIN_GAUSSIAN_PARAM, MIN_ZIPFIAN_PARAM, permute, PgbenchRandom, ScriptRuntimeError } from './random.js';
import { formatDouble, INT64_MAX, INT64_MIN, int64, parseText, toBool, toDouble, toInt, truth, type Value } from './values.js';

/**
 * pgbench's expression language (\set, \if, \elif), as its exprparse.y defines it: int64 and
 * double constants, booleans, null, :variables; + - * / % with integer semantics on ints and
 * overflow errors; comparisons, and/or/not, IS [NOT] NULL/TRUE/FALSE, ISNULL/NOTNULL, CASE, the
 * bit operators & | # << >> ~; and every function of pgbench 17. Types are dynamic as in pgbench
 * (a \gset variable's type is only known when read). Parsed into a tree, then compiled into
 * closures, constant parts folded at parse time.
 */
export interface EvalContext {
  /** The client's variables by index (undefined: not set). */
  vars: (Value | undefined)[];
  random: PgbenchRandom;
  /** Variable names by index, for messages. */
  names: readonly string[];
  /** Where debug() writes. */
  debug: (text: string) => void;
}

export type Eval = (ctx: EvalContext) => Value;

export interface Compiled {
  eval: Eval;
  /** Set when the value is known without running (constant folding). */
  constant?: { value: Value };
}

export class ExprError extends Error {
  constructor(
    message: string,
    /** Column (0-based, within the expression text) of the offending token. */
    readonly column: number,
  ) {
    super(message);
  }
}

type Token =
  | { kind: 'int'; value: bigint; text: string; col: number }
  | { kind: 'maxint1'; text: string; col: number }
  | { kind: 'double'; value: number; text: string; col: number }
  | { kind: 'var'; name: string; text: string; col: number }
  | { kind: 'ident'; name: string; text: string; col: number }
  | { kind: 'kw'; name: string; text: string; col: number }
  | { kind: 'op'; op: string; text: string; col: number }
  | { kind: 'end'; text: string; col: number };

const KEYWORDS = new Set(['null', 'true', 'false', 'and', 'or', 'not', 'is', 'isnull', 'notnull', 'case', 'when', 'then', 'else', 'end']);

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const rest = text.slice(i);
    const num = /^(\d+\.\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)/.exec(rest);
    if (num) {
      const t = num[0];
      if (/^\d+$/.test(t)) {
        if (t.replace(/^0+(?=\d)/, '') === '9223372036854775808') out.push({ kind: 'maxint1', text: t, col: i });
        else {
          const v = BigInt(t);
          if (v > INT64_MAX) throw new ExprError(`bigint constant overflow (${t})`, i);
          out.push({ kind: 'int', value: v, text: t, col: i });
        }
      } else {
        const d = Number(t);
        if (!Number.isFinite(d)) throw new ExprError(`double constant overflow (${t})`, i);
        out.push({ kind: 'double', value: d, text: t, col: i });
      }
      i += t.length;
      continue;
    }
    const v = /^:([A-Za-z0-9_\u0080-\uffff]+)/.exec(rest);
    if (v) {
      out.push({ kind: 'var', name: v[1]!, text: v[0], col: i });
      i += v[0].length;
      continue;
    }
    const id = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*/.exec(rest);
    if (id) {
      const low = id[0].toLowerCase();
      out.push(KEYWORDS.has(low) ? { kind: 'kw', name: low, text: id[0], col: i } : { kind: 'ident', name: low, text: id[0], col: i });
      i += id[0].length;
      continue;
    }
    const op = /^(<>|!=|<=|>=|<<|>>|[-+*/%(),<>=&|#~])/.exec(rest);
    if (op) {
      out.push({ kind: 'op', op: op[0] === '!=' ? '<>' : op[0], text: op[0], col: i });
      i += op[0].length;
      continue;
    }
    throw new ExprError(`unexpected character "${c}"`, i);
  }
  out.push({ kind: 'end', text: '', col: text.length });
  return out;
}

/** The parse tree: constants, variables, and calls (operators are calls, as in pgbench). */
type Node = { k: 'const'; value: Value } | { k: 'var'; name: string; col: number } | { k: 'call'; fn: string; args: Node[]; col: number };

// Binding powers, lowest first, as exprparse.y's precedence list.
const BINARY: Record<string, { prec: number; assoc: 'left' | 'none' }> = {
  or: { prec: 1, assoc: 'left' },
  and: { prec: 2, assoc: 'left' },
  // 3: NOT (prefix, right)   4: IS / ISNULL / NOTNULL (postfix, nonassoc)
  '<': { prec: 5, assoc: 'none' },
  '>': { prec: 5, assoc: 'none' },
  '=': { prec: 5, assoc: 'none' },
  '<=': { prec: 5, assoc: 'none' },
  '>=': { prec: 5, assoc: 'none' },
  '<>': { prec: 5, assoc: 'none' },
  '|': { prec: 6, assoc: 'left' },
  '#': { prec: 6, assoc: 'left' },
  '&': { prec: 6, assoc: 'left' },
  '<<': { prec: 6, assoc: 'left' },
  '>>': { prec: 6, assoc: 'left' },
  '+': { prec: 7, assoc: 'left' },
  '-': { prec: 7, assoc: 'left' },
  '*': { prec: 8, assoc: 'left' },
  '/': { prec: 8, assoc: 'left' },
  '%': { prec: 8, assoc: 'left' },
};
const UNARY_PREC = 9;

/** Argument counts: [min, max]; hash and permute take the seed from :default_seed when it is left out. */
const ARITY: Record<string, [number, number]> = {
  abs: [1, 1],
  debug: [1, 1],
  double: [1, 1],
  exp: [1, 1],
  greatest: [1, Infinity],
  hash: [1, 2],
  hash_fnv1a: [1, 2],
  hash_murmur2: [1, 2],
  int: [1, 1],
  least: [1, Infinity],
  ln: [1, 1],
  mod: [2, 2],
  permute: [2, 3],
  pi: [0, 0],
  pow: [2, 2],
  power: [2, 2],
  random: [2, 2],
  random_exponential: [3, 3],
  random_gaussian: [3, 3],
  random_zipfian: [3, 3],
  sqrt: [1, 1],
};

export const SUPPORTED_FUNCTIONS = Object.keys(ARITY).sort();

/** Functions whose value depends on more than their arguments: never folded. */
const IMPURE = new Set(['random', 'random_exponential', 'random_gaussian', 'random_zipfian', 'debug']);

const describe = (t: Token) => (t.kind === 'end' ? 'end of expression' : `"${t.text}"`);

function parse(text: string): Node {
  const tokens = tokenize(text);
  let pos = 0;
  const peek = () => tokens[pos]!;
  const isOp = (op: string) => {
    const t = peek();
    return t.kind === 'op' && t.op === op;
  };
  const isKw = (kw: string) => {
    const t = peek();
    return t.kind === 'kw' && t.name === kw;
  };
  const expected = (what: string): never => {
    throw new ExprError(`expected ${what} but found ${describe(peek())}`, peek().col);
  };
  const expectOp = (op: string) => {
    if (!isOp(op)) expected(`"${op}"`);
    pos++;
  };
  const expectKw = (kw: string) => {
    if (!isKw(kw)) expected(kw.toUpperCase());
    pos++;
  };
  const call = (fn: string, args: Node[], col: number): Node => ({ k: 'call', fn, args, col });

  /** Precedence climbing: parses an expression whose operators bind tighter than `min`. */
  function expr(min: number): Node {
    let left = prefix();
    for (;;) {
      const t = peek();
      // postfix IS / ISNULL / NOTNULL (nonassoc, precedence 4)
      if (t.kind === 'kw' && (t.name === 'is' || t.name === 'isnull' || t.name === 'notnull') && min < 4) {
        pos++;
        if (t.name === 'isnull') left = call('!is', [left, { k: 'const', value: null }], t.col);
        else if (t.name === 'notnull') left = call('!not', [call('!is', [left, { k: 'const', value: null }], t.col)], t.col);
        else {
          const not = isKw('not');
          if (not) pos++;
          const v = peek();
          const word = v.kind === 'kw' ? v.name : '';
          if (word !== 'null' && word !== 'true' && word !== 'false') expected('NULL, TRUE or FALSE after IS');
          pos++;
          const is = call('!is', [left, { k: 'const', value: word === 'null' ? null : word === 'true' }], t.col);
          left = not ? call('!not', [is], t.col) : is;
        }
        const n = peek();
        if (n.kind === 'kw' && (n.name === 'is' || n.name === 'isnull' || n.name === 'notnull')) throw new ExprError(`unexpected ${describe(n)}: IS cannot follow IS without parentheses`, n.col);
        continue;
      }
      const op = t.kind === 'op' ? t.op : t.kind === 'kw' && (t.name === 'and' || t.name === 'or') ? t.name : undefined;
      const b = op === undefined ? undefined : BINARY[op];
      if (!b || b.prec <= min) return left;
      pos++;
      const right = expr(b.prec);
      if (b.assoc === 'none') {
        const n = peek();
        if (n.kind === 'op' && BINARY[n.op]?.prec === b.prec) throw new ExprError(`unexpected ${describe(n)}: comparisons do not chain (add parentheses)`, n.col);
      }
      left = binaryNode(op!, left, right, t.col);
    }
  }

  function binaryNode(op: string, l: Node, r: Node, col: number): Node {
    switch (op) {
      case '>':
        return call('<', [r, l], col);
      case '>=':
        return call('<=', [r, l], col);
      case '%':
        return call('mod', [l, r], col);
      case 'and':
        return call('!and', [l, r], col);
      case 'or':
        return call('!or', [l, r], col);
      default:
        return call(op, [l, r], col);
    }
  }

  function prefix(): Node {
    const t = peek();
    pos++;
    switch (t.kind) {
      case 'int':
        return { k: 'const', value: t.value };
      case 'double':
        return { k: 'const', value: t.value };
      case 'maxint1':
        throw new ExprError('bigint constant overflow (9223372036854775808 is only valid after a minus sign)', t.col);
      case 'var':
        return { k: 'var', name: t.name, col: t.col };
      case 'end':
        throw new ExprError('expression ends too early', t.col);
      case 'kw':
        switch (t.name) {
          case 'null':
            return { k: 'const', value: null };
          case 'true':
          case 'false':
            return { k: 'const', value: t.name === 'true' };
          case 'not':
            return call('!not', [expr(3)], t.col); // NOT binds looser than comparisons and IS, tighter than AND
          case 'case':
            return caseExpr(t.col);
          default:
            throw new ExprError(`unexpected ${describe(t)}`, t.col);
        }
      case 'ident':
        return func(t.name, t.text, t.col);
      case 'op':
        if (t.op === '(') {
          const inner = expr(0);
          expectOp(')');
          return inner;
        }
        if (t.op === '-') {
          const n = peek();
          if (n.kind === 'maxint1') {
            pos++;
            return { k: 'const', value: INT64_MIN };
          }
          return call('-', [{ k: 'const', value: 0n }, expr(UNARY_PREC - 0.5)], t.col);
        }
        if (t.op === '+') return expr(UNARY_PREC - 0.5);
        if (t.op === '~') return call('#', [{ k: 'const', value: -1n }, expr(6)], t.col);
        throw new ExprError(`unexpected ${describe(t)}`, t.col);
    }
  }

  function caseExpr(col: number): Node {
    const args: Node[] = [];
    if (!isKw('when')) expected('WHEN');
    while (isKw('when')) {
      pos++;
      args.push(expr(0));
      expectKw('then');
      args.push(expr(0));
    }
    if (isKw('else')) {
      pos++;
      args.push(expr(0));
    } else args.push({ k: 'const', value: null });
    expectKw('end');
    return call('!case', args, col);
  }

  function func(name: string, written: string, col: number): Node {
    const arity = ARITY[name];
    if (!arity) throw new ExprError(`unknown function "${written}" (known: ${SUPPORTED_FUNCTIONS.join(', ')})`, col);
    if (!isOp('(')) expected(`"(" after ${written}`);
    pos++;
    const args: Node[] = [];
    if (!isOp(')')) {
      args.push(expr(0));
      while (isOp(',')) {
        pos++;
        args.push(expr(0));
      }
    }
    expectOp(')');
    const [min, max] = arity;
    if (args.length < min || args.length > max) {
      const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} or ${max}`;
      throw new ExprError(`${name}() takes ${want} argument${want === '1' ? '' : 's'}, not ${args.length}`, col);
    }
    if ((name.startsWith('hash') && args.length === 1) || (name === 'permute' && args.length === 2)) args.push({ k: 'var', name: 'default_seed', col });
    return call(name, args, col);
  }

  const result = expr(0);
  if (peek().kind !== 'end') throw new ExprError(`unexpected ${describe(peek())} after the expression`, peek().col);
  return result;
}

/** Every :variable an expression reads (hash() and permute() without a seed read :default_seed). */
function variables(n: Node, out: Set<string>): Set<string> {
  if (n.k === 'var') out.add(n.name);
  else if (n.k === 'call') for (const a of n.args) variables(a, out);
  return out;
}

/**
 * Compiles an expression. `lookup` gives a variable's index (creating the slot). Parse errors
 * are ExprErrors with the column of the offending token; so are errors that constant folding
 * meets (1 / 0).
 */
export function compileExpr(text: string, lookup: (name: string) => number): Compiled & { reads: Set<string> } {
  const tree = parse(text);
  return { ...compile(tree, lookup), reads: variables(tree, new Set()) };
}

const FOLD_CONTEXT: EvalContext = { vars: [], random: new PgbenchRandom(0), names: [], debug: () => undefined };

function compile(n: Node, lookup: (name: string) => number): Compiled {
  if (n.k === 'const') {
    const v = n.value;
    return { eval: () => v, constant: { value: v } };
  }
  if (n.k === 'var') {
    const i = lookup(n.name);
    const name = n.name;
    return {
      eval: (ctx) => {
        const v = ctx.vars[i];
        if (v === undefined) throw new ScriptRuntimeError(`undefined variable "${name}"`, 'SCRIPT_UNDEFINED_VARIABLE');
        return v;
      },
    };
  }
  const args = n.args.map((a) => compile(a, lookup));
  const c = build(n.fn, args);
  if (IMPURE.has(n.fn) || !args.every((a) => a.constant)) return c;
  try {
    const value = c.eval(FOLD_CONTEXT);
    return { eval: () => value, constant: { value } };
  } catch (e) {
    if (e instanceof ScriptRuntimeError) throw new ExprError(e.message, n.col);
    throw e;
  }
}

/** The closure for one function or operator over compiled arguments. */
function build(fn: string, args: Compiled[]): Compiled {
  const [a, b, c] = args.map((x) => x.eval) as [Eval, Eval, Eval];
  switch (fn) {
    case '!and':
      return {
        eval: (ctx) => {
          const x = resolve(a(ctx));
          if (x === null) return null;
          if (!toBool(x)) return false;
          const y = resolve(b(ctx));
          return y === null ? null : toBool(y);
        },
      };
    case '!or':
      return {
        eval: (ctx) => {
          const x = resolve(a(ctx));
          if (x === null) return null;
          if (toBool(x)) return true;
          const y = resolve(b(ctx));
          return y === null ? null : toBool(y);
        },
      };
    case '!case': {
      const evals = args.map((x) => x.eval);
      const last = evals.length - 1;
      return {
        eval: (ctx) => {
          for (let i = 0; i < last; i += 2) if (truth(evals[i]!(ctx))) return evals[i + 1]!(ctx);
          return evals[last]!(ctx);
        },
      };
    }
    case '!is':
      return { eval: (ctx) => isSame(a(ctx), b(ctx)) };
    case 'debug':
      return {
        eval: (ctx) => {
          const v = resolve(a(ctx));
          ctx.debug(v === null ? 'null' : typeof v === 'boolean' ? `boolean ${v}` : typeof v === 'bigint' ? `int ${v}` : `double ${formatDouble(v)}`);
          return v;
        },
      };
  }
  // Every other function is strict: a null argument makes the result null.
  if (fn === 'least' || fn === 'greatest') {
    const evals = args.map((x) => x.eval);
    const least = fn === 'least';
    return {
      eval: (ctx) => {
        const xs: NonNull[] = [];
        for (const e of evals) {
          const x = resolve(e(ctx));
          if (x === null) return null;
          xs.push(x);
        }
        return extremum(xs, least);
      },
    };
  }
  const f = strict(fn);
  switch (args.length) {
    case 0:
      return { eval: (ctx) => f(undefined!, undefined!, undefined!, ctx) };
    case 1:
      return {
        eval: (ctx) => {
          const x = resolve(a(ctx));
          return x === null ? null : f(x, undefined!, undefined!, ctx);
        },
      };
    case 2:
      return {
        eval: (ctx) => {
          const x = resolve(a(ctx));
          const y = resolve(b(ctx));
          return x === null || y === null ? null : f(x, y, undefined!, ctx);
        },
      };
    default:
      return {
        eval: (ctx) => {
          const x = resolve(a(ctx));
          const y = resolve(b(ctx));
          const z = resolve(c(ctx));
          return x === null || y === null || z === null ? null : f(x, y, z, ctx);
        },
      };
  }
}

function extremum(xs: NonNull[], least: boolean): Value {
  if (xs.some(isDouble)) {
    let m = toDouble(xs[0]!);
    for (let i = 1; i < xs.length; i++) {
      const d = toDouble(xs[i]!);
      m = least ? (d < m ? d : m) : d > m ? d : m;
    }
    return m;
  }
  let m = toInt(xs[0]!);
  for (let i = 1; i < xs.length; i++) {
    const d = toInt(xs[i]!);
    if (least ? d < m : d > m) m = d;
  }
  return m;
}

type NonNull = bigint | number | boolean;
type Resolved = NonNull | null;

/** A text variable read by an expression becomes a typed value. */
function resolve(v: Value): Resolved {
  return typeof v === 'string' ? parseText(v, v) : v;
}

function isSame(x: Value, y: Value): boolean {
  const p = resolve(x);
  const q = resolve(y);
  if (p === null || q === null) return p === q;
  if (typeof p !== typeof q) return false;
  // pgbench compares the raw union bytes (u.bval): for IS TRUE/FALSE only booleans are compared.
  return p === q;
}

const isDouble = (v: NonNull) => typeof v === 'number';

/** A strict function on non-null arguments. */
type Strict = (x: NonNull, y: NonNull, z: NonNull, ctx: EvalContext) => Value;

function strict(fn: string): Strict {
  switch (fn) {
    case '+':
      return (x, y) => (isDouble(x) || isDouble(y) ? toDouble(x) + toDouble(y) : int64(toInt(x) + toInt(y), 'add'));
    case '-':
      return (x, y) => (isDouble(x) || isDouble(y) ? toDouble(x) - toDouble(y) : int64(toInt(x) - toInt(y), 'sub'));
    case '*':
      return (x, y) => (isDouble(x) || isDouble(y) ? toDouble(x) * toDouble(y) : int64(toInt(x) * toInt(y), 'mul'));
    case '/':
      return (x, y) => {
        if (isDouble(x) || isDouble(y)) return toDouble(x) / toDouble(y);
        const l = toInt(x);
        const r = toInt(y);
        if (r === 0n) throw new ScriptRuntimeError('division by zero', 'SCRIPT_DIVISION_BY_ZERO');
        if (r === -1n) return int64(-l, 'div');
        return l / r; // BigInt division truncates toward zero, as C's
      };
    case 'mod':
      return (x, y) => {
        const l = toInt(x);
        const r = toInt(y);
        if (r === 0n) throw new ScriptRuntimeError('division by zero', 'SCRIPT_DIVISION_BY_ZERO');
        return r === -1n ? 0n : l % r;
      };
    case '=':
      return (x, y) => (isDouble(x) || isDouble(y) ? toDouble(x) === toDouble(y) : toInt(x) === toInt(y));
    case '<>':
      return (x, y) => (isDouble(x) || isDouble(y) ? toDouble(x) !== toDouble(y) : toInt(x) !== toInt(y));
    case '<':
      return (x, y) => (isDouble(x) || isDouble(y) ? toDouble(x) < toDouble(y) : toInt(x) < toInt(y));
    case '<=':
      return (x, y) => (isDouble(x) || isDouble(y) ? toDouble(x) <= toDouble(y) : toInt(x) <= toInt(y));
    case '&':
      return (x, y) => toInt(x) & toInt(y);
    case '|':
      return (x, y) => toInt(x) | toInt(y);
    case '#':
      return (x, y) => toInt(x) ^ toInt(y);
    case '<<':
      // C shifts an int64 by the count modulo 64 on x86 (undefined beyond 63; this is what pgbench does there)
      return (x, y) => BigInt.asIntN(64, toInt(x) << (BigInt.asUintN(64, toInt(y)) & 63n));
    case '>>':
      return (x, y) => toInt(x) >> (BigInt.asUintN(64, toInt(y)) & 63n);
    case '!not':
      return (x) => !toBool(x);
    case 'pi':
      return () => Math.PI;
    case 'abs':
      return (x) => {
        if (typeof x === 'bigint') return BigInt.asIntN(64, x < 0n ? -x : x); // C's -INT64_MIN wraps
        return Math.abs(toDouble(x));
      };
    case 'double':
      return (x) => toDouble(x);
    case 'sqrt':
      return (x) => Math.sqrt(toDouble(x));
    case 'ln':
      return (x) => Math.log(toDouble(x));
    case 'exp':
      return (x) => Math.exp(toDouble(x));
    case 'int':
      return (x) => toInt(x);
    case 'pow':
    case 'power':
      return (x, y) => Math.pow(toDouble(x), toDouble(y));
    case 'hash':
    case 'hash_murmur2':
      return (x, s) => hashMurmur2(toInt(x), toInt(s));
    case 'hash_fnv1a':
      return (x, s) => hashFnv1a(toInt(x), toInt(s));
    case 'permute':
      return (x, n, s) => {
        const size = toInt(n);
        if (size <= 0n) throw new ScriptRuntimeError('permute size parameter must be greater than zero', 'SCRIPT_RANDOM');
        return permute(toInt(x), size, toInt(s));
      };
    case 'random':
    case 'random_exponential':
    case 'random_gaussian':
    case 'random_zipfian':
      return randomFn(fn);
    default:
      throw new Error(`no implementation for ${fn}`);
  }
}

function randomFn(fn: string): Strict {
  return (x, y, z, ctx) => {
    const lb = toInt(x);
    const ub = toInt(y);
    if (lb > ub) throw new ScriptRuntimeError('empty range given to random', 'SCRIPT_RANDOM');
    if (ub - lb + 1n > INT64_MAX) throw new ScriptRuntimeError('random range is too large', 'SCRIPT_RANDOM');
    const random = ctx.random;
    if (fn === 'random') return random.bigint(lb, ub);
    const param = toDouble(z);
    const l = Number(lb);
    const u = Number(ub);
    if (fn === 'random_gaussian') {
      if (param < MIN_GAUSSIAN_PARAM) throw new ScriptRuntimeError(`gaussian parameter must be at least ${MIN_GAUSSIAN_PARAM.toFixed(6)} (not ${param.toFixed(6)})`, 'SCRIPT_RANDOM');
      return BigInt(random.gaussian(l, u, param));
    }
    if (fn === 'random_zipfian') {
      if (param < MIN_ZIPFIAN_PARAM || param > MAX_ZIPFIAN_PARAM) {
        throw new ScriptRuntimeError(`zipfian parameter must be in range [${MIN_ZIPFIAN_PARAM.toFixed(3)}, ${MAX_ZIPFIAN_PARAM.toFixed(0)}] (not ${param.toFixed(6)})`, 'SCRIPT_RANDOM');
      }
      return BigInt(random.zipfian(l, u, param));
    }
    if (param <= 0.0) throw new ScriptRuntimeError(`exponential parameter must be greater than zero (not ${param.toFixed(6)})`, 'SCRIPT_RANDOM');
    return BigInt(random.exponential(l, u, param));
  };
}

