import type { LabConfig } from '../config/index.js';
import { DURATION_EXAMPLES, didYouMean, parseDuration, parseRate, parseSize, parseYamlWithLines } from '../config/index.js';
import { ProdhomeError, messageOf } from '../errors.js';
import { FAULT_KINDS, type FaultArgs, type FaultKind } from '../faults/index.js';
import { checkLoad, workloads } from '../workload/index.js';
import type { Action, Comparator, Experiment, FaultSpec, LoadSpec, Probe, Step } from './types.js';

/**
 * An experiment file, read and checked whole before anything runs: every problem is listed with
 * file:line, and one ProdhomeError (exit 2) carries them all. Times are scaled here, once.
 *
 * `within` limits scale too, but never below MIN_WITHIN_MS: a limit bounds how long a check may
 * wait for a real server (a restart, a catch-up), it is not a behaviour the experiment studies.
 */
export const MIN_WITHIN_MS = 10_000;
const DEFAULT_WITHIN_MS = 60_000;

const TOP_KEYS = ['name', 'description', 'lab', 'steady_state', 'timeline'];
const STEP_KINDS = ['load', 'fault', 'wait', 'assert'];
const LOAD_KEYS = ['name', 'workload', 'node', 'clients', 'threads', 'rate', 'schedule', 'duration', 'weights', 'seed'];

export interface ParseOptions {
  /** --duration-scale: every time in the file is multiplied by it. */
  scale?: number;
  /** When given, node, subscription and table names are checked against this lab too. */
  config?: LabConfig;
}

class Problems {
  readonly list: string[] = [];
  constructor(readonly label: string) {}
  add(line: number, what: string): void {
    this.list.push(`${this.label}:${line}: ${what}`);
  }
}

