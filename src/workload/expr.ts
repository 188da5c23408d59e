import { Random, ScriptRuntimeError } from './random.js';

/**
 * pgbench's \set expressions: integer and double constants, :variables, + - * / %, unary minus,
 * parentheses and the common functions (random and its exponential/gaussian/zipfian kin, abs,
 * int, double, greatest, least, mod, pow, sqrt, ln, exp, pi). Types are static, as in pgbench:
 * int op int is int (division truncates), anything with a double is double. Compiled once into
 * closures over a Float64Array of the client's variables.
 */
export type ExprType = 'int' | 'double';

export interface Compiled {
  type: ExprType;
  eval: (vars: Float64Array, random: Random) => number;
  /** Set when the value is known without running (constants, pure functions of constants). */
  constant?: number;
}

/** A variable as the compiler sees it. */
export interface VarInfo {
  index: number;
  type: ExprType;
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
  | { kind: 'num'; text: string; type: ExprType; col: number }
  | { kind: 'var'; name: string; col: number }
  | { kind: 'ident'; name: string; col: number }
  | { kind: 'op'; op: string; col: number }
  | { kind: 'end'; col: number };

const UNSUPPORTED_HINT = 'not supported by prodhome load (run this script with --engine pgbench)';

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
    const num = /^(\d+\.\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?|\d+e[+-]?\d+|\d+)/i.exec(rest);
    if (num) {
      out.push({ kind: 'num', text: num[0], type: /[.e]/i.test(num[0]) ? 'double' : 'int', col: i });
      i += num[0].length;
      continue;
    }
    const v = /^:([A-Za-z0-9_]+)/.exec(rest);
    if (v) {
      out.push({ kind: 'var', name: v[1]!, col: i });
      i += v[0].length;
      continue;
    }
    const id = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest);
    if (id) {
      out.push({ kind: 'ident', name: id[0].toLowerCase(), col: i });
      i += id[0].length;
      continue;
    }
    if ('+-*/%(),'.includes(c)) {
      out.push({ kind: 'op', op: c, col: i });
      i++;
      continue;
    }
    const op = /^(<=|>=|<>|!=|==|<<|>>|[<>=&|#~!])/.exec(rest);
    if (op) throw new ExprError(`operator "${op[0]}" is ${UNSUPPORTED_HINT}`, i);
    throw new ExprError(`unexpected character "${c}"`, i);
  }
  out.push({ kind: 'end', col: text.length });
  return out;
}

