/**
 * A small seedable generator (xoshiro128**, seeded through splitmix32) and the distributions
 * pgbench offers, computed as pgbench computes them (pgbench.c: getExponentialRand,
 * getGaussianRand, computeIterativeZipfian), so a script means the same thing under either engine.
 */
export class ScriptRuntimeError extends Error {}

export const MIN_GAUSSIAN_PARAM = 2.0;
export const MIN_ZIPFIAN_PARAM = 1.001;
export const MAX_ZIPFIAN_PARAM = 1000.0;

export class Random {
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

  /** random(lb, ub): uniform integer, both ends included. */
  int(lb: number, ub: number): number {
    if (lb > ub) throw new ScriptRuntimeError(`empty range given to random: ${lb} > ${ub}`);
    return lb + Math.floor((ub - lb + 1) * this.double());
  }

  /** random_exponential(lb, ub, parameter). */
  exponential(lb: number, ub: number, parameter: number): number {
    if (lb > ub) throw new ScriptRuntimeError(`empty range given to random_exponential: ${lb} > ${ub}`);
    if (!(parameter > 0)) throw new ScriptRuntimeError(`exponential parameter must be greater than zero (got ${parameter})`);
    const cut = Math.exp(-parameter);
    const uniform = 1.0 - this.double();
    const rand = -Math.log(cut + (1.0 - cut) * uniform) / parameter;
    return lb + Math.floor((ub - lb + 1) * rand);
  }

  /** random_gaussian(lb, ub, parameter): Box-Muller, redrawn until within ±parameter. */
  gaussian(lb: number, ub: number, parameter: number): number {
    if (lb > ub) throw new ScriptRuntimeError(`empty range given to random_gaussian: ${lb} > ${ub}`);
    if (!(parameter >= MIN_GAUSSIAN_PARAM)) throw new ScriptRuntimeError(`gaussian parameter must be at least ${MIN_GAUSSIAN_PARAM.toFixed(1)} (got ${parameter})`);
    let stdev: number;
    do {
      const rand1 = 1.0 - this.double(); // (0, 1], so the log is finite
      const rand2 = this.double();
      stdev = Math.sqrt(-2.0 * Math.log(rand1)) * Math.sin(2.0 * Math.PI * rand2);
    } while (stdev < -parameter || stdev >= parameter);
    const rand = (stdev + parameter) / (parameter * 2.0);
    return lb + Math.floor((ub - lb + 1) * rand);
  }

  /** random_zipfian(lb, ub, s): the rejection-inversion method pgbench uses for s > 1. */
  zipfian(lb: number, ub: number, s: number): number {
    if (lb > ub) throw new ScriptRuntimeError(`empty range given to random_zipfian: ${lb} > ${ub}`);
    if (!(s >= MIN_ZIPFIAN_PARAM && s <= MAX_ZIPFIAN_PARAM)) {
      throw new ScriptRuntimeError(`zipfian parameter must be in range [${MIN_ZIPFIAN_PARAM}, ${MAX_ZIPFIAN_PARAM}] (not ${s})`);
    }
    const n = ub - lb + 1;
    if (n <= 1) return lb;
    const b = Math.pow(2.0, s - 1.0);
    for (;;) {
      const u = this.double();
      const v = this.double();
      const x = Math.floor(Math.pow(u, -1.0 / (s - 1.0)));
      const t = Math.pow(1.0 + 1.0 / x, s - 1.0);
      if ((v * x * (t - 1.0)) / (b - 1.0) <= t / b && x <= n) return lb - 1 + x;
    }
  }

  /** A standard exponential draw (mean 1): Poisson inter-arrival gaps. */
  exp(): number {
    return -Math.log(1.0 - this.double());
  }

  /** A Rayleigh draw with the given mean: sigma·sqrt(-2 ln U), sigma = mean / sqrt(pi/2). */
  rayleigh(mean: number): number {
    return (mean / Math.sqrt(Math.PI / 2)) * Math.sqrt(-2.0 * Math.log(1.0 - this.double()));
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