export function parseExperiment(text: string, label: string, source: string, opts: ParseOptions = {}): Experiment {
  const scale = opts.scale ?? 1;
  if (!(scale > 0) || !Number.isFinite(scale)) throw new ProdhomeError('USAGE', `--duration-scale ${scale}: expected a number above 0, such as 0.1`);
  const { data, lineOf } = parseYamlWithLines(text, label);
  const p = new Problems(label);
  if (!isRecord(data)) {
    throw new ProdhomeError('EXPERIMENT_INVALID', `${label}:1: expected a mapping (name:, description:, timeline:, …)`, { hint: '`prodhome experiment show background-hum` prints a complete example.' });
  }
  unknownKeys(p, data, TOP_KEYS, [], lineOf, 'experiment');

  const name = typeof data.name === 'string' && /^[a-z0-9][a-z0-9_-]*$/.test(data.name) ? data.name : '';
  if (!name) p.add(lineOf(['name']), `name: expected a short lower-case name such as break-publisher${data.name === undefined ? ' (it is missing)' : ''}`);
  const description = typeof data.description === 'string' ? data.description.trim() : '';
  if (data.description !== undefined && typeof data.description !== 'string') p.add(lineOf(['description']), 'description: expected text');

  // lab: what the lab must have for this experiment to make sense.
  const lab = { nodes: [] as string[], subscriptions: [] as string[] };
  if (data.lab !== undefined) {
    if (!isRecord(data.lab)) p.add(lineOf(['lab']), 'lab: expected a mapping such as {nodes: [publisher, subscriber1]}');
    else {
      unknownKeys(p, data.lab, ['nodes', 'subscriptions'], ['lab'], lineOf, 'lab');
      for (const key of ['nodes', 'subscriptions'] as const) {
        const v = data.lab[key];
        if (v === undefined) continue;
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) p.add(lineOf(['lab', key]), `lab.${key}: expected a list of names`);
        else lab[key] = v;
      }
    }
  }

  const at = (where: PropertyKey[]) => lineOf(where);
  const durationAt = (text: unknown, where: PropertyKey[], what: string): number | undefined => {
    const ms = typeof text === 'number' ? text * 1000 : typeof text === 'string' ? parseDuration(text) : undefined;
    if (ms === undefined || !(ms >= 0)) {
      p.add(at(where), `${what}: "${String(text)}" is not a duration; write one such as ${DURATION_EXAMPLES} (never negative)`);
      return undefined;
    }
    return ms * scale;
  };

  const steadyState: Probe[] = [];
  if (data.steady_state !== undefined) {
    if (!Array.isArray(data.steady_state)) p.add(lineOf(['steady_state']), 'steady_state: expected a list of probes such as "- verify" or "- lag < 5s within 30s"');
    else {
      data.steady_state.forEach((probe, i) => {
        const parsed = parseProbe(probe, lineOf(['steady_state', i]), scale);
        if (typeof parsed === 'string') p.add(lineOf(['steady_state', i]), `steady_state[${i}]: ${parsed}`);
        else steadyState.push(parsed);
      });
    }
  }

  const timeline: Step[] = [];
  if (!Array.isArray(data.timeline) || data.timeline.length === 0) p.add(lineOf(['timeline']), 'timeline: expected a list of steps (load:, fault:, wait:, assert:, each with an optional at:)');
  else {
    let lastAt = 0;
    data.timeline.forEach((raw, i) => {
      const where = ['timeline', i];
      const line = lineOf(where);
      if (!isRecord(raw)) return p.add(line, `timeline[${i}]: expected a step such as "- at: 30s" + "fault: kill subscriber1"`);
      unknownKeys(p, raw, ['at', ...STEP_KINDS], where, lineOf, `timeline[${i}]`, `a step is one of ${STEP_KINDS.join(', ')}, with an optional at:`);
      const kinds = STEP_KINDS.filter((k) => raw[k] !== undefined);
      if (kinds.length !== 1) {
        const known = Object.keys(raw).filter((k) => ['at', ...STEP_KINDS].includes(k));
        if (kinds.length > 1) p.add(line, `timeline[${i}]: one step per item, this one has ${kinds.join(' and ')}; split it into two items`);
        else if (known.length === Object.keys(raw).length) p.add(line, `timeline[${i}]: no step; add one of ${STEP_KINDS.join(', ')}`);
        return;
      }
      let atMs: number | undefined;
      if (raw.at !== undefined) {
        atMs = durationAt(raw.at, [...where, 'at'], `timeline[${i}].at`);
        if (atMs !== undefined && atMs < lastAt) p.add(lineOf([...where, 'at']), `timeline[${i}].at: ${String(raw.at)} is earlier than a step above it; steps run in file order, so put it before them`);
        if (atMs !== undefined) lastAt = atMs;
      }
      const kind = kinds[0]!;
      const value = raw[kind];
      const vLine = lineOf([...where, kind]);
      const action = parseAction(kind, value, { p, line: vLine, where: [...where, kind], lineOf, scale, durationAt, index: i });
      if (!action) return;
      timeline.push({ ...action, ...(atMs !== undefined ? { atMs } : {}), line: vLine, text: action.kind === 'load' ? `load: ${describeLoad(action.load)}` : `${kind}: ${typeof value === 'string' ? value : JSON.stringify(value)}` } as Step);
    });
  }

  checkWriters(p, timeline);
  if (opts.config) checkAgainstLab(p, opts.config, lab, timeline, lineOf);

  if (p.list.length) {
    const head = p.list.length === 1 ? `experiment ${label} has a problem (nothing was started):` : `experiment ${label} has ${p.list.length} problems (nothing was started):`;
    throw new ProdhomeError('EXPERIMENT_INVALID', `${head}\n  ${p.list.join('\n  ')}`, {
      hint: 'Fix the lines named above; `prodhome experiment show background-hum` prints a complete example.',
    });
  }
  return { name, description, source, scale, lab, steadyState, timeline };
}

interface Ctx {
  p: Problems;
  line: number;
  where: PropertyKey[];
  lineOf: (path: readonly PropertyKey[], key?: boolean) => number;
  scale: number;
  durationAt: (text: unknown, where: PropertyKey[], what: string) => number | undefined;
  index: number;
}

