/**
 * A statement as clients send it: SQL text with $1…$n for the extended protocol, and the same
 * text split around its parameters for the simple protocol, where values are written in as
 * literals (what pgbench -M simple does with :variables).
 */
export type Value = number | string | null;

export interface Statement {
  /** Unique in this thread: names the server-side prepared statement (-M prepared). */
  readonly id: number;
  /** SQL with $1…$n. */
  readonly text: string;
  /** The text around each parameter occurrence: parts.length = slots.length + 1. */
  readonly parts: readonly string[];
  /** For each occurrence, which value (0-based) goes there. */
  readonly slots: readonly number[];
  /** How many distinct values the statement takes. */
  readonly arity: number;
}

let nextId = 0;

/** A statement from SQL written with $1…$n (the built-in workloads' own SQL). */
export function statement(text: string): Statement {
  const parts: string[] = [];
  const slots: number[] = [];
  let last = 0;
  for (const m of text.matchAll(/\$(\d+)/g)) {
    parts.push(text.slice(last, m.index));
    slots.push(Number(m[1]) - 1);
    last = m.index + m[0].length;
  }
  parts.push(text.slice(last));
  return { id: nextId++, text, parts, slots, arity: slots.length ? Math.max(...slots) + 1 : 0 };
}

/** A statement from pieces and value slots (scripts: `:var` becomes the var's slot). */
export function statementFrom(parts: string[], slots: number[]): Statement {
  let text = parts[0]!;
  for (let i = 0; i < slots.length; i++) text += `$${slots[i]! + 1}${parts[i + 1]}`;
  return { id: nextId++, text, parts, slots, arity: slots.length ? Math.max(...slots) + 1 : 0 };
}

/** A number as pgbench prints one: integers exactly, doubles with 15 significant digits. */
export function formatNumber(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(15)));
}

/** Text of a value for the wire (extended protocol, text format); null stays null. */
export function valueText(v: Value): string | null {
  return v === null ? null : typeof v === 'number' ? formatNumber(v) : v;
}

/** A value as an SQL literal; E'' when it holds a backslash, so standard_conforming_strings does not matter. */
export function literal(v: Value): string {
  if (v === null) return 'NULL';
  if (typeof v === 'number') return formatNumber(v);
  const quoted = v.replace(/'/g, "''");
  return v.includes('\\') ? `E'${quoted.replace(/\\/g, '\\\\')}'` : `'${quoted}'`;
}

/** The statement with its values written in, for the simple protocol. */
export function inline(s: Statement, values: readonly Value[]): string {
  let out = s.parts[0]!;
  for (let i = 0; i < s.slots.length; i++) out += literal(values[s.slots[i]!] ?? null) + s.parts[i + 1]!;
  return out;
}
