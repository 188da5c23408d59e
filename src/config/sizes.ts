/**
 * Sizes as people write them in config: `256MiB`, `1GiB`, `512MB`, `64kB`. Like Postgres and
 * Docker, the decimal-looking units are powers of 1024 too, so `512MB` and `512MiB` agree.
 */
const UNITS: Record<string, number> = {
  b: 1,
  k: 1024, kb: 1024, kib: 1024,
  m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4,
};

const SIZE = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$/;

/** Bytes for a size string, or undefined when it is not one (a bare number has no unit: not a size). */
export function parseSize(text: string): number | undefined {
  const m = SIZE.exec(text);
  if (!m) return undefined;
  const unit = UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  return Math.round(Number(m[1]) * unit);
}

export function formatBytes(bytes: number): string {
  const steps: [number, string][] = [[1024 ** 4, 'TiB'], [1024 ** 3, 'GiB'], [1024 ** 2, 'MiB'], [1024, 'KiB']];
  for (const [factor, unit] of steps) {
    if (bytes >= factor) {
      const v = bytes / factor;
      return `${Number.isInteger(v) ? v : v.toFixed(1)}${unit}`;
    }
  }
  return `${bytes}B`;
}

/**
 * A Postgres memory setting (shared_buffers, work_mem) in bytes. Postgres accepts a bare number
 * in the setting's own unit (8kB pages for shared_buffers, kB for work_mem) or B/kB/MB/GB/TB.
 */
export function parsePgMemory(value: string | number, bareUnitBytes: number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value * bareUnitBytes : undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * bareUnitBytes;
  const m = /^\s*(\d+)\s*(B|kB|MB|GB|TB)\s*$/.exec(value);
  if (!m) return undefined;
  const unit = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }[m[2] as 'B'];
  return Number(m[1]) * unit;
}

/** Bytes per second in a network rate as people write them: `1mbit`, `512kbit` (decimal bits, as tc does) or a size per second (`100KiB`). */
export function parseRate(text: string): number | undefined {
  const bits = /^\s*(\d+(?:\.\d+)?)\s*(k|m|g)bit\s*$/i.exec(text);
  const bytes = bits ? (Number(bits[1]) * { k: 1e3, m: 1e6, g: 1e9 }[bits[2]!.toLowerCase() as 'k' | 'm' | 'g']) / 8 : parseSize(text);
  return bytes && bytes > 0 ? bytes : undefined;
}
