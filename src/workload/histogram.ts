/**
 * A log-linear latency histogram in microseconds, like HDR histogram with 2 significant digits:
 * values below 256 µs get exact 1 µs buckets, above that each power of two is split into 128
 * buckets, so a percentile is off by at most 1/256 (0.4 %) of the value. Count, sum, sum of
 * squares, min and max are kept exactly (mean and stddev are exact). Mergeable and cheap to
 * send between threads as its non-empty buckets.
 */
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS; // buckets per power of two above the linear range
const LINEAR = SUB * 2; // 0 … 255 µs: one bucket per µs

/** A histogram as plain data (what threads send each other). */
export interface HistogramData {
  /** [bucket index, count] for non-empty buckets. */
  buckets: [number, number][];
  count: number;
  sum: number;
  sumSq: number;
  min: number;
  max: number;
}

export function bucketOf(micros: number): number {
  const v = Math.max(0, Math.round(micros));
  if (v < LINEAR) return v;
  const msb = v < 2 ** 31 ? 31 - Math.clz32(v) : Math.floor(Math.log2(v));
  const shift = msb - SUB_BITS;
  return LINEAR + (shift - 1) * SUB + (Math.floor(v / 2 ** shift) - SUB);
}

/** The lowest value and width of a bucket. */
export function bucketRange(index: number): { low: number; width: number } {
  if (index < LINEAR) return { low: index, width: 1 };
  const shift = Math.floor((index - LINEAR) / SUB) + 1;
  return { low: ((index - LINEAR) % SUB + SUB) * 2 ** shift, width: 2 ** shift };
}

/** Buckets for every value a double can hold in µs up to 2^53 (a year is 2^45): a fixed, dense array. */
const BUCKETS = LINEAR + 53 * SUB;

export class Histogram {
  // Dense and typed: a plain array written at scattered indexes turns into a slow dictionary.
  private counts = new Float64Array(BUCKETS);
  count = 0;
  sum = 0;
  sumSq = 0;
  min = Infinity;
  max = 0;

  record(micros: number): void {
    const i = Math.min(bucketOf(micros), BUCKETS - 1);
    this.counts[i] = this.counts[i]! + 1;
    this.count++;
    this.sum += micros;
    this.sumSq += micros * micros;
    if (micros < this.min) this.min = micros;
    if (micros > this.max) this.max = micros;
  }

  add(other: HistogramData): void {
    for (const [index, n] of other.buckets) {
      const i = Math.min(index, BUCKETS - 1);
      this.counts[i] = this.counts[i]! + n;
    }
    this.count += other.count;
    this.sum += other.sum;
    this.sumSq += other.sumSq;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
  }

  /** The value at percentile p (0–100): the middle of its bucket, within [min, max]. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    if (p >= 100) return this.max;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        const { low, width } = bucketRange(i);
        return Math.min(this.max, Math.max(this.min, low + (width - 1) / 2));
      }
    }
    return this.max;
  }

  mean(): number {
    return this.count ? this.sum / this.count : 0;
  }

  /** Population standard deviation, as pgbench reports it. */
  stddev(): number {
    if (this.count === 0) return 0;
    const m = this.mean();
    return Math.sqrt(Math.max(0, this.sumSq / this.count - m * m));
  }

  toData(): HistogramData {
    const buckets: [number, number][] = [];
    const c = this.counts;
    for (let i = 0; i < c.length; i++) if (c[i]) buckets.push([i, c[i]!]);
    return { buckets, count: this.count, sum: this.sum, sumSq: this.sumSq, min: this.min, max: this.max };
  }

  static from(data: HistogramData): Histogram {
    const h = new Histogram();
    h.add(data);
    return h;
  }
}
