import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProdhomeError } from '../src/errors.js';
import {
  arrivalTimes, cumulative, gateOpenAt, Histogram, inverseCumulative, paceOf, parseSchedule, parseWeights, PgbenchLogTail, Random, type ArrivalShape,
} from '../src/workload/index.js';
import { inline, literal, statement } from '../src/workload/statement.js';

// The load generator's pure parts, no server: histogram, random draws, schedules, weights, literals, pgbench's logs.

function usageError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ProdhomeError);
    return (e as ProdhomeError).message;
  }
  throw new Error('expected an error');
}

describe('latency histogram', () => {
  it('gives percentiles within 0.5% of the exact ones, and exact mean, stddev and max', () => {
    const r = new Random(7);
    const values = Array.from({ length: 200_000 }, () => Math.exp(r.double() * 12)); // 1 µs … 160 ms, log-uniform
    const h = new Histogram();
    for (const v of values) h.record(v);
    const sorted = [...values].sort((a, b) => a - b);
    for (const p of [1, 10, 50, 90, 95, 99, 99.9]) {
      const exact = sorted[Math.ceil((p / 100) * sorted.length) - 1]!;
      expect(Math.abs(h.percentile(p) - exact)).toBeLessThanOrEqual(Math.max(0.5, exact * 0.005));
    }
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    expect(h.mean()).toBeCloseTo(mean, 6);
    expect(h.stddev()).toBeCloseTo(Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length), 3);
    expect(h.percentile(100)).toBe(sorted.at(-1));
  });

  it('merges as if every value had been recorded in one', () => {
    const a = new Histogram();
    const b = new Histogram();
    const both = new Histogram();
    for (let i = 1; i <= 10_000; i++) {
      (i % 3 ? a : b).record(i * 7.3);
      both.record(i * 7.3);
    }
    const merged = Histogram.from(a.toData());
    merged.add(b.toData());
    const { sum, sumSq, ...rest } = merged.toData();
    const { sum: bothSum, sumSq: bothSumSq, ...bothRest } = both.toData();
    expect(rest).toEqual(bothRest);
    expect(sum).toBeCloseTo(bothSum, 3);
    expect(sumSq / bothSumSq).toBeCloseTo(1, 12);
  });
});

describe('random draws (pgbench semantics)', () => {
  const r = new Random(42);
  const n = 100_000;
  it('random(lb, ub) covers both ends uniformly', () => {
    const counts = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const x = r.int(1, 10);
      counts.set(x, (counts.get(x) ?? 0) + 1);
    }
    expect([...counts.keys()].sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (const c of counts.values()) expect(Math.abs(c - n / 10)).toBeLessThan(600);
  });
  it('random_exponential, random_gaussian and random_zipfian stay in range and have their shape', () => {
    const exp = Array.from({ length: n }, () => r.exponential(1, 100, 5));
    const gauss = Array.from({ length: n }, () => r.gaussian(1, 100, 4));
    const zipf = Array.from({ length: n }, () => r.zipfian(1, 1000, 1.5));
    for (const xs of [exp, gauss]) expect(Math.min(...xs) >= 1 && Math.max(...xs) <= 100).toBe(true);
    expect(Math.min(...zipf) >= 1 && Math.max(...zipf) <= 1000).toBe(true);
    // Exponential with parameter 5: about 1 - e^-0.5 (39%) fall in the first 10% of the range.
    expect(exp.filter((x) => x <= 10).length / n).toBeCloseTo(1 - Math.exp(-0.5), 1);
    // Gaussian with parameter 4: mean in the middle, about 68% within ±1/8 of the range (±1 sd).
    expect(gauss.reduce((a, b) => a + b, 0) / n).toBeCloseTo(50.5, 0);
    expect(gauss.filter((x) => x > 38 && x <= 63).length / n).toBeGreaterThan(0.64);
    // Zipfian s=1.5: value 1 is the most frequent, about 2^1.5 times value 2.
    const ones = zipf.filter((x) => x === 1).length;
    const twos = zipf.filter((x) => x === 2).length;
    expect(ones / twos).toBeGreaterThan(2.5);
    expect(ones / twos).toBeLessThan(3.2);
  });
  it('Rayleigh pauses have the asked-for mean and median', () => {
    const xs = Array.from({ length: n }, () => r.rayleigh(1));
    expect(xs.reduce((a, b) => a + b, 0) / n).toBeCloseTo(1, 2);
    const median = (1 / Math.sqrt(Math.PI / 2)) * Math.sqrt(2 * Math.log(2));
    expect(xs.filter((x) => x <= median).length / n).toBeCloseTo(0.5, 2);
  });
  it('the same seed gives the same draws', () => {
    const a = new Random(5);
    const b = new Random(5);
    expect(Array.from({ length: 5 }, () => a.int(1, 1e9))).toEqual(Array.from({ length: 5 }, () => b.int(1, 1e9)));
  });
});

