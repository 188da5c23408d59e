import { Prng } from '../random/index.js';

/**
 * The generator pgbench uses (PostgreSQL's pg_prng: xoroshiro128**, seeded through splitmix64),
 * bit for bit, and the distributions pgbench draws from it (pgbench.c: getrand,
 * getExponentialRand, getGaussianRand, computeIterativeZipfian), so a script given the same
 * --random-seed draws the same numbers under either engine. The 64-bit state lives in four
 * 32-bit halves: a draw allocates nothing.
 */
export class ScriptRuntimeError extends Error {
  constructor(
    message: string,
    /** A short stable label for the summary's error table (pgbench prints these as client aborts). */
    readonly label = 'script error',
  ) {
    super(message);
  }
}

export const MIN_GAUSSIAN_PARAM = 2.0;
export const MIN_ZIPFIAN_PARAM = 1.001;
export const MAX_ZIPFIAN_PARAM = 1000.0;

const M64 = (1n << 64n) - 1n;
const TWO32 = 4294967296;

/** splitmix64, as pg_prng_seed uses it to fill the state. */
function splitmix64(state: { s: bigint }): bigint {
  state.s = (state.s + 0x9e3779b97f4a7c15n) & M64;
  let v = state.s;
  v = ((v ^ (v >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  v = ((v ^ (v >> 27n)) * 0x94d049bb133111ebn) & M64;
  return v ^ (v >> 31n);
}

export class PgbenchRandom {
  // s0 = a:b (high:low), s1 = c:d
  private a = 0;
  private b = 0;
  private c = 0;
  private d = 0;
  /** The last draw, high and low 32 bits (unsigned). */
  private hi = 0;
  private lo = 0;

  /** pg_prng_seed(seed): any integer, taken modulo 2^64. */
  constructor(seed: number | bigint) {
    this.seed(BigInt.asUintN(64, BigInt(seed)));
  }

  private seed(seed: bigint): void {
    const st = { s: seed };
    const s0 = splitmix64(st);
    const s1 = splitmix64(st);
    this.set(s0 === 0n && s1 === 0n ? 0x5851f42d4c957f2dn : s0, s0 === 0n && s1 === 0n ? 0x14057b7ef767814fn : s1);
  }

  private set(s0: bigint, s1: bigint): void {
    this.a = Number(s0 >> 32n);
    this.b = Number(s0 & 0xffffffffn);
    this.c = Number(s1 >> 32n);
    this.d = Number(s1 & 0xffffffffn);
  }

  /**
   * Client `clientId`'s generator in a pgbench run seeded with `seed`: pgbench seeds one base
   * sequence from --random-seed and gives each client, in order, a state seeded from its next draw.
   */
  static forClient(seed: number | bigint, clientId: number): PgbenchRandom {
    const base = new PgbenchRandom(seed);
    for (let i = 0; i < clientId; i++) base.next();
    const r = new PgbenchRandom(0);
    r.seed(base.uint64());
    return r;
  }

  /** :default_seed in a pgbench run of `clients` clients: the base sequence's draw after the clients'. */
  static defaultSeed(seed: number | bigint, clients: number): bigint {
    const base = new PgbenchRandom(seed);
    for (let i = 0; i < clients; i++) base.next();
    return BigInt.asIntN(64, base.uint64());
  }

  /** One xoroshiro128** step; the result is left in hi/lo. */
  private next(): void {
    const a = this.a;
    const b = this.b;
    // val = rotl(s0 * 5, 7) * 9
    const l5 = b * 5;
    const h5 = (Math.imul(a, 5) + Math.floor(l5 / TWO32)) >>> 0;
    const m5 = l5 >>> 0;
    const rh = ((h5 << 7) | (m5 >>> 25)) >>> 0;
    const rl = ((m5 << 7) | (h5 >>> 25)) >>> 0;
    const l9 = rl * 9;
    this.hi = (Math.imul(rh, 9) + Math.floor(l9 / TWO32)) >>> 0;
    this.lo = l9 >>> 0;
    // sx = s1 ^ s0; s0 = rotl(s0, 24) ^ sx ^ (sx << 16); s1 = rotl(sx, 37)
    const xh = (this.c ^ a) >>> 0;
    const xl = (this.d ^ b) >>> 0;
    this.a = (((a << 24) | (b >>> 8)) ^ xh ^ ((xh << 16) | (xl >>> 16))) >>> 0;
    this.b = (((b << 24) | (a >>> 8)) ^ xl ^ (xl << 16)) >>> 0;
    this.c = ((xl << 5) | (xh >>> 27)) >>> 0;
    this.d = ((xh << 5) | (xl >>> 27)) >>> 0;
  }

  /** pg_prng_uint64. */
  uint64(): bigint {
    this.next();
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  /** pg_prng_double: [0, 1) from the top 52 bits. */
  double(): number {
    this.next();
    return (this.hi * 1048576 + (this.lo >>> 12)) / 4503599627370496;
  }

  /** pg_prng_uint64_range(0, range) for range < 2^53, by bitmask rejection, as a number. */
  private below(range: number): number {
    if (range <= 0) return 0;
    // 63 - (position of the highest set bit)
    const shift = range >= TWO32 ? Math.clz32(Math.floor(range / TWO32)) : 32 + Math.clz32(range);
    let v: number;
    do {
      this.next();
      v = shift >= 32 ? this.hi >>> (shift - 32) : this.hi * 2 ** (32 - shift) + (this.lo >>> shift);
    } while (v > range);
    return v;
  }

  /** pg_prng_uint64_range(0, range) for any 64-bit range (permute uses it too). */
  belowBig(range: bigint): bigint {
    if (range <= 0n) return 0n;
    const shift = BigInt(64 - range.toString(2).length);
    let v: bigint;
    do v = this.uint64() >> shift;
    while (v > range);
    return v;
  }

  /** random(lb, ub) with numbers (the built-in workloads): uniform integer, both ends included. */
  int(lb: number, ub: number): number {
    if (lb > ub) throw new ScriptRuntimeError(`empty range given to random: ${lb} > ${ub}`, 'SCRIPT_RANDOM');
    return lb + this.below(ub - lb);
  }

  /** random(lb, ub) on 64-bit integers, as pgbench's getrand. */
  bigint(lb: bigint, ub: bigint): bigint {
    const range = ub - lb;
    if (range < 9007199254740992n) return lb + BigInt(this.below(Number(range)));
    return lb + this.belowBig(range);
  }

  /** random_exponential(lb, ub, parameter). */
  exponential(lb: number, ub: number, parameter: number): number {
    const cut = Math.exp(-parameter);
    const uniform = 1.0 - this.double();
    const rand = -Math.log(cut + (1.0 - cut) * uniform) / parameter;
    return lb + Math.trunc((ub - lb + 1) * rand);
  }

  /** random_gaussian(lb, ub, parameter): Box-Muller, redrawn until within ±parameter. */
  gaussian(lb: number, ub: number, parameter: number): number {
    let stdev: number;
    do {
      const u1 = 1.0 - this.double();
      const u2 = 1.0 - this.double();
      stdev = Math.sqrt(-2.0 * Math.log(u1)) * Math.sin(2.0 * Math.PI * u2);
    } while (stdev < -parameter || stdev >= parameter);
    const rand = (stdev + parameter) / (parameter * 2.0);
    return lb + Math.trunc((ub - lb + 1) * rand);
  }

  /** random_zipfian(lb, ub, s): the rejection method pgbench uses (s > 1). */
  zipfian(lb: number, ub: number, s: number): number {
    return zipfianDraw(this, lb, ub, s);
  }

}

/**
 * The built-in workloads' draws (books ids and rows, think times, arrivals): prodhome's one
 * generator (random/), so seeded runs and experiments repeat as they always have. Scripts draw
 * from PgbenchRandom instead.
 */
export class Random extends Prng {
  /** random(lb, ub): uniform integer, both ends included. */
  int(lb: number, ub: number): number {
    if (lb > ub) throw new ScriptRuntimeError(`empty range given to random: ${lb} > ${ub}`, 'SCRIPT_RANDOM');
    return lb + Math.floor((ub - lb + 1) * this.double());
  }

  /** random_exponential(lb, ub, parameter). */
  exponential(lb: number, ub: number, parameter: number): number {
    if (lb > ub) throw new ScriptRuntimeError(`empty range given to random_exponential: ${lb} > ${ub}`, 'SCRIPT_RANDOM');
    if (!(parameter > 0)) throw new ScriptRuntimeError(`exponential parameter must be greater than zero (got ${parameter})`);
    const cut = Math.exp(-parameter);
    const uniform = 1.0 - this.double();
    const rand = -Math.log(cut + (1.0 - cut) * uniform) / parameter;
    return lb + Math.floor((ub - lb + 1) * rand);
  }

  /** random_gaussian(lb, ub, parameter): Box-Muller, redrawn until within ±parameter. */
  gaussian(lb: number, ub: number, parameter: number): number {
    if (lb > ub) throw new ScriptRuntimeError(`empty range given to random_gaussian: ${lb} > ${ub}`, 'SCRIPT_RANDOM');
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
    if (lb > ub) throw new ScriptRuntimeError(`empty range given to random_zipfian: ${lb} > ${ub}`, 'SCRIPT_RANDOM');
    if (!(s >= MIN_ZIPFIAN_PARAM && s <= MAX_ZIPFIAN_PARAM)) {
      throw new ScriptRuntimeError(`zipfian parameter must be in range [${MIN_ZIPFIAN_PARAM}, ${MAX_ZIPFIAN_PARAM}] (not ${s})`);
    }
    return zipfianDraw(this, lb, ub, s);
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

/** pgbench's permute(val, size, seed): a pseudorandom bijection of [0, size). */
export function permute(val: bigint, size: bigint, seed: bigint): bigint {
  if (size < 2n) return 0n;
  const r = new PgbenchRandom(seed);
  const usize = BigInt.asUintN(64, size);
  let v = BigInt.asUintN(64, val) % usize;
  const masklen = BigInt(usize.toString(2).length - 1);
  const mask = (1n << masklen) - 1n;
  const rot = (x: bigint) => (((x << 1n) & mask) | (x >> (masklen - 1n))) & M64;
  for (let i = 0; i < 6; i++) {
    let m = (r.uint64() & mask) | 1n;
    let x = r.uint64() & mask;
    if (v <= mask) v = rot(((v * m) & M64 ^ x) & mask);
    m = (r.uint64() & mask) | 1n;
    x = r.uint64() & mask;
    let t = usize - 1n - v;
    if (t <= mask) {
      t = rot(((t * m) & M64 ^ x) & mask);
      v = usize - 1n - t;
    }
    v = (v + r.belowBig(usize - 1n)) % usize;
  }
  return BigInt.asIntN(64, v);
}

const FNV_PRIME = 0x100000001b3n;
const FNV_OFFSET_BASIS = 0xcbf29ce484222325n;
const MM2_MUL = 0xc6a4a7935bd1e995n;
const MM2_MUL_TIMES_8 = 0x35253c9ade8f4ca8n;

/** pgbench's hash_fnv1a(val, seed). */
export function hashFnv1a(val: bigint, seed: bigint): bigint {
  let result = (FNV_OFFSET_BASIS ^ BigInt.asUintN(64, seed)) & M64;
  let v = BigInt.asIntN(64, val);
  for (let i = 0; i < 8; i++) {
    const octet = v & 0xffn;
    v >>= 8n; // arithmetic, as on a signed int64
    result = ((result ^ octet) * FNV_PRIME) & M64;
  }
  return BigInt.asIntN(64, result);
}

/** pgbench's hash_murmur2(val, seed) (and hash()). */
export function hashMurmur2(val: bigint, seed: bigint): bigint {
  let result = (BigInt.asUintN(64, seed) ^ MM2_MUL_TIMES_8) & M64;
  let k = BigInt.asUintN(64, val);
  k = (k * MM2_MUL) & M64;
  k ^= k >> 47n;
  k = (k * MM2_MUL) & M64;
  result ^= k;
  result = (result * MM2_MUL) & M64;
  result ^= result >> 47n;
  result = (result * MM2_MUL) & M64;
  result ^= result >> 47n;
  return BigInt.asIntN(64, result);
}

/** random_zipfian's rejection method (pgbench's computeIterativeZipfian, s > 1), over either generator's doubles. */
function zipfianDraw(g: { double(): number }, lb: number, ub: number, s: number): number {
  const n = ub - lb + 1;
  if (n <= 1) return lb;
  const b = Math.pow(2.0, s - 1.0);
  for (;;) {
    const u = g.double();
    const v = g.double();
    const x = Math.floor(Math.pow(u, -1.0 / (s - 1.0)));
    const t = Math.pow(1.0 + 1.0 / x, s - 1.0);
    if ((v * x * (t - 1.0)) / (b - 1.0) <= t / b && x <= n) return lb - 1 + x;
  }
}
