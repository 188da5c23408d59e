import type { Point } from './point.js';

/**
 * InfluxDB line protocol: `measurement,tag=v field=1,other="s" 1700000000000`.
 *
 * Escaping follows the spec: measurement escapes `,` and space; tag keys, tag values and field
 * keys escape `,`, `=` and space; string field values are double-quoted with `"` and `\`
 * escaped. Tags are sorted by key (byte order, as InfluxDB sorts them, so it does less work).
 *
 * What cannot be written faithfully is rejected with an InvalidPointError rather than stored
 * wrong:
 * - a newline or carriage return anywhere: the spec has no escape for it and it would end the
 *   line (the sampler should fold multi-line text such as query strings before making a Point);
 * - a measurement, key or tag value ending in `\` (it would escape the separator after it;
 *   InfluxDB 1.x reads other backslashes back as they are, so those are written unchanged);
 * - a measurement starting with `#` (the line would be a comment), an empty measurement or key;
 * - the key `time` (InfluxDB 1.x refuses it), an integer outside int64, a non-finite time.
 * Skipped without error: fields that are null/undefined or a non-finite number (NaN, ±Infinity
 * are no value, e.g. a rate over zero seconds), tags with an empty value (InfluxDB treats them
 * as absent), and so a point left with no field at all.
 */

export type Precision = 'ns' | 'ms' | 's';
export const PRECISIONS: readonly Precision[] = ['ns', 'ms', 's'];

/** A point that no line-protocol reader would get back as it was: a bug in whoever made it. */
export class InvalidPointError extends Error {
  constructor(
    readonly point: Point,
    reason: string,
  ) {
    super(`cannot write point "${point.measurement}" as line protocol: ${reason}`);
    this.name = 'InvalidPointError';
  }
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const escapeMeasurement = (s: string) => s.replace(/[, ]/g, '\\$&');
const escapeKey = (s: string) => s.replace(/[,= ]/g, '\\$&');
const escapeString = (s: string) => s.replace(/["\\]/g, '\\$&');
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** One point as one line (no trailing newline), or undefined when it has no field to write. */
export function encodePoint(point: Point, precision: Precision = 'ms'): string | undefined {
  const bad = (reason: string): never => {
    throw new InvalidPointError(point, reason);
  };
  const checkName = (what: string, s: string) => {
    if (s === '') bad(`${what} is empty`);
    if (/[\r\n]/.test(s)) bad(`${what} ${JSON.stringify(s)} contains a newline`);
    if (s.endsWith('\\')) bad(`${what} ${JSON.stringify(s)} ends with a backslash`);
  };
  checkName('the measurement', point.measurement);
  if (point.measurement.startsWith('#')) bad('a measurement starting with "#" would make the line a comment');

  const fields: string[] = [];
  for (const [key, value] of Object.entries(point.fields)) {
    if (value === null || value === undefined) continue;
    if (typeof value === 'number' && !Number.isFinite(value)) continue;
    checkName('field key', key);
    if (key === 'time') bad('"time" cannot be a field key');
    fields.push(`${escapeKey(key)}=${encodeValue(value, key, bad)}`);
  }
  if (fields.length === 0) return undefined;

  let head = escapeMeasurement(point.measurement);
  for (const key of Object.keys(point.tags).sort(byteOrder)) {
    const value = point.tags[key] ?? '';
    if (value === '') continue;
    checkName('tag key', key);
    checkName(`tag ${key}`, value);
    if (key === 'time') bad('"time" cannot be a tag key');
    head += `,${escapeKey(key)}=${escapeKey(value)}`;
  }
  return `${head} ${fields.join(',')} ${timestamp(point, precision, bad)}`;
}

function encodeValue(value: number | bigint | string | boolean, key: string, bad: (reason: string) => never): string {
  switch (typeof value) {
    case 'number':
      return String(value); // always a float to InfluxDB: 1 and 1.5 are the same type
    case 'bigint':
      if (value < INT64_MIN || value > INT64_MAX) bad(`field ${key}: ${value} does not fit in a 64-bit integer`);
      return `${value}i`;
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      if (/[\r\n]/.test(value)) bad(`field ${key}: the string contains a newline`);
      return `"${escapeString(value)}"`;
  }
}

function timestamp(point: Point, precision: Precision, bad: (reason: string) => never): string {
  const ms = point.time;
  if (!Number.isFinite(ms)) bad(`time ${ms} is not a number of milliseconds`);
  const whole = Math.floor(ms);
  switch (precision) {
    case 's':
      return String(Math.floor(ms / 1000));
    case 'ms':
      return String(whole);
    case 'ns':
      // via bigint: ms * 1e6 is past 2^53, where a double would round the last digits
      return String(BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6)));
  }
}

/**
 * Many points as lines, each ending in "\n". An invalid point goes to `onInvalid` and is left
 * out, so one bad point does not lose a batch; without `onInvalid` it throws.
 */
export function encodePoints(points: readonly Point[], precision: Precision = 'ms', onInvalid?: (e: InvalidPointError) => void): string[] {
  const lines: string[] = [];
  for (const p of points) {
    try {
      const line = encodePoint(p, precision);
      if (line !== undefined) lines.push(`${line}\n`);
    } catch (e) {
      if (!(e instanceof InvalidPointError) || !onInvalid) throw e;
      onInvalid(e);
    }
  }
  return lines;
}
