import { Prng } from '../random/index.js';

/**
 * The distributions pgbench offers, drawn from prodhome's one generator (random/) and computed
 * as pgbench computes them (pgbench.c: getExponentialRand, getGaussianRand,
 * computeIterativeZipfian), so a script means the same thing under either engine.
 */
export class ScriptRuntimeError extends Error {}

export const MIN_GAUSSIAN_PARAM = 2.0;
export const MIN_ZIPFIAN_PARAM = 1.001;
export const MAX_ZIPFIAN_PARAM = 1000.0;

export class Random extends Prng {
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
