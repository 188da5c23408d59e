import type { Point } from './point.js';

/**
 * The Prometheus text exposition format (version 0.0.4): for each metric family a `# HELP`
 * line, a `# TYPE` line, then all its samples together — a family split in two is an error to
 * Prometheus.
 *
 * Names are sanitised (anything outside [a-zA-Z0-9_:] becomes `_`, a leading digit gets a `_`),
 * label values escape `\`, `"` and newline, HELP text escapes `\` and newline. Values are
 * converted to base units as Prometheus wants them (milliseconds → `_seconds`, kilobytes →
 * `_bytes`) and counters end in `_total`, so `promtool check metrics` has nothing to say.
 * Labels are sorted by name, and a label with an empty value is left out (Prometheus treats
 * them as absent).
 */

export type MetricType = 'counter' | 'gauge' | 'untyped';

export interface Sample {
  labels: Record<string, string>;
  value: number | bigint;
  /** ms since the epoch; left out unless given (a /metrics page normally has none) */
  time?: number;
}

export interface Family {
  name: string;
  help: string;
  type: MetricType;
  /** The unit of the values as given: a base unit is added to the name, others are converted. */
  unit?: string;
  samples: Sample[];
}

/** Units converted to a base unit on the way out: [base unit, factor]. */
const CONVERSIONS: Record<string, readonly [string, number]> = {
  milliseconds: ['seconds', 1e-3],
  microseconds: ['seconds', 1e-6],
  nanoseconds: ['seconds', 1e-9],
  minutes: ['seconds', 60],
  hours: ['seconds', 3600],
  kilobytes: ['bytes', 1024], // as Postgres counts kB
  megabytes: ['bytes', 1024 ** 2],
  percent: ['ratio', 1e-2],
};
/** The short forms names use for converted units (latency_ms), dropped like the long ones. */
const UNIT_ABBREVIATIONS: Record<string, string> = { milliseconds: 'ms', microseconds: 'us', nanoseconds: 'ns', kilobytes: 'kb', megabytes: 'mb' };
/** Base units that become the last word of the name (before `_total`). */
const BASE_UNITS = new Set(['seconds', 'bytes', 'ratio', 'celsius', 'volts', 'amperes', 'joules', 'grams', 'meters']);

export function sanitizeMetricName(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return /^[0-9]/.test(s) || s === '' ? `_${s}` : s;
}

export function sanitizeLabelName(name: string): string {
  // `__` names are reserved for Prometheus itself
  const s = name.replace(/[^a-zA-Z0-9_]/g, '_').replace(/^__+/, '_');
  return /^[0-9]/.test(s) || s === '' ? `_${s}` : s;
}

const escapeLabelValue = (s: string) => s.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
const escapeHelp = (s: string) => s.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));

/** The exported name and value factor of a family: base unit appended, `_total` on counters. */
export function exportedName(family: Pick<Family, 'name' | 'type' | 'unit'>): { name: string; factor: number } {
  let name = sanitizeMetricName(family.name);
  const dropSuffix = (suffix: string) => {
    if (name.endsWith(suffix)) name = name.slice(0, -suffix.length);
  };
  if (family.type === 'counter') dropSuffix('_total'); // added back after the unit
  const conversion = family.unit ? CONVERSIONS[family.unit] : undefined;
  const unit = conversion?.[0] ?? family.unit;
  if (conversion) {
    // pg_blk_read_time_milliseconds and workload_latency_p95_ms both end in _seconds
    dropSuffix(`_${family.unit}`);
    const short = UNIT_ABBREVIATIONS[family.unit!];
    if (short) dropSuffix(`_${short}`);
  }
  if (unit && BASE_UNITS.has(unit) && !name.endsWith(`_${unit}`)) name += `_${unit}`;
  if (family.type === 'counter') name += '_total';
  return { name, factor: conversion?.[1] ?? 1 };
}

function formatValue(value: number | bigint, factor: number): string {
  if (typeof value === 'bigint') return factor === 1 ? String(value) : formatValue(Number(value), factor);
  const v = value * factor;
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return String(v);
}

function formatLabels(labels: Record<string, string>): string {
  const byName = new Map<string, string>();
  for (const [k, v] of Object.entries(labels)) if (v !== '') byName.set(sanitizeLabelName(k), v);
  if (byName.size === 0) return '';
  const parts = [...byName.keys()].sort().map((k) => `${k}="${escapeLabelValue(byName.get(k) ?? '')}"`);
  return `{${parts.join(',')}}`;
}

/** The exposition text for these families; families with the same exported name are merged. */
export function toPrometheusText(families: readonly Family[]): string {
  const merged = new Map<string, { family: Family; factor: number; lines: string[] }>();
  for (const f of families) {
    const { name, factor } = exportedName(f);
    const entry = merged.get(name) ?? { family: f, factor, lines: [] };
    merged.set(name, entry);
    for (const s of f.samples) {
      const time = s.time === undefined ? '' : ` ${Math.floor(s.time)}`;
      entry.lines.push(`${name}${formatLabels(s.labels)} ${formatValue(s.value, factor)}${time}\n`);
    }
  }
  let out = '';
  for (const [name, { family, lines }] of merged) {
    if (lines.length === 0) continue;
    out += `# HELP ${name} ${escapeHelp(family.help)}\n# TYPE ${name} ${family.type}\n${lines.join('')}`;
  }
  return out;
}

export interface FieldDescription {
  help: string;
  type: MetricType;
  unit?: string;
  /** The family's name, when not `<measurement>_<field>` (unit and `_total` are still added). */
  name?: string;
}

/**
 * Families from points: one per measurement and field (`<measurement>_<field>`), tags as labels.
 * Strings are skipped (Prometheus values are numbers), booleans are 1/0; of several points of
 * one series the latest wins. `describe` supplies help, type and unit (the metric catalog knows
 * them); without it a field is an untyped metric.
 */
export function pointsToFamilies(
  points: readonly Point[],
  describe: (measurement: string, field: string) => FieldDescription | undefined = () => undefined,
  { timestamps = false }: { timestamps?: boolean } = {},
): Family[] {
  const families = new Map<string, { family: Family; series: Map<string, Sample> }>();
  for (const p of points) {
    for (const [field, raw] of Object.entries(p.fields)) {
      const value = typeof raw === 'boolean' ? (raw ? 1 : 0) : raw;
      if (typeof value !== 'number' && typeof value !== 'bigint') continue;
      const key = `${p.measurement}\0${field}`;
      let entry = families.get(key);
      if (!entry) {
        const { name, help, type, unit } = describe(p.measurement, field) ?? { help: `${p.measurement} ${field}`, type: 'untyped' };
        entry = { family: { name: name ?? `${p.measurement}_${field}`, help, type, ...(unit ? { unit } : {}), samples: [] }, series: new Map() };
        families.set(key, entry);
      }
      const seriesKey = JSON.stringify(Object.entries(p.tags).sort(([a], [b]) => (a < b ? -1 : 1)));
      const previous = entry.series.get(seriesKey);
      if (previous && (previous.time ?? 0) > p.time) continue;
      entry.series.set(seriesKey, { labels: p.tags, value, time: p.time });
    }
  }
  return [...families.values()].map(({ family, series }) => ({
    ...family,
    samples: [...series.values()].map((s) => (timestamps ? s : { labels: s.labels, value: s.value })),
  }));
}