function parseAction(kind: string, value: unknown, c: Ctx): Action | undefined {
  const label = `timeline[${c.index}].${kind}`;
  switch (kind) {
    case 'load': {
      const load = parseLoad(value, c, label);
      return load && { kind: 'load', load };
    }
    case 'fault': {
      const fault = typeof value === 'string' ? parseFault(value, c.scale) : 'expected text such as "kill subscriber1" or "clear"';
      if (typeof fault === 'string') return void c.p.add(c.line, `${label}: ${fault}`);
      return { kind: 'fault', fault };
    }
    case 'wait': {
      const text = typeof value === 'string' ? value.trim() : typeof value === 'number' ? `${value}s` : '';
      if (text === 'loads') return { kind: 'wait', wait: { kind: 'loads' } };
      const caught = /^caught-up(?:\s+within\s+(\S+))?$/.exec(text);
      if (caught) {
        const withinMs = caught[1] === undefined ? DEFAULT_WITHIN_MS : parseDuration(caught[1]);
        if (withinMs === undefined || withinMs <= 0) return void c.p.add(c.line, `${label}: within ${caught[1]}: expected a duration above zero such as ${DURATION_EXAMPLES}`);
        return { kind: 'wait', wait: { kind: 'caught-up', withinMs: scaledWithin(withinMs, c.scale) } };
      }
      const ms = parseDuration(text);
      if (ms === undefined) return void c.p.add(c.line, `${label}: "${String(value)}" is not a wait; write a duration (10s), caught-up [within 60s] or loads`);
      return { kind: 'wait', wait: { kind: 'time', ms: ms * c.scale } };
    }
    case 'assert': {
      const probe = parseProbe(value, c.line, c.scale);
      if (typeof probe === 'string') return void c.p.add(c.line, `${label}: ${probe}`);
      return { kind: 'assert', probe };
    }
  }
  return undefined;
}

