import { ProdhomeError } from '../errors.js';

/**
 * The one duration grammar prodhome speaks — in prodhome.yaml, in the metric catalog, on the
 * command line and inside load schedules: a non-negative number with an optional unit, `us`,
 * `ms`, `s`, `m`, `h` or `d`; a bare number is seconds, as pgbench's options are.
 * Examples: 250ms, 1.5s, 30, 2m, 1h, 7d, 100us. (`DURATION` is exported for JSON Schema's pattern.)
 */
export const DURATION = /^(\d+(?:\.\d+)?|\.\d+)(us|ms|s|m|h|d)?$/;
const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export const DURATION_EXAMPLES = '500ms, 30s, 2m or 1h';

/** Milliseconds in `text`, or undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2] ?? 's']!;
}

/** Milliseconds in a command-line option's value; a USAGE error naming the option otherwise. */
export function durationOption(text: string, option: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new ProdhomeError('USAGE', `${option} ${text}: expected a duration such as ${DURATION_EXAMPLES}`);
  return ms;
}
