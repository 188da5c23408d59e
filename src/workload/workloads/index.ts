import type { Workload } from '../types.js';
import { custom } from './custom.js';
import { inserter } from './inserter.js';
import { mixed } from './mixed.js';
import { read } from './read.js';
import { tpcb } from './tpcb.js';

/** Every workload, by name: adding one is adding a file and a line here. */
export const workloads = { inserter, tpcb, read, mixed, custom } satisfies Record<string, Workload<unknown>>;

export type WorkloadName = keyof typeof workloads;

/** A workload with its shared data's type erased, for code that handles any of them. */
export type AnyWorkload = Workload<unknown>;

export function workloadNamed(name: string): AnyWorkload | undefined {
  return Object.hasOwn(workloads, name) ? workloads[name as WorkloadName] : undefined;
}