function parseLoad(value: unknown, c: Ctx, label: string): LoadSpec | undefined {
  if (!isRecord(value)) return void c.p.add(c.line, `${label}: expected a mapping such as {workload: inserter, clients: 4, rate: 50, duration: 60s}`);
  const before = c.p.list.length;
  unknownKeys(c.p, value, LOAD_KEYS, c.where, c.lineOf, label);
  const workload = typeof value.workload === 'string' ? value.workload : '';
  if (!workloads[workload as keyof typeof workloads]) {
    const guess = didYouMean(workload, Object.keys(workloads));
    c.p.add(c.lineOf([...c.where, 'workload']), `${label}.workload: ${workload ? `unknown workload "${workload}"` : 'missing'}${guess ? ` (did you mean ${guess}?)` : ''}; expected one of ${Object.keys(workloads).join(', ')}`);
    return undefined;
  }
  const num = (key: string): number | undefined => {
    const v = value[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      c.p.add(c.lineOf([...c.where, key]), `${label}.${key}: expected a number above 0, got ${JSON.stringify(v)}`);
      return undefined;
    }
    return v;
  };
  const str = (key: string): string | undefined => {
    const v = value[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') return void c.p.add(c.lineOf([...c.where, key]), `${label}.${key}: expected text`);
    return v;
  };
  const durationMs = value.duration === undefined ? undefined : c.durationAt(value.duration, [...c.where, 'duration'], `${label}.duration`);
  const spec: LoadSpec = {
    name: str('name') ?? `${workload}#${c.index}`,
    workload,
    node: str('node'),
    clients: num('clients') ?? 1,
    threads: num('threads') ?? 1,
    rate: num('rate'),
    schedule: str('schedule'),
    durationMs,
    weights: str('weights'),
    seed: num('seed'),
  };
  if (c.p.list.length > before) return undefined;
  // The workload runner's own checks (schedule grammar, options a workload takes), at this line.
  try {
    checkLoad({ workload, clients: spec.clients, threads: spec.threads, rate: spec.rate, schedule: spec.schedule, seconds: durationMs === undefined ? undefined : Math.max(durationMs / 1000, 0.001), options: { weights: spec.weights }, seed: spec.seed });
  } catch (e) {
    c.p.add(c.line, `${label}: ${messageOf(e)}`);
    return undefined;
  }
  return spec;
}

/** `kill subscriber1`, `memory publisher 160MiB`, `connections publisher --hold 10 --for 30s`, `clear`. */
export function parseFault(text: string, scale = 1): FaultSpec | string {
  const words = text.trim().split(/\s+/);
  const kind = words.shift() ?? '';
  if (kind === 'clear') return words.length ? `"fault: clear" takes nothing more (it clears every fault this experiment started); got "${words.join(' ')}"` : { clear: true };
  if (!(FAULT_KINDS as readonly string[]).includes(kind)) {
    const guess = didYouMean(kind, [...FAULT_KINDS, 'clear']);
    return `unknown fault "${kind}"${guess ? ` (did you mean ${guess}?)` : ''}; expected one of ${[...FAULT_KINDS, 'clear'].join(', ')}`;
  }
  const positional: string[] = [];
  const options: Record<string, string> = {};
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === '--partition' || w === '--reset-connections') options[w.slice(2)] = 'true'; // flags of fault net
    else if (w.startsWith('--')) {
      const v = words[++i];
      if (v === undefined) return `${w} needs a value`;
      options[w.slice(2)] = v;
    } else positional.push(w);
  }
  const wants: Record<FaultKind, string[]> = {
    kill: ['NODE'], stop: ['NODE'], restart: ['NODE'], freeze: ['NODE'], slot: ['NODE'], 'idle-tx': ['NODE'], connections: ['NODE'],
    cpu: ['NODE', 'CPUS'], memory: ['NODE', 'SIZE'], lock: ['NODE', 'TABLE'], conflict: ['SUBSCRIPTION'], net: ['LINK'],
  };
  const takes: Record<FaultKind, string[]> = {
    connections: ['hold', 'for'], lock: ['for'], 'idle-tx': ['for'], net: ['for', 'latency', 'jitter', 'bandwidth', 'partition', 'reset-connections'],
  } as Record<FaultKind, string[]>;
  const want = wants[kind as FaultKind];
  if (positional.length !== want.length) return `fault ${kind} takes ${want.join(' ')}; got "${text.trim()}"`;
  const args: FaultArgs = { target: positional[0]! };
  for (const [k, v] of Object.entries(options)) {
    if (!(takes[kind as FaultKind] ?? []).includes(k)) return `fault ${kind} does not take --${k}${takes[kind as FaultKind] ? ` (it takes ${takes[kind as FaultKind]!.map((t) => `--${t}`).join(', ')})` : ''}`;
    if (k === 'for') {
      const ms = parseDuration(v);
      if (ms === undefined || ms <= 0) return `--for ${v}: expected a duration above zero such as ${DURATION_EXAMPLES}`;
      args.forMs = ms * scale;
    }
    if (k === 'latency' || k === 'jitter') {
      // A property of the link, not a span of the timeline: not scaled.
      const ms = parseDuration(v);
      if (ms === undefined || ms <= 0) return `--${k} ${v}: expected a duration above zero such as 200ms`;
      args.net = { ...args.net, [k === 'latency' ? 'latencyMs' : 'jitterMs']: ms };
    }
    if (k === 'bandwidth') {
      const bytes = parseRate(v);
      if (bytes === undefined) return `--bandwidth ${v}: expected a rate such as 1mbit, 512kbit or 100KiB`;
      args.net = { ...args.net, bytesPerSecond: bytes };
    }
    if (k === 'partition') args.net = { ...args.net, partition: true };
    if (k === 'reset-connections') args.net = { ...args.net, reset: true };
    if (k === 'hold') {
      const n = Number(v);
      if (!Number.isInteger(n) || n <= 0) return `--hold ${v}: expected a whole number above 0`;
      args.hold = n;
    }
  }
  if (kind === 'cpu') {
    const n = Number(positional[1]);
    if (!Number.isFinite(n) || n <= 0) return `"${positional[1]}" is not a number of CPUs above 0 (such as 0.1)`;
    args.cpus = n;
  }
  if (kind === 'memory') {
    const bytes = parseSize(positional[1]!);
    if (bytes === undefined) return `"${positional[1]}" is not a size; write it like 160MiB`;
    args.memoryBytes = bytes;
  }
  if (kind === 'lock') args.table = positional[1];
  return { clear: false, kind: kind as FaultKind, args };
}

