import { ScriptRuntimeError } from './random.js';

/**
 * A pgbench variable's value: bigint for pgbench's int (int64, exact), number for its double,
 * boolean, null, and string for a value that came in as text (-D, \gset, \aset) and is parsed
 * only when an expression reads it — its text is what SQL substitution uses, as in pgbench.
 */
export type Value = bigint | number | boolean | null | string;

export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;

export const typeName = (v: Value): string =>
  v === null ? 'null' : typeof v === 'bigint' ? 'int' : typeof v === 'number' ? 'double' : typeof v === 'boolean' ? 'boolean' : 'string';

/** A text value read by an expression, as pgbench's makeVariableValue does. */
export function parseText(s: string, name: string): Exclude<Value, string> {
  const low = s.toLowerCase();
  if (s.length === 0) throw new ScriptRuntimeError(`variable "${name}" is empty`, 'SCRIPT_TYPE');
  if (low === 'null') return null;
  // prefixes of true/yes/false/no are booleans (but "o" is not), as are on/off/of
  if ('true'.startsWith(low) || 'yes'.startsWith(low) || low === 'on') return true;
  if ('false'.startsWith(low) || 'no'.startsWith(low) || low === 'off' || low === 'of') return false;
  if (/^\s*[+-]?\d+$/.test(s)) {
    const v = BigInt(s.trim());
    if (v < INT64_MIN || v > INT64_MAX) throw new ScriptRuntimeError(`value "${s}" is out of range for type bigint`, 'SCRIPT_OUT_OF_RANGE');
    return v;
  }
  const d = strtod(s);
  if (d === undefined) throw new ScriptRuntimeError(`malformed variable "${name}" value: "${s}"`, 'SCRIPT_TYPE');
  return d;
}

/** C's strtod on a whole string (leading spaces allowed, nothing after); undefined when it is not a number. */
function strtod(s: string): number | undefined {
  const t = s.replace(/^\s+/, '');
  if (/^[+-]?(inf|infinity)$/i.test(t)) return t.startsWith('-') ? -Infinity : Infinity;
  if (/^[+-]?nan$/i.test(t)) return NaN;
  if (/^[+-]?0x[0-9a-f]+$/i.test(t)) return (t.startsWith('-') ? -1 : 1) * parseInt(t.replace(/^[+-]?0x/i, ''), 16);
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t)) return undefined;
  const d = Number(t);
  return Number.isFinite(d) ? d : undefined; // out of range: ERANGE in C
}

/** A value as pgbench writes it into SQL and shell commands (its getVariable). */
export function valueString(v: Value): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return formatDouble(v);
  if (v === null) return 'NULL';
  return v ? 'true' : 'false';
}

/** printf("%.15g"): what pgbench prints for a double. */
export function formatDouble(d: number): string {
  if (Number.isNaN(d)) return 'nan';
  if (!Number.isFinite(d)) return d < 0 ? '-inf' : 'inf';
  if (d === 0) return Object.is(d, -0) ? '-0' : '0';
  // toExponential gives the exponent %g decides by, after rounding to 15 digits
  const [mant, e] = d.toExponential(14).split('e') as [string, string];
  const x = Number(e);
  if (x < -4 || x >= 15) {
    const m = mant.includes('.') ? mant.replace(/0+$/, '').replace(/\.$/, '') : mant;
    return `${m}e${x < 0 ? '-' : '+'}${String(Math.abs(x)).padStart(2, '0')}`;
  }
  const fixed = d.toFixed(Math.max(0, 14 - x));
  return fixed.includes('.') ? fixed.replace(/0+$/, '').replace(/\.$/, '') : fixed;
}

/** pgbench's coerceToInt: doubles round half to even (rint) and must fit. */
export function toInt(v: Value, name = ''): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') {
    const r = rint(v);
    if (Number.isNaN(r) || r < -9223372036854775808 || r >= 9223372036854775808) {
      throw new ScriptRuntimeError(`double to int overflow for ${v.toFixed(6)}`, 'SCRIPT_OUT_OF_RANGE');
    }
    return BigInt(r);
  }
  if (typeof v === 'string') return toInt(parseText(v, name), name);
  throw new ScriptRuntimeError(`cannot coerce ${typeName(v)} to int`, 'SCRIPT_TYPE');
}

export function toDouble(v: Value, name = ''): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string') return toDouble(parseText(v, name), name);
  throw new ScriptRuntimeError(`cannot coerce ${typeName(v)} to double`, 'SCRIPT_TYPE');
}

export function toBool(v: Value): boolean {
  if (typeof v === 'boolean') return v;
  throw new ScriptRuntimeError(`cannot coerce ${typeName(v)} to boolean`, 'SCRIPT_TYPE');
}

/** pgbench's valueTruth (\if, CASE WHEN): null false, numbers true unless zero. */
export function truth(v: Value): boolean {
  if (v === null) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return v !== 0n;
  if (typeof v === 'number') return v !== 0;
  return truth(parseText(v, ''));
}

/** rint: round half to even. */
export function rint(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Checks an int64 result. */
export function int64(v: bigint, what: string): bigint {
  if (v < INT64_MIN || v > INT64_MAX) throw new ScriptRuntimeError(`bigint ${what} out of range`, 'SCRIPT_OUT_OF_RANGE');
  return v;
}
