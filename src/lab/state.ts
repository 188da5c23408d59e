import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { writeFileSafe } from '../fsafe.js';
import type { OsUser } from '../runtime/index.js';
import type { NodeState } from '../runtime/index.js';

/**
 * A lab's state directory, `.prodhome/<lab>/` beside its config:
 *   state.json    what exists (nodes, ports, data dirs, caps) — no secrets
 *   secrets.json  per-node passwords, mode 0600
 *   nodes/<name>/ data dir and postgres.log (unless the server user cannot reach here)
 *   agent.pid, agent.log, agent-status.json, lock
 * Every file here is written through src/fsafe.ts (temp file and rename, or O_NOFOLLOW): the
 * state dir may sit in a directory others share, and prodhome often runs as root.
 */
export interface LabState {
  format: 1;
  lab: string;
  labId: string;
  createdAt: string;
  runAs?: OsUser;
  /** Where node directories live; outside the state dir when the server user cannot reach it. */
  dataRoot: string;
  nodes: Record<string, NodeState>;
  /** The config file the lab was last brought up from (absent: the built-in default lab). */
  configFile?: string;
  /** Set by `down`, cleared by `up`: the lab is meant to be down (its agent too). */
  downAt?: string;
  /**
   * Ports that moved: a node's recorded port (or, for a new node, the first of the range) was
   * held by another program, so `up` took another. Kept until the node gets its port back.
   */
  portMoves?: Record<string, PortMove>;
}

export interface PortMove {
  wanted: number;
  got: number;
  at: string;
  /** What held the wanted port when it moved, if it could be told (from /proc). */
  heldBy?: string;
}

export interface Secrets {
  nodes: Record<string, { user: string; password: string }>;
  /** The replication role's password, per publisher node. */
  replication?: Record<string, string>;
  /** The dashboard's read-only role on the metrics store, and the token its URL carries. */
  dashboard?: { user: string; password: string; token: string };
}

export const files = (stateDir: string) => ({
  state: path.join(stateDir, 'state.json'),
  secrets: path.join(stateDir, 'secrets.json'),
  lock: path.join(stateDir, 'lock'),
  agentPid: path.join(stateDir, 'agent.pid'),
  agentLog: path.join(stateDir, 'agent.log'),
  agentStatus: path.join(stateDir, 'agent-status.json'),
  nodes: path.join(stateDir, 'nodes'),
  /** The config text of the last `up`: status, down and destroy read it when the config is broken or gone. */
  configCopy: path.join(stateDir, 'config.yaml'),
});

/** What replication `up` applied (replication/apply.ts reads and writes it). */
export const replicationFile = (stateDir: string) => path.join(stateDir, 'replication.json');

/** A stable id for the lab at this path: two labs named alike in different dirs never collide. */
export function labIdFor(lab: string, stateDir: string): string {
  return `${lab}-${crypto.createHash('sha1').update(path.resolve(stateDir)).digest('hex').slice(0, 8)}`;
}

export function readState(stateDir: string): LabState | undefined {
  try {
    return JSON.parse(fs.readFileSync(files(stateDir).state, 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

export function writeState(stateDir: string, state: LabState): void {
  writeFileSafe(files(stateDir).state, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 });
}

export function readSecrets(stateDir: string): Secrets {
  try {
    return JSON.parse(fs.readFileSync(files(stateDir).secrets, 'utf8')) as Secrets;
  } catch {
    return { nodes: {} };
  }
}

export function writeSecrets(stateDir: string, secrets: Secrets): void {
  writeFileSafe(files(stateDir).secrets, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
}

export function newPassword(): string {
  return crypto.randomBytes(18).toString('base64url');
}