const COMPARATORS: Comparator[] = ['<=', '>=', '==', '<', '>'];

/** `verify`, `caught-up`, `lag < 5s`, `errors{sqlstate=53300} > 0`, each with an optional `within D`. */
export function parseProbe(value: unknown, line: number, scale = 1): Probe | string {
  if (typeof value !== 'string') return 'expected text such as "verify", "lag < 5s within 30s" or "errors{sqlstate=53300} > 0"';
  const text = value.trim();
  let body = text;
  let withinMs: number | undefined;
  const w = /^(.*?)\s+within\s+(\S+)$/.exec(text);
  if (w) {
    const ms = parseDuration(w[2]!);
    if (ms === undefined || ms <= 0) return `within ${w[2]}: expected a duration above zero such as ${DURATION_EXAMPLES}`;
    withinMs = scaledWithin(ms, scale);
    body = w[1]!.trim();
  }
  if (body === 'verify') return { kind: 'verify', text, line, withinMs: withinMs ?? scaledWithin(DEFAULT_WITHIN_MS, scale) };
  if (body === 'stalled') return { kind: 'stalled', text, line, withinMs: withinMs ?? 0 };
  if (body === 'caught-up') return { kind: 'caught-up', text, line, withinMs: withinMs ?? scaledWithin(DEFAULT_WITHIN_MS, scale) };
  const m = /^(lag|errors)(\{([^}]*)\})?\s*(<=|>=|==|<|>)\s*(\S+)$/.exec(body);
  if (!m) {
    const word = /^[a-z_-]+/i.exec(body)?.[0] ?? body;
    const guess = didYouMean(word, ['verify', 'caught-up', 'stalled', 'lag', 'errors']);
    return `"${text}" is not a check${guess && guess !== word ? ` (did you mean ${guess}?)` : ''}; write verify, caught-up, stalled, lag < 5s or errors{sqlstate=53300} > 0 (each may end in "within 30s")`;
  }
  const op = m[4] as Comparator;
  if (!COMPARATORS.includes(op)) return `unknown comparison ${op}`;
  if (m[1] === 'lag') {
    if (m[2]) return `lag takes no {…} filter; write lag < 5s`;
    const ms = parseDuration(m[5]!);
    if (ms === undefined) return `lag ${op} ${m[5]}: expected a duration such as 5s`;
    return { kind: 'lag', text, line, op, seconds: ms / 1000, withinMs: withinMs ?? 0 };
  }
  const count = Number(m[5]);
  if (!Number.isInteger(count) || count < 0) return `errors ${op} ${m[5]}: expected a whole number`;
  let sqlstate: string | undefined;
  if (m[3] !== undefined) {
    const f = /^\s*sqlstate\s*=\s*"?([0-9A-Z]{5})"?\s*$/.exec(m[3]);
    if (!f) return `errors{${m[3]}}: the one filter is sqlstate=CODE, a five-character SQLSTATE such as 53300`;
    sqlstate = f[1];
  }
  return { kind: 'errors', text, line, op, count, ...(sqlstate ? { sqlstate } : {}), withinMs: withinMs ?? 0 };
}

/** `hum: inserter, 4 clients, 50 tx/s, pulse:on=2s,off=8s, 60 s` (times as scaled). */
function describeLoad(l: LoadSpec): string {
  const parts = [l.workload, `${l.clients} client${l.clients === 1 ? '' : 's'}`, l.rate ? `${l.rate} tx/s` : '', l.schedule ?? '', l.node ? `on ${l.node}` : '', l.durationMs !== undefined ? `${Number((l.durationMs / 1000).toFixed(1))} s` : 'until the end'];
  return `${l.name}: ${parts.filter(Boolean).join(', ')}`;
}

