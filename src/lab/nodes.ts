import fs from 'node:fs';
import type { LabConfig, NodeRole } from '../config/index.js';
import type { DataTarget } from '../data/index.js';
import { ProdhomeError } from '../errors.js';
import { parseConnectionUrl, type ConnectionInfo } from '../pg/index.js';
import { guardWrites, type WriteIntent } from './write-guard.js';
import type { ProcessTarget } from '../metrics/index.js';
import { runningPidCached } from '../runtime/index.js';
import { files, readSecrets, readState, type LabState, type Secrets } from './state.js';

/**
 * How to reach one node of a lab, built once from state.json and secrets.json: every consumer
 * (replication, verify, the sampler, seed/import/load, psql/env) takes handles or their
 * connections instead of reading state files itself. Carries a password: never log or print it.
 */
export interface NodeHandle {
  name: string;
  role: NodeRole;
  runtime: 'local' | 'external';
  /** The lab's superuser connection (its secret included). */
  connection: ConnectionInfo;
  /**
   * The host and port a subscriber uses to reach this node as a publisher. Today the node's own
   * address; a fault proxy on the link will stand here instead.
   */
  replicationAddress: { host: string; port: number };
  /** A local node's process and files; absent for external servers. */
  local?: { pid?: number; dataDir: string; logFile: string; binDir: string; major: number; cgroupDirs: string[] };
}

/** Handles of every node of the lab that has been created, in config order. */
export function labNodes(config: LabConfig, state: LabState | undefined = readState(config.stateDir), secrets: Secrets = readSecrets(config.stateDir)): Map<string, NodeHandle> {
  const handles = new Map<string, NodeHandle>();
  for (const spec of config.nodes) {
    const node = state?.nodes[spec.name];
    if (!node) continue;
    if (node.runtime === 'external') {
      const connection = parseConnectionUrl(spec.url ?? node.url);
      handles.set(spec.name, { name: spec.name, role: spec.role, runtime: 'external', connection, replicationAddress: { host: connection.host, port: connection.port } });
      continue;
    }
    const secret = secrets.nodes[spec.name];
    handles.set(spec.name, {
      name: spec.name,
      role: spec.role,
      runtime: 'local',
      connection: { host: '127.0.0.1', port: node.port, user: secret?.user ?? 'postgres', password: secret?.password, database: 'postgres' },
      replicationAddress: { host: '127.0.0.1', port: node.port },
      local: { pid: node.pid, dataDir: node.dataDir, logFile: node.logFile, binDir: node.binDir, major: node.major, cgroupDirs: node.caps.cgroupDirs },
    });
  }
  return handles;
}

/** One node's handle; an unknown or never-created node gets its own clear error. */
export function nodeHandle(config: LabConfig, name: string): NodeHandle {
  const state = readState(config.stateDir);
  const handle = labNodes(config, state).get(name);
  if (handle) return handle;
  const known = [...new Set([...config.nodes.map((n) => n.name), ...Object.keys(state?.nodes ?? {})])];
  if (!known.includes(name)) {
    throw new ProdhomeError('UNKNOWN_NODE', `there is no node "${name}" in lab "${config.lab}" (nodes: ${known.join(', ')})`, {
      hint: 'Use one of the node names from `prodhome status`.',
    });
  }
  throw new ProdhomeError('LAB_NOT_UP', `node "${name}" of lab "${config.lab}" has not been created yet`, { hint: 'Run `prodhome up` first.' });
}

/** How to connect to a node (with its password), for `env`, `psql` and data commands. */
export function nodeConnection(config: LabConfig, name: string): ConnectionInfo {
  return nodeHandle(config, name).connection;
}

/** The node data commands use without --node: the lab's first publisher. */
export function defaultDataNode(config: LabConfig): string {
  const publisher = config.nodes.find((n) => n.role === 'publisher');
  if (!publisher) {
    throw new ProdhomeError('USAGE', `lab "${config.lab}" has no node with role publisher, so there is no default node`, {
      hint: `Pass --node with one of: ${config.nodes.map((n) => n.name).join(', ')}.`,
    });
  }
  return publisher.name;
}

/**
 * Resolves `node` (default: the first publisher); unknown or never-created nodes get their own
 * clear errors. With `writes`, writes to tables a subscription feeds there are refused unless
 * forced (then `warn` hears why it is risky).
 */
export function dataTarget(config: LabConfig, node?: string, writes?: WriteIntent & { warn?: (line: string) => void }): DataTarget {
  const name = node ?? defaultDataNode(config);
  const connection = nodeConnection(config, name);
  if (writes) {
    const warning = guardWrites(config, name, writes);
    if (warning) writes.warn?.(warning);
  }
  return { node: name, connection };
}

/** The local nodes' postmasters and cgroups, read from the state file each sample (a restart changes the pid). */
export function processTargets(config: LabConfig): ProcessTarget[] {
  const state = stateWhenChanged(config.stateDir);
  return config.nodes.flatMap((n) => {
    const s = state?.nodes[n.name];
    return s?.runtime === 'local' ? [{ name: n.name, role: n.role, pid: runningPidCached(s.dataDir), cgroupDirs: s.caps.cgroupDirs }] : [];
  });
}

const stateCache = new Map<string, { mtimeMs: number; size: number; state: LabState | undefined }>();

/** state.json, parsed again only when it changed (asked several times a second by the sampler). */
function stateWhenChanged(stateDir: string): LabState | undefined {
  const st = fs.statSync(files(stateDir).state, { throwIfNoEntry: false });
  const hit = stateCache.get(stateDir);
  if (st && hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.state;
  const state = readState(stateDir);
  if (st) stateCache.set(stateDir, { mtimeMs: st.mtimeMs, size: st.size, state });
  return state;
}
