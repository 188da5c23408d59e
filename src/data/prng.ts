/**
 * mulberry32: a tiny, fast 32-bit PRNG. Good enough for synthetic data and, unlike Math.random,
 * seedable — the same seed gives the same sequence on every machine, so seeded rows are
 * byte-identical from run to run.
 */
export type Rng = () => number;

/** A generator of uint32 values from `seed` (any integer; only its low 32 bits matter). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** An integer in [0, n) from one draw (n well below 2^32, so the bias is negligible). */
export function below(rng: Rng, n: number): number {
  return Math.floor((rng() / 4294967296) * n);
}

/** One element of `xs`, uniformly. */
export function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[below(rng, xs.length)]!;
}