function scaledWithin(ms: number, scale: number): number {
  return Math.max(ms * scale, Math.min(ms, MIN_WITHIN_MS));
}

/**
 * The books writers (inserter, mixed) each take ids after max(id) as it was when they started:
 * two at once on one node insert the same ids and fail each other's transactions (23505).
 */
const WRITERS = ['inserter', 'mixed'];
function checkWriters(p: Problems, timeline: Step[]): void {
  const open = new Map<string, Step>();
  for (const s of timeline) {
    if (s.kind === 'wait' && s.wait.kind === 'loads') open.clear();
    if (s.kind !== 'load' || !WRITERS.includes(s.load.workload)) continue;
    const node = s.load.node ?? 'the default node (the first publisher)';
    const other = open.get(node);
    if (other) p.add(s.line, `load ${s.load.name}: a second books writer on ${node} while ${other.kind === 'load' ? other.load.name : ''} (line ${other.line}) runs; both take ids after max(id) and would collide (23505). Make one of them read, or put "wait: loads" between them`);
    else open.set(node, s);
  }
}

function checkAgainstLab(p: Problems, config: LabConfig, lab: Experiment['lab'], timeline: Step[], lineOf: Ctx['lineOf']): void {
  const nodes = config.nodes.map((n) => n.name);
  const subs = config.replication.subscriptions.map((s) => s.name);
  const missing = (name: string, known: string[]) => `${name}${didYouMean(name, known) ? ` (did you mean ${didYouMean(name, known)}?)` : ''}`;
  for (const n of lab.nodes) if (!nodes.includes(n)) p.add(lineOf(['lab', 'nodes']), `lab.nodes: this experiment needs a node ${missing(n, nodes)}; lab "${config.lab}" has ${nodes.join(', ')}`);
  for (const s of lab.subscriptions) if (!subs.includes(s)) p.add(lineOf(['lab', 'subscriptions']), `lab.subscriptions: this experiment needs a subscription ${missing(s, subs)}; lab "${config.lab}" has ${subs.join(', ') || 'none'}`);
  const needsReplication = timeline.some((s) => s.kind === 'assert' && ['verify', 'caught-up', 'stalled', 'lag'].includes(s.probe.kind)) || timeline.some((s) => s.kind === 'wait' && s.wait.kind === 'caught-up');
  if (needsReplication && !subs.length) p.add(1, `this experiment checks replication, and lab "${config.lab}" has no subscriptions`);
  for (const s of timeline) {
    if (s.kind === 'load' && s.load.node && !nodes.includes(s.load.node)) p.add(s.line, `load.node: no node ${missing(s.load.node, nodes)} in lab "${config.lab}" (nodes: ${nodes.join(', ')})`);
    if (s.kind === 'load' && !s.load.node && !config.nodes.some((n) => n.role === 'publisher')) p.add(s.line, `load: lab "${config.lab}" has no publisher; say which node to load with node:`);
    if (s.kind === 'fault' && !s.fault.clear) {
      const target = s.fault.args.target;
      if (s.fault.kind === 'conflict' ? !subs.includes(target) : !nodes.includes(target)) {
        const known = s.fault.kind === 'conflict' ? subs : nodes;
        p.add(s.line, `fault ${s.fault.kind}: no ${s.fault.kind === 'conflict' ? 'subscription' : 'node'} ${missing(target, known)} in lab "${config.lab}" (${known.join(', ') || 'none'})`);
      }
    }
  }
}

function unknownKeys(p: Problems, obj: Record<string, unknown>, known: string[], where: PropertyKey[], lineOf: Ctx['lineOf'], label: string, extra?: string): void {
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue;
    const guess = didYouMean(key, known);
    p.add(lineOf([...where, key], true), `${label}: unknown key "${key}"${guess ? ` (did you mean ${guess}?)` : ''}${extra ? `; ${extra}` : `; expected ${known.join(', ')}`}`);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
