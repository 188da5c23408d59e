import type { CsvRecord } from './csv.js';

/** The column types `import --create` chooses from, most specific first. */
export type InferredType = 'bigint' | 'numeric' | 'boolean' | 'date' | 'timestamptz' | 'text';

// Only forms Postgres reads the same whatever its DateStyle: year first.
const INTEGER = /^[+-]?\d{1,19}$/;
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?$/;
const LEADING_ZERO = /^[+-]?0\d/; // 007, 0385504209: identifiers whose zeros matter, so text
const BOOLEAN = /^(?:true|false|t|f|yes|no|y|n)$/i;
const DATE = /^(\d{4})([-/])(\d{2})\2(\d{2})$/;
const TIMESTAMP = /^(\d{4})([-/])(\d{2})\2(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;
const INT8_MAX = 9223372036854775807n;

function validDate(y: string, m: string, d: string): boolean {
  const year = Number(y);
  const month = Number(m);
  const day = Number(d);
  if (year < 1 || month < 1 || month > 12 || day < 1) return false;
  return day <= new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function isBigint(v: string): boolean {
  if (!INTEGER.test(v) || LEADING_ZERO.test(v)) return false;
  if (v.replace(/^[+-]/, '').length < 19) return true;
  const n = BigInt(v);
  return n <= INT8_MAX && n >= -INT8_MAX - 1n;
}

function isTimestamp(v: string): boolean {
  const m = TIMESTAMP.exec(v);
  if (!m || !validDate(m[1]!, m[3]!, m[4]!)) return false;
  return m[5] === undefined || (Number(m[5]) < 24 && Number(m[6]) < 60 && (m[7] === undefined || Number(m[7]) < 60));
}

const BIGINT = 1;
const NUMERIC = 2;
const BOOL = 4;
const DATEONLY = 8;
const TIMESTAMPTZ = 16;
const ALL = BIGINT | NUMERIC | BOOL | DATEONLY | TIMESTAMPTZ;

/** What one value could be, as a bit set of the types above. */
function fits(v: string): number {
  let f = 0;
  if (isBigint(v)) f |= BIGINT | NUMERIC;
  else if (DECIMAL.test(v) && !LEADING_ZERO.test(v)) f |= NUMERIC;
  if (BOOLEAN.test(v)) f |= BOOL;
  if (isTimestamp(v)) {
    f |= TIMESTAMPTZ;
    const d = DATE.exec(v);
    if (d) f |= DATEONLY;
  }
  return f;
}

/**
 * Narrows each column's type as records go by: a type survives while every non-NULL value fits
 * it. Excel ="…" values are text by intent. A column with no values at all is text.
 */
export class TypeGuesser {
  private readonly possible: number[];
  private readonly seen: boolean[];

  constructor(readonly width: number) {
    this.possible = Array.from({ length: width }, () => ALL);
    this.seen = Array.from({ length: width }, () => false);
  }

  add(r: CsvRecord): void {
    for (let i = 0; i < this.width; i++) {
      const v = r.values[i];
      if (v === null || v === undefined || this.possible[i] === 0) continue;
      this.seen[i] = true;
      this.possible[i]! &= r.excel.includes(i) ? 0 : fits(v);
    }
  }

  /** Whether column `i` could still be more than text (the transcoder reads values only for those). */
  wants(i: number): boolean {
    return this.possible[i] !== 0;
  }

  /** One non-NULL value of column `i`, as add() takes them from records. */
  value(i: number, v: string, excel: boolean): void {
    if (this.possible[i] === 0) return;
    this.seen[i] = true;
    this.possible[i]! &= excel ? 0 : fits(v);
  }

  types(): InferredType[] {
    return this.possible.map((p, i) => {
      if (!this.seen[i]) return 'text';
      if (p & BIGINT) return 'bigint';
      if (p & NUMERIC) return 'numeric';
      if (p & BOOL) return 'boolean';
      if (p & DATEONLY) return 'date';
      if (p & TIMESTAMPTZ) return 'timestamptz';
      return 'text';
    });
  }
}

/**
 * A column name for a header: lower case, runs of anything but letters, digits and _ become _
 * ("Date Read" → date_read), at most 63 bytes (Postgres's limit), unique; empty → column_N.
 */
export function columnNames(headers: string[]): string[] {
  const used = new Set<string>();
  return headers.map((h, i) => {
    let base = h.normalize('NFC').toLowerCase().replace(/[^\p{L}\p{N}_]+/gu, '_').replace(/^_+|_+$/g, '') || `column_${i + 1}`;
    base = fitBytes(base, 63);
    let name = base;
    for (let k = 2; used.has(name); k++) name = fitBytes(base, 63 - `_${k}`.length) + `_${k}`;
    used.add(name);
    return name;
  });
}

function fitBytes(s: string, max: number): string {
  let out = s;
  while (Buffer.byteLength(out) > max) out = [...out].slice(0, -1).join('');
  return out;
}