describe('schedules: parsing', () => {
  it.each([
    ['constant', { kind: 'constant' }],
    ['pulse:on=5s,off=15s', { kind: 'pulse', onMs: 5000, offMs: 15000 }],
    ['pulse', { kind: 'pulse', onMs: 5000, offMs: 15000 }],
    ['pulse:on=500ms,off=1m', { kind: 'pulse', onMs: 500, offMs: 60000 }],
    ['ramp:from=10,to=500,over=60s', { kind: 'ramp', from: 10, to: 500, overMs: 60000 }],
    ['ramp:to=100,over=2', { kind: 'ramp', from: 0, to: 100, overMs: 2000 }],
    ['rayleigh:mean=1ms', { kind: 'rayleigh', meanMs: 1 }],
    ['rayleigh:mean=250us', { kind: 'rayleigh', meanMs: 0.25 }],
  ])('%s', (text, spec) => {
    expect(parseSchedule(text)).toEqual(spec);
  });

  it.each([
    ['pluse:on=5s', 'unknown schedule "pluse" (expected constant, pulse, ramp, rayleigh)'],
    ['pulse:on=5s,of=15s', 'unknown setting "of" for pulse (it takes on, off)'],
    ['pulse:on=5x', 'on=5x is not a duration'],
    ['pulse:on=', '"on=" has no value'],
    ['pulse:on=0s', 'on= must be longer than 0'],
    ['ramp:from=10,to=500', 'ramp needs over='],
    ['ramp:from=ten,to=500,over=60s', 'from=ten is not a rate'],
    ['ramp:to=5,to=6,over=1s', 'to is given twice'],
    ['rayleigh:avg=1ms', 'unknown setting "avg" for rayleigh (it takes mean)'],
    ['constant:rate=5', 'unknown setting "rate" for constant (it takes none)'],
  ])('%s is refused, naming the wrong part', (text, message) => {
    const m = usageError(() => parseSchedule(text));
    expect(m).toContain(`--schedule ${text}: `);
    expect(m).toContain(message);
  });

  it('-R combines with constant and pulse, not with ramp or rayleigh', () => {
    expect(paceOf(parseSchedule('constant'))).toEqual({ kind: 'unthrottled' });
    expect(paceOf(parseSchedule('constant'), 50)).toEqual({ kind: 'arrivals', shape: { kind: 'constant', rate: 50 } });
    expect(paceOf(parseSchedule('pulse:on=1s,off=2s'))).toEqual({ kind: 'gate', onMs: 1000, offMs: 2000 });
    expect(paceOf(parseSchedule('pulse:on=1s,off=2s'), 9)).toEqual({ kind: 'arrivals', shape: { kind: 'pulse', rate: 9, onMs: 1000, offMs: 2000 } });
    expect(usageError(() => paceOf(parseSchedule('ramp:to=5,over=1s'), 9))).toContain('sets its own rate');
    expect(usageError(() => paceOf(parseSchedule('rayleigh'), 9))).toContain('cannot be combined with -R');
  });
});

describe('schedules: the rate envelope of the arrival generators', () => {
  /** Arrivals per 1-second window over `seconds`, and what each window should get. */
  function windows(shape: ArrivalShape, seconds: number, seed = 1) {
    const times = arrivalTimes(shape, seconds, new Random(seed));
    return Array.from({ length: seconds }, (_, k) => ({
      got: times.filter((t) => t >= k && t < k + 1).length,
      want: cumulative(shape, k + 1) - cumulative(shape, k),
    }));
  }
  const within = (w: { got: number; want: number }[]) => {
    // Poisson counts: within 4 standard deviations (plus a little for tiny counts).
    for (const { got, want } of w) expect(Math.abs(got - want)).toBeLessThanOrEqual(4 * Math.sqrt(want) + 2);
  };

  it('constant -R 500: 500 a second', () => {
    const w = windows({ kind: 'constant', rate: 500 }, 20);
    within(w);
    expect(w.every((x) => x.want === 500)).toBe(true);
  });

  it('pulse:on=2s,off=3s at -R 300: 300 a second while on, none while off', () => {
    const w = windows({ kind: 'pulse', rate: 300, onMs: 2000, offMs: 3000 }, 20);
    within(w);
    expect(w.map((x) => (x.want > 0 ? 'on' : x.got === 0 ? 'off' : 'LEAK'))).toEqual(Array.from({ length: 20 }, (_, k) => (k % 5 < 2 ? 'on' : 'off')));
  });

  it('ramp:from=10,to=500,over=10s: rising linearly, then holding at 500', () => {
    const w = windows({ kind: 'ramp', from: 10, to: 500, overMs: 10_000 }, 15);
    within(w);
    expect(w[0]!.want).toBeCloseTo(34.5, 6); // 10 + 49/2
    expect(w[9]!.want).toBeCloseTo(475.5, 6);
    expect(w.slice(10).every((x) => x.want === 500)).toBe(true);
  });

  it('inverseCumulative inverts cumulative', () => {
    const shapes: ArrivalShape[] = [
      { kind: 'constant', rate: 7 },
      { kind: 'pulse', rate: 100, onMs: 1500, offMs: 500 },
      { kind: 'ramp', from: 10, to: 500, overMs: 60_000 },
      { kind: 'ramp', from: 500, to: 10, overMs: 60_000 },
      { kind: 'ramp', from: 0, to: 50, overMs: 5000 },
    ];
    for (const s of shapes) {
      for (const t of [0.001, 0.7, 1.2, 3, 59.9, 61, 100]) {
        if (s.kind === 'pulse' && (t % 2) >= 1.5) continue; // off-phase: cumulative is flat there
        expect(inverseCumulative(s, cumulative(s, t))).toBeCloseTo(t, 6);
      }
    }
  });

  it('threads sharing a rate add up to it', () => {
    const shape: ArrivalShape = { kind: 'constant', rate: 400 };
    const per = [0, 1, 2, 3].map((i) => arrivalTimes(shape, 10, new Random(100 + i), 1 / 4).length);
    const total = per.reduce((a, b) => a + b, 0);
    expect(Math.abs(total - 4000)).toBeLessThan(4 * Math.sqrt(4000));
  });

  it('a gate opens at the next "on" phase', () => {
    const gate = { onMs: 1000, offMs: 3000 };
    expect([0, 999, 1000, 2500, 3999, 4000, 4500, 5000].map((t) => gateOpenAt(gate, t))).toEqual([0, 999, 4000, 4000, 4000, 4000, 4500, 8000]);
  });
});

