import type { FaultArgs, FaultKind } from '../faults/index.js';

/**
 * An experiment as the file states it, every time already in milliseconds and already scaled by
 * `--duration-scale` (thresholds such as `lag < 5s` are values, not times, and stay as written).
 * Each step keeps its file line, for messages, the journal and the report.
 */
export interface Experiment {
  name: string;
  description: string;
  /** Where it came from: a file path, or `builtin:NAME`. */
  source: string;
  scale: number;
  lab: { nodes: string[]; subscriptions: string[] };
  steadyState: Probe[];
  timeline: Step[];
}

export type Comparator = '<' | '<=' | '>' | '>=' | '==';

/** A check: `verify`, `caught-up`, `lag < 5s`, `errors{sqlstate=53300} > 0`, each optionally `within D`. */
export type Probe =
  | { kind: 'verify'; text: string; line: number; withinMs: number }
  | { kind: 'caught-up'; text: string; line: number; withinMs: number }
  /** A subscription reports an apply conflict (it is stalled). */
  | { kind: 'stalled'; text: string; line: number; withinMs: number }
  | { kind: 'lag'; text: string; line: number; op: Comparator; seconds: number; withinMs: number }
  | { kind: 'errors'; text: string; line: number; op: Comparator; count: number; sqlstate?: string; withinMs: number };

export interface LoadSpec {
  /** How the journal names it (default: the workload's name and the step's index). */
  name: string;
  workload: string;
  node?: string;
  clients: number;
  threads: number;
  rate?: number;
  schedule?: string;
  /** Undefined: until the experiment ends. */
  durationMs?: number;
  weights?: string;
  seed?: number;
}

export type FaultSpec = { clear: true } | { clear: false; kind: FaultKind; args: FaultArgs };

export type Action =
  | { kind: 'load'; load: LoadSpec }
  | { kind: 'fault'; fault: FaultSpec }
  | { kind: 'wait'; wait: { kind: 'time'; ms: number } | { kind: 'caught-up'; withinMs: number } | { kind: 'loads' } }
  | { kind: 'assert'; probe: Probe };

export type Step = Action & {
  /** Offset from the method's start; undefined: right after the previous step. */
  atMs?: number;
  line: number;
  /** The step as written, for the journal: `fault: kill subscriber1`. */
  text: string;
};
