import type { NodeRole, ReplicationConfig, SubscriptionSpec } from '../config/index.js';
import type { ConnectionInfo } from '../pg/index.js';
import type { LocalNodeState } from '../runtime/index.js';

/**
 * A fault is a plugin: `plan()` says in words and SQL what it would do (for --dry-run),
 * `inject()` does it, `heal()` undoes it. Both are idempotent: injecting what is already in
 * place, or healing what is already healed, changes nothing and does not fail.
 */

export const FAULT_KINDS = ['kill', 'stop', 'restart', 'freeze', 'cpu', 'memory', 'connections', 'lock', 'idle-tx', 'slot', 'conflict', 'net'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What a fault may act on. */
export type FaultTargetKind =
  /** a node prodhome runs (signals, cgroups): an external server is refused */
  | 'local node'
  /** any node prodhome can log in to (SQL only) */
  | 'node'
  /** a subscription of the lab */
  | 'subscription'
  /** a replication link: a subscription, or the subscriber node it runs on */
  | 'link';

/** A node as a fault sees it. `local` is absent for an external server. */
export interface FaultNode {
  name: string;
  role: NodeRole;
  connection: ConnectionInfo;
  local?: LocalNodeState;
}

/** What the command line gave a fault, already parsed and checked. */
export interface FaultArgs {
  /** the node, or (conflict) the subscription */
  target: string;
  /** cpu: the quota in CPUs */
  cpus?: number;
  /** memory: the cap in bytes */
  memoryBytes?: number;
  /** connections: how many to hold (default: all the server will give) */
  hold?: number;
  /** lock: the table */
  table?: string;
  /** lock, idle-tx, connections, net: the fault ends by itself after this long */
  forMs?: number;
  /** net: what the link's proxy does to its traffic */
  net?: { latencyMs?: number; jitterMs?: number; bytesPerSecond?: number; partition?: boolean; reset?: boolean };
}

/** The lab as a fault needs it; the lab part builds it (src/lab/faults.ts). */
export interface FaultEnv {
  stateDir: string;
  labId: string;
  /** The node named, or a ProdhomeError naming the nodes there are. */
  node(name: string): FaultNode;
  subscription(name: string): SubscriptionSpec;
  replication: ReplicationConfig;
  /** Starts a local node that is not running (as `up` would), keeping its port and caps. */
  startNode(name: string): Promise<void>;
  /** Fast stop and start of a local node. */
  restartNode(name: string): Promise<void>;
  /** Holder processes write their log here. */
  holderLog: string;
  /** The fault's row in metrics.annotations, for a holder to end when its time runs out. */
  annotation?: { store: ConnectionInfo; id: number };
  log(line: string): void;
}

/** A holder: a detached `prodhome fault-holder` process that keeps sessions open. */
export interface HolderRef {
  pid: number;
  /** /proc/PID/stat start time (clock ticks since boot): a pid reused later is not ours. */
  startTime: string;
}

/** What injecting did, kept in faults.json so heal can undo exactly that. No secrets. */
export interface Injected {
  /** One line for `fault list`. */
  summary: string;
  /** What heal needs (previous limits, slot name, the planted row …). */
  data: Record<string, string | number | boolean | null>;
  holder?: HolderRef;
  /** When the fault ends by itself (holders with --for). */
  until?: string;
}

export interface FaultRecord extends Injected {
  id: string;
  kind: FaultKind;
  /** The node it acts on (for conflict: the subscriber). */
  node: string;
  args: FaultArgs;
  startedAt: string;
  /** The row in metrics.annotations, when the lab has a store. */
  annotationId?: number;
}

export interface Fault {
  readonly name: FaultKind;
  readonly summary: string;
  readonly targets: FaultTargetKind;
  /** True when the fault is over once injected (restart): annotated, never listed as active. */
  readonly instant?: boolean | ((args: FaultArgs) => boolean);
  /** Steps it would take, in words and SQL: what --dry-run prints. Validates as it goes. */
  plan(args: FaultArgs, env: FaultEnv): Promise<string[]> | string[];
  inject(args: FaultArgs, env: FaultEnv): Promise<Injected>;
  /** Undoes `record`; returns what it did. Idempotent. */
  heal(record: FaultRecord, env: FaultEnv): Promise<string[]>;
  /** Whether the fault is still in effect (a holder that expired, a node `up` restarted…). */
  active(record: FaultRecord, env: FaultEnv): Promise<boolean> | boolean;
}