describe('mixed --weights', () => {
  it('parses KIND=WEIGHT lists; left-out kinds weigh 0', () => {
    expect(parseWeights('insert=1,update=1,delete=1,select=5')).toEqual({ insert: 1, update: 1, delete: 1, select: 5 });
    expect(parseWeights('update=3')).toEqual({ insert: 0, update: 3, delete: 0, select: 0 });
  });
  it.each([
    ['insert=1,upsert=2', 'unknown kind "upsert"'],
    ['insert=x', '"insert=x" is not KIND=WEIGHT'],
    ['insert=0', 'every weight is 0'],
  ])('%s is refused', (text, message) => {
    expect(usageError(() => parseWeights(text))).toContain(message);
  });
});

describe('statements', () => {
  it('write values in as literals for the simple protocol, quoting strings', () => {
    const s = statement('INSERT INTO t VALUES ($1, $2, $3, $1)');
    expect(s.arity).toBe(3);
    expect(inline(s, [7, "O'Reilly", null])).toBe("INSERT INTO t VALUES (7, 'O''Reilly', NULL, 7)");
    expect(literal('a\\b')).toBe("E'a\\\\b'");
    expect(literal(0.1 + 0.2)).toBe('0.3');
  });
});

// pgbench's per-transaction logs, followed while it writes them: one file per thread.
describe('PgbenchLogTail', () => {
  const line = (second: number, us: number, latency: number | 'failed', lag?: number) => `0 1 ${latency} 0 ${second} ${us}${lag === undefined ? '' : ` ${lag}`}\n`;
  it('gives out a second once every log has moved past it, each transaction once, the rest at the end', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-tail-'));
    try {
      const a = path.join(dir, 'log.100');
      const b = path.join(dir, 'log.100.1');
      fs.writeFileSync(a, line(1000, 1, 500) + line(1000, 2, 1500) + line(1001, 3, 700));
      fs.writeFileSync(b, line(1000, 5, 'failed') + '0 2 90'); // ends mid-line: the rest comes later
      fs.writeFileSync(path.join(dir, 'other.txt'), line(999, 1, 1));
      const tail = new PgbenchLogTail(dir);
      expect(tail.poll()).toEqual([]); // b has not passed second 1000 yet
      fs.appendFileSync(b, '0 0 1001 9 250\n');
      const [first, ...none] = tail.poll();
      expect(none).toEqual([]);
      expect(first).toMatchObject({ second: 0, at: 1_001_000, transactions: 2, failed: 1, latencyMs: { avg: 1, max: 1.5 } });
      fs.appendFileSync(a, line(1000, 9, 100)); // late for a second already given out: left out
      fs.appendFileSync(b, line(1002, 1, 300));
      expect(tail.poll().map((s) => [s.second, s.transactions])).toEqual([]); // a has not passed 1001
      const rest = tail.poll(true);
      expect(rest.map((s) => [s.second, s.at, s.transactions])).toEqual([
        [1, 1_002_000, 2],
        [2, 1_003_000, 1],
      ]);
      expect(rest[0]!.latencyMs.max).toBe(0.9);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
