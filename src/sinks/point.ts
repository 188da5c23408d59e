/**
 * A Point is one sample of one measurement: what the sampler produces and every sink consumes.
 *
 * Field value types decide how a sink stores them, so they are chosen on purpose:
 * - `number` is a float (line protocol `1.5`, `1`), the common case for gauges and rates;
 * - `bigint` is an integer (line protocol `42i`), for exact counters up to int64;
 * - `string` and `boolean` as themselves (a Prometheus sink skips strings, writes booleans 0/1);
 * - `null`/`undefined` mean "no value this time" and are skipped, so a sampler can pass a SQL
 *   row's NULLs through without filtering them first.
 * One field should keep one type for its whole life: InfluxDB rejects a float where it stored an
 * integer before.
 */
export type FieldValue = number | bigint | string | boolean;

export interface Point {
  measurement: string;
  tags: Record<string, string>;
  fields: Record<string, FieldValue | null | undefined>;
  /** ms since the epoch */
  time: number;
}

/** An integer field from a JS number (for values that are counts, not measurements). */
export function int(value: number): bigint {
  if (!Number.isSafeInteger(value)) throw new RangeError(`int(${value}): not a safe integer; pass a bigint instead`);
  return BigInt(value);
}
