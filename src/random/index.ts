/**
 * The one seedable generator prodhome uses, for synthetic data (`seed books`) and for load
 * (pgbench's random functions, schedules): xoshiro128**, seeded through splitmix32. Unlike
 * Math.random the same seed gives the same sequence on every machine, so seeded rows and
 * `--random-seed` runs repeat exactly. Distributions live with their users (workload/random.ts
 * computes pgbench's); this file is only the uniform source.
 */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0 || 0x9e3779b9;
    const next = () => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
  }

  uint32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  double(): number {
    return ((this.uint32() >>> 5) * 67108864 + (this.uint32() >>> 6)) / 9007199254740992;
  }

  /** An integer in [0, n) from one 32-bit draw (n well below 2^32, so the bias is negligible). */
  below(n: number): number {
    return Math.floor((this.uint32() / 4294967296) * n);
  }

  /** One element of `xs`, uniformly. */
  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)]!;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
