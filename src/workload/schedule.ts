import { parseDuration } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import type { Random } from './random.js';

/**
 * When transactions start. A schedule string (`--schedule`) plus pgbench's `-R` become a Pace:
 *   unthrottled  every client runs back to back (pgbench without -R);
 *   arrivals     a Poisson process whose rate may vary with time (constant -R, a ramp, pulses at
 *                -R): start times come from the schedule, so latency counts from them, like -R;
 *   gate         pulses without -R: clients run flat out while "on" and wait while "off";
 *   think        each client pauses a Rayleigh-distributed time after each transaction.
 * Everything here is pure and plain data, so threads rebuild it and tests check it without a server.
 */
export type ScheduleSpec =
  | { kind: 'constant' }
  | { kind: 'pulse'; onMs: number; offMs: number }
  | { kind: 'ramp'; from: number; to: number; overMs: number }
  | { kind: 'rayleigh'; meanMs: number };

export type Pace =
  | { kind: 'unthrottled' }
  | { kind: 'arrivals'; shape: ArrivalShape }
  | { kind: 'gate'; onMs: number; offMs: number }
  | { kind: 'think'; meanMs: number };

/** A time-varying arrival rate, in transactions per second. */
export type ArrivalShape =
  | { kind: 'constant'; rate: number }
  | { kind: 'pulse'; rate: number; onMs: number; offMs: number }
  | { kind: 'ramp'; from: number; to: number; overMs: number };

const SCHEDULES: Record<ScheduleSpec['kind'], { keys: string[]; example: string }> = {
  constant: { keys: [], example: 'constant' },
  pulse: { keys: ['on', 'off'], example: 'pulse:on=5s,off=15s' },
  ramp: { keys: ['from', 'to', 'over'], example: 'ramp:from=10,to=500,over=60s' },
  rayleigh: { keys: ['mean'], example: 'rayleigh:mean=1ms' },
};
const HINT = `Schedules: ${Object.values(SCHEDULES).map((s) => s.example).join(', ')}.`;

function bad(text: string, what: string): ProdhomeError {
  return new ProdhomeError('USAGE', `--schedule ${text}: ${what}`, { hint: HINT });
}

export function parseSchedule(text: string): ScheduleSpec {
  const [name = '', rest] = splitOnce(text.trim(), ':');
  const known = SCHEDULES[name as ScheduleSpec['kind']];
  if (!known) throw bad(text, `unknown schedule "${name}" (expected ${Object.keys(SCHEDULES).join(', ')})`);
  const values = new Map<string, string>();
  for (const part of rest === undefined || rest === '' ? [] : rest.split(',')) {
    const [key = '', value] = splitOnce(part.trim(), '=');
    if (!known.keys.includes(key)) {
      throw bad(text, `unknown setting "${key}" for ${name} (${known.keys.length ? `it takes ${known.keys.join(', ')}` : 'it takes none'})`);
    }
    if (value === undefined || value === '') throw bad(text, `"${part.trim()}" has no value (write ${key}=…)`);
    if (values.has(key)) throw bad(text, `${key} is given twice`);
    values.set(key, value);
  }
  const duration = (key: string, fallback?: number) => {
    const v = values.get(key);
    if (v === undefined) {
      if (fallback === undefined) throw bad(text, `${name} needs ${key}= (e.g. ${known.example})`);
      return fallback;
    }
    const ms = parseDuration(v);
    if (ms === undefined) throw bad(text, `${key}=${v} is not a duration (e.g. 500ms, 5s, 1m)`);
    return ms;
  };
  const rate = (key: string, fallback?: number) => {
    const v = values.get(key);
    if (v === undefined) {
      if (fallback === undefined) throw bad(text, `${name} needs ${key}= (e.g. ${known.example})`);
      return fallback;
    }
    if (!/^\d+(\.\d+)?$/.test(v)) throw bad(text, `${key}=${v} is not a rate in transactions per second (e.g. ${key}=100)`);
    return Number(v);
  };
  switch (name as ScheduleSpec['kind']) {
    case 'constant':
      return { kind: 'constant' };
    case 'pulse': {
      const onMs = duration('on', 5000);
      const offMs = duration('off', 15000);
      if (onMs <= 0) throw bad(text, 'on= must be longer than 0');
      return { kind: 'pulse', onMs, offMs };
    }
    case 'ramp': {
      const overMs = duration('over');
      if (overMs <= 0) throw bad(text, 'over= must be longer than 0');
      return { kind: 'ramp', from: rate('from', 0), to: rate('to'), overMs };
    }
    case 'rayleigh': {
      const meanMs = duration('mean', 1);
      return { kind: 'rayleigh', meanMs };
    }
  }
}

