import type { NodeSpec } from '../config/index.js';
import type { ConnectionInfo } from '../pg/index.js';
import type { PgBinaries } from './binaries.js';
import type { OsUser } from './process.js';

/** What state.json remembers about a local node between commands. */
export interface LocalNodeState {
  runtime: 'local';
  nodeDir: string;
  dataDir: string;
  logFile: string;
  port: number;
  binDir: string;
  binSource: PgBinaries['source'];
  version: string;
  major: number;
  /** Hash of the config the running server was started with; a change means restart. */
  confHash: string;
  caps: { memoryBytes?: number; cpus?: number; enforced: boolean; how?: string; reason?: string; cgroupDirs: string[] };
  /** What the user last asked for: `up` → running, `down` → stopped. Running-but-dead is "died". */
  desired: 'running' | 'stopped';
  pid?: number;
  /** The postmaster's start time (/proc/PID/stat field 22): with `pid`, the only process `down` signals. */
  pidStartTime?: string;
  /** The uid the server runs as; a postmaster running as anyone else is not this node's. */
  serverUid?: number;
  startedAt?: string;
}

export interface ExternalNodeState {
  runtime: 'external';
  /** The URL without its password. */
  url: string;
  version?: string;
  major?: number;
}

export type NodeState = LocalNodeState | ExternalNodeState;

export interface UpContext {
  labId: string;
  /** The OS user servers run as (only when prodhome is root). */
  user?: OsUser;
  /** Directory holding one sub-directory per local node. */
  dataRoot: string;
  /** Where template clusters are kept (new nodes are copies of one); undefined: initdb each node. */
  templateRoot?: string;
  /** The node's superuser password (local nodes). */
  password?: string;
  binaries?: PgBinaries;
  port?: number;
  /**
   * Another port when `port` turned out taken as the server started (a race with another
   * program); undefined for a port the config fixes, or when the range has no other free one.
   */
  anotherPort?: (taken: number) => Promise<number | undefined>;
  previous?: NodeState;
  log: (line: string) => void;
}

export interface UpOutcome {
  state: NodeState;
  /** What happened, in words: "created", "started", "restarted (it had died)", "unchanged"… */
  action: string;
  connection: ConnectionInfo;
  /** Reverts what this call did (for a failed `up` that must leave nothing half-made). */
  undo: () => Promise<void>;
}

/** What `down` did to a node; `note` tells what it saw and did not trust (a planted pid). */
export interface NodeDown {
  result: 'stopped' | 'not running' | 'left alone';
  note?: string;
}

export type NodeCondition = 'running' | 'stopped' | 'died' | 'reachable' | 'unreachable';

export interface NodeInspection {
  condition: NodeCondition;
  pid?: number;
  version?: string;
  address: string;
  caps: string;
  dataBytes?: number;
}

/**
 * How a node runs. One implementation per file; `up` is idempotent, `down` and `remove` only
 * ever touch what the lab created (an external node is never stopped or deleted).
 */
export interface NodeRuntime {
  readonly kind: NodeState['runtime'];
  up(spec: NodeSpec, ctx: UpContext): Promise<UpOutcome>;
  down(name: string, state: NodeState): Promise<NodeDown>;
  inspect(name: string, state: NodeState, password?: string): Promise<NodeInspection>;
  /** Deletes the node's data (local) — never anything outside what the lab created. */
  remove(state: NodeState): Promise<void>;
}