const toInt = (x: number) => {
  // pgbench rounds a double to the nearest integer (rint: halves to even).
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

function asInt(c: Compiled): Compiled {
  if (c.type === 'int') return c;
  const f = c.eval;
  return { type: 'int', eval: (v, r) => toInt(f(v, r)), constant: c.constant === undefined ? undefined : toInt(c.constant) };
}

function binary(op: string, a: Compiled, b: Compiled, col: number): Compiled {
  const fa = a.eval;
  const fb = b.eval;
  const int = a.type === 'int' && b.type === 'int';
  let f: Compiled['eval'];
  switch (op) {
    case '+':
      f = (v, r) => fa(v, r) + fb(v, r);
      break;
    case '-':
      f = (v, r) => fa(v, r) - fb(v, r);
      break;
    case '*':
      f = (v, r) => fa(v, r) * fb(v, r);
      break;
    case '/':
      f = int
        ? (v, r) => {
            const d = fb(v, r);
            if (d === 0) throw new ScriptRuntimeError('division by zero');
            return Math.trunc(fa(v, r) / d);
          }
        : (v, r) => {
            const d = fb(v, r);
            if (d === 0) throw new ScriptRuntimeError('division by zero');
            return fa(v, r) / d;
          };
      break;
    default: {
      // % works on integers (doubles are rounded first, as pgbench does); sign follows the dividend.
      const ia = asInt(a).eval;
      const ib = asInt(b).eval;
      return fold({
        type: 'int',
        eval: (v, r) => {
          const d = ib(v, r);
          if (d === 0) throw new ScriptRuntimeError('division by zero');
          return d === -1 ? 0 : ia(v, r) % d;
        },
      }, [a, b], col);
    }
  }
  return fold({ type: int ? 'int' : 'double', eval: f }, [a, b], col);
}

/** Evaluates a pure expression of constants now: a constant, or the error it would raise, at parse time. */
function fold(c: Compiled, args: Compiled[], col: number, pure = true): Compiled {
  if (!args.every((a) => a.constant !== undefined)) return c;
  let value: number;
  try {
    value = c.eval(new Float64Array(0), new Random(1));
  } catch (e) {
    if (e instanceof ScriptRuntimeError) throw new ExprError(e.message, col);
    throw e;
  }
  return pure ? { ...c, constant: value, eval: () => value } : c;
}

interface FunctionDef {
  args: [min: number, max: number];
  pure: boolean;
  build: (args: Compiled[]) => Compiled;
}

const math = (f: (x: number) => number): FunctionDef => ({
  args: [1, 1],
  pure: true,
  build: ([a]) => {
    const fa = a!.eval;
    return { type: 'double', eval: (v, r) => f(fa(v, r)) };
  },
});

const randomFn = (draw: (r: Random, lb: number, ub: number, p: number) => number, withParam: boolean): FunctionDef => ({
  args: withParam ? [3, 3] : [2, 2],
  pure: false,
  build: ([a, b, p]) => {
    const lb = asInt(a!).eval;
    const ub = asInt(b!).eval;
    const param = p?.eval ?? (() => 0);
    return { type: 'int', eval: (v, r) => draw(r, lb(v, r), ub(v, r), param(v, r)) };
  },
});

const extremum = (pick: (a: number, b: number) => number): FunctionDef => ({
  args: [1, Infinity],
  pure: true,
  build: (args) => {
    const fs = args.map((a) => a.eval);
    return {
      type: args.every((a) => a.type === 'int') ? 'int' : 'double',
      eval: (v, r) => {
        let m = fs[0]!(v, r);
        for (let i = 1; i < fs.length; i++) m = pick(m, fs[i]!(v, r));
        return m;
      },
    };
  },
});

const FUNCTIONS: Record<string, FunctionDef> = {
  random: randomFn((r, lb, ub) => r.int(lb, ub), false),
  random_exponential: randomFn((r, lb, ub, p) => r.exponential(lb, ub, p), true),
  random_gaussian: randomFn((r, lb, ub, p) => r.gaussian(lb, ub, p), true),
  random_zipfian: randomFn((r, lb, ub, p) => r.zipfian(lb, ub, p), true),
  abs: {
    args: [1, 1],
    pure: true,
    build: ([a]) => {
      const fa = a!.eval;
      return { type: a!.type, eval: (v, r) => Math.abs(fa(v, r)) };
    },
  },
  int: { args: [1, 1], pure: true, build: ([a]) => asInt(a!) },
  double: { args: [1, 1], pure: true, build: ([a]) => ({ type: 'double', eval: a!.eval }) },
  greatest: extremum(Math.max),
  least: extremum(Math.min),
  sqrt: math(Math.sqrt),
  ln: math(Math.log),
  exp: math(Math.exp),
  pi: { args: [0, 0], pure: true, build: () => ({ type: 'double', eval: () => Math.PI }) },
  pow: {
    args: [2, 2],
    pure: true,
    build: ([a, b]) => {
      const fa = a!.eval;
      const fb = b!.eval;
      return { type: 'double', eval: (v, r) => Math.pow(fa(v, r), fb(v, r)) };
    },
  },
  mod: { args: [2, 2], pure: true, build: ([a, b]) => binary('%', a!, b!, 0) },
};
FUNCTIONS.power = FUNCTIONS.pow!;

/** pgbench functions we know of but do not run; named in the error. */
const PGBENCH_ONLY = new Set(['hash', 'hash_fnv1a', 'hash_murmur2', 'permute', 'debug']);
const KEYWORDS = new Set(['case', 'when', 'then', 'else', 'end', 'and', 'or', 'not', 'is', 'true', 'false', 'null']);

export const SUPPORTED_FUNCTIONS = Object.keys(FUNCTIONS).sort();

/**
 * Compiles an expression. `lookup` resolves :variables (undefined: not defined yet). Errors are
 * ExprErrors with the column of the offending token.
 */
export function compileExpr(text: string, lookup: (name: string) => VarInfo | undefined): Compiled {
  const tokens = tokenize(text);
  let pos = 0;
  const peek = () => tokens[pos]!;
  const isOp = (op: string) => {
    const t = peek();
    return t.kind === 'op' && t.op === op;
  };
  const describe = (t: Token) =>
    t.kind === 'end' ? 'end of expression' : t.kind === 'num' ? `"${t.text}"` : t.kind === 'var' ? `":${t.name}"` : t.kind === 'ident' ? `"${t.name}"` : `"${t.op}"`;
  const expect = (op: string) => {
    if (!isOp(op)) throw new ExprError(`expected "${op}" but found ${describe(peek())}`, peek().col);
    pos++;
  };

  function expr(): Compiled {
    let left = term();
    while (isOp('+') || isOp('-')) {
      const t = tokens[pos++] as { op: string; col: number };
      left = binary(t.op, left, term(), t.col);
    }
    return left;
  }
  function term(): Compiled {
    let left = unary();
    while (isOp('*') || isOp('/') || isOp('%')) {
      const t = tokens[pos++] as { op: string; col: number };
      left = binary(t.op, left, unary(), t.col);
    }
    return left;
  }
  function unary(): Compiled {
    if (isOp('-')) {
      const col = peek().col;
      pos++;
      const a = unary();
      const fa = a.eval;
      return fold({ type: a.type, eval: (v, r) => -fa(v, r) }, [a], col);
    }
    if (isOp('+')) {
      pos++;
      return unary();
    }
    return primary();
  }
  function primary(): Compiled {
    const t = peek();
    pos++;
    switch (t.kind) {
      case 'num': {
        const value = Number(t.text);
        if (t.type === 'int' && !Number.isSafeInteger(value)) throw new ExprError(`integer constant ${t.text} is out of range`, t.col);
        return { type: t.type, eval: () => value, constant: value };
      }
      case 'var': {
        const info = lookup(t.name);
        if (!info) throw new ExprError(`undefined variable ":${t.name}" (set it with \\set before using it)`, t.col);
        const i = info.index;
        return { type: info.type, eval: (v) => v[i]! };
      }
      case 'ident':
        return call(t.name, t.col);
      case 'op':
        if (t.op === '(') {
          const inner = expr();
          expect(')');
          return inner;
        }
        throw new ExprError(`unexpected ${describe(t)}`, t.col);
      case 'end':
        throw new ExprError('expression ends too early', t.col);
    }
  }
  function call(name: string, col: number): Compiled {
    const def = FUNCTIONS[name];
    if (!def) {
      if (KEYWORDS.has(name)) throw new ExprError(`"${name.toUpperCase()}" expressions are ${UNSUPPORTED_HINT}`, col);
      if (PGBENCH_ONLY.has(name)) throw new ExprError(`function ${name}() is ${UNSUPPORTED_HINT}`, col);
      throw new ExprError(`unknown function "${name}" (known: ${SUPPORTED_FUNCTIONS.join(', ')})`, col);
    }
    if (!isOp('(')) throw new ExprError(`expected "(" after ${name}`, peek().col);
    pos++;
    const args: Compiled[] = [];
    if (!isOp(')')) {
      args.push(expr());
      while (isOp(',')) {
        pos++;
        args.push(expr());
      }
    }
    expect(')');
    const [min, max] = def.args;
    if (args.length < min || args.length > max) {
      const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
      throw new ExprError(`${name}() takes ${want} argument${want === '1' ? '' : 's'}, not ${args.length}`, col);
    }
    return fold(def.build(args), args, col, def.pure);
  }

  const result = expr();
  if (peek().kind !== 'end') throw new ExprError(`unexpected ${describe(peek())} after the expression`, peek().col);
  return result;
}