export function formatSchedule(s: ScheduleSpec): string {
  const d = (ms: number) => (ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000}s` : ms >= 1 ? `${ms}ms` : `${ms * 1000}us`);
  switch (s.kind) {
    case 'constant':
      return 'constant';
    case 'pulse':
      return `pulse:on=${d(s.onMs)},off=${d(s.offMs)}`;
    case 'ramp':
      return `ramp:from=${s.from},to=${s.to},over=${d(s.overMs)}`;
    case 'rayleigh':
      return `rayleigh:mean=${d(s.meanMs)}`;
  }
}

/** The pace a schedule and an optional -R rate (tx/s, all clients together) give. */
export function paceOf(s: ScheduleSpec, rate?: number): Pace {
  if (rate !== undefined && !(rate > 0)) throw new ProdhomeError('USAGE', `-R ${rate}: the rate must be a number of transactions per second above 0`);
  switch (s.kind) {
    case 'constant':
      return rate === undefined ? { kind: 'unthrottled' } : { kind: 'arrivals', shape: { kind: 'constant', rate } };
    case 'pulse':
      return rate === undefined ? { kind: 'gate', onMs: s.onMs, offMs: s.offMs } : { kind: 'arrivals', shape: { kind: 'pulse', rate, onMs: s.onMs, offMs: s.offMs } };
    case 'ramp':
      if (rate !== undefined) throw new ProdhomeError('USAGE', `--schedule ${formatSchedule(s)} sets its own rate (from= and to=, in tx/s); leave out -R`);
      return { kind: 'arrivals', shape: { kind: 'ramp', from: s.from, to: s.to, overMs: s.overMs } };
    case 'rayleigh':
      if (rate !== undefined) throw new ProdhomeError('USAGE', `--schedule ${formatSchedule(s)} paces each client by its pauses; it cannot be combined with -R`);
      return { kind: 'think', meanMs: s.meanMs };
  }
}

/** Expected arrivals from 0 to t seconds: the integral of the rate. */
export function cumulative(shape: ArrivalShape, t: number): number {
  switch (shape.kind) {
    case 'constant':
      return shape.rate * t;
    case 'pulse': {
      const on = shape.onMs / 1000;
      const period = on + shape.offMs / 1000;
      const k = Math.floor(t / period);
      return shape.rate * (k * on + Math.min(t - k * period, on));
    }
    case 'ramp': {
      const over = shape.overMs / 1000;
      const slope = (shape.to - shape.from) / over;
      if (t <= over) return shape.from * t + (slope * t * t) / 2;
      return ((shape.from + shape.to) / 2) * over + shape.to * (t - over);
    }
  }
}

/** The time (seconds) at which `cumulative` reaches x; Infinity if it never does. */
export function inverseCumulative(shape: ArrivalShape, x: number): number {
  switch (shape.kind) {
    case 'constant':
      return x / shape.rate;
    case 'pulse': {
      const on = shape.onMs / 1000;
      const period = on + shape.offMs / 1000;
      const inOn = x / shape.rate; // "on" seconds needed
      const k = Math.floor(inOn / on);
      return k * period + (inOn - k * on);
    }
    case 'ramp': {
      const over = shape.overMs / 1000;
      const atOver = ((shape.from + shape.to) / 2) * over;
      if (x <= atOver) {
        const slope = (shape.to - shape.from) / over;
        // The root of from·t + slope·t²/2 = x, in the form that stays exact as slope → 0.
        return (2 * x) / (shape.from + Math.sqrt(shape.from * shape.from + 2 * slope * x));
      }
      return shape.to > 0 ? over + (x - atOver) / shape.to : Infinity;
    }
  }
}

/**
 * Poisson arrivals for one thread that carries `share` of the total rate: each gap is a standard
 * exponential draw in "expected arrivals" units, mapped back to time (time-rescaling).
 */
export class Arrivals {
  private x = 0;
  constructor(
    private readonly shape: ArrivalShape,
    private readonly random: Random,
    private readonly share = 1,
  ) {}

  /** Seconds from the start to the next arrival. */
  next(): number {
    this.x += this.random.exp() / this.share;
    return inverseCumulative(this.shape, this.x);
  }
}

/** All arrival times (seconds) within [0, seconds): for tests and previews. */
export function arrivalTimes(shape: ArrivalShape, seconds: number, random: Random, share = 1): number[] {
  const a = new Arrivals(shape, random, share);
  const out: number[] = [];
  for (let t = a.next(); t < seconds; t = a.next()) out.push(t);
  return out;
}

/** For a gate: the earliest time (ms from the start) at or after t when transactions may start. */
export function gateOpenAt(pace: { onMs: number; offMs: number }, tMs: number): number {
  const period = pace.onMs + pace.offMs;
  const intoPeriod = tMs % period;
  return intoPeriod < pace.onMs ? tMs : tMs - intoPeriod + period;
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}
