import fs from 'node:fs';
import path from 'node:path';
import type { LabConfig } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { parseConnectionUrl, quoteIdent, type ConnectionInfo } from '../pg/index.js';
import {
  applyReplication, pools, replicationStatus, verify, type ApplyResult, type PlanNode, type SubscriptionStatus, type VerifyResult,
} from '../replication/index.js';
import { binariesAt, runningPid, runtimes, type LocalNodeState, type NodeState } from '../runtime/index.js';
import { acquireLock } from './lock.js';
import { files, newPassword, readSecrets, readState, writeSecrets, writeState, type LabState, type Secrets } from './state.js';

/**
 * The lab's side of replication: which connection each node has, the replication role's
 * password, and how to restart a node when a setting needs it. The replication part itself
 * knows nothing of state dirs or runtimes.
 */

export const replicationFile = (stateDir: string) => path.join(stateDir, 'replication.json');

export function planNodes(config: LabConfig, state: LabState, secrets: Secrets): Map<string, PlanNode> {
  const nodes = new Map<string, PlanNode>();
  for (const spec of config.nodes) {
    const node = state.nodes[spec.name];
    if (!node) continue;
    const connection: ConnectionInfo =
      node.runtime === 'external'
        ? parseConnectionUrl(spec.url ?? node.url)
        : { host: '127.0.0.1', port: node.port, user: 'postgres', password: secrets.nodes[spec.name]?.password, database: 'postgres' };
    nodes.set(spec.name, { connection, runtime: node.runtime });
  }
  return nodes;
}

export function replicationPasswords(secrets: Secrets): (publisher: string) => string {
  return (publisher) => {
    secrets.replication ??= {};
    return (secrets.replication[publisher] ??= newPassword());
  };
}

/** Stops and starts a local node with its recorded binaries, port and caps; returns its new state. */
export async function restartLocal(config: LabConfig, state: LabState, name: string, password: string | undefined, log: (l: string) => void): Promise<LocalNodeState> {
  const node = state.nodes[name];
  const spec = config.nodes.find((n) => n.name === name);
  if (node?.runtime !== 'local' || !spec) throw new ProdhomeError('USAGE', `${name} is not a local node of this lab; prodhome cannot restart it`);
  log(`${name}: restarting`);
  await runtimes.local.down(name, node);
  const bins = binariesAt(node.binDir, node.binSource);
  if (!bins) throw new ProdhomeError('BINARIES_MISSING', `${name}: its binaries in ${node.binDir} are gone`, { hint: 'Run `prodhome up` to find binaries again.' });
  const outcome = await runtimes.local.up(spec, {
    labId: state.labId,
    user: state.runAs,
    dataRoot: state.dataRoot,
    password,
    binaries: bins,
    port: node.port,
    previous: { ...node, desired: 'stopped' },
    log,
  });
  return outcome.state as LocalNodeState;
}

function requireUp(config: LabConfig): LabState {
  const state = readState(config.stateDir);
  const down = config.nodes.filter((n) => {
    const s = state?.nodes[n.name];
    return !s || (s.runtime === 'local' && !runningPid(s.dataDir));
  });
  if (!state || down.length) {
    throw new ProdhomeError('LAB_NOT_UP', `lab "${config.lab}" is not up${down.length && state ? ` (${down.map((n) => n.name).join(', ')} not running)` : ''}`, {
      hint: 'Run `prodhome up` first (it also applies replication).',
    });
  }
  return state;
}

/** `prodhome replicate [--dry-run] | check`: plan, preflight and apply replication on a lab that is up. */
export async function labReplicate(config: LabConfig, opts: { dryRun?: boolean; checkOnly?: boolean; log?: (l: string) => void } = {}): Promise<ApplyResult> {
  const state = requireUp(config);
  const readOnly = opts.dryRun || opts.checkOnly;
  const release = readOnly ? () => {} : acquireLock(files(config.stateDir).lock, config.lab, 'replicate');
  try {
    const secrets = readSecrets(config.stateDir);
    const result = await applyReplication(
      {
        config: config.replication,
        nodes: planNodes(config, state, secrets),
        stateFile: replicationFile(config.stateDir),
        replicationPassword: replicationPasswords(secrets),
        restart: async (name) => {
          state.nodes[name] = await restartLocal(config, state, name, secrets.nodes[name]?.password, opts.log ?? (() => {}));
          writeState(config.stateDir, state);
        },
        log: opts.log,
      },
      { dryRun: opts.dryRun, checkOnly: opts.checkOnly },
    );
    if (!readOnly) writeSecrets(config.stateDir, secrets);
    return result;
  } finally {
    release();
  }
}

/** Runs `fn` with one pool per node of a lab that is up. */
async function withLabPools<T>(config: LabConfig, fn: (sql: ReturnType<typeof pools>['sql'], state: LabState) => Promise<T>): Promise<T> {
  const state = requireUp(config);
  const db = pools(planNodes(config, state, readSecrets(config.stateDir)));
  try {
    return await fn(db.sql, state);
  } finally {
    await db.end();
  }
}

export async function labVerify(config: LabConfig, opts: { waitMs: number; maxKeys: number }): Promise<VerifyResult> {
  if (!config.replication.subscriptions.length) throw new ProdhomeError('USAGE', `lab "${config.lab}" has no subscriptions to verify`, { hint: 'Add subscriptions: to prodhome.yaml.' });
  return withLabPools(config, (sql) => verify(config.replication, sql, opts));
}

export async function labReplicationStatus(config: LabConfig): Promise<SubscriptionStatus[]> {
  return withLabPools(config, (sql, state) => replicationStatus(config.replication, sql, (node, sub) => lastLoggedError(state.nodes[node], sub)));
}

/** The newest ERROR line about a subscription in a local subscriber's log. */
function lastLoggedError(node: NodeState | undefined, sub: string): string | null {
  if (node?.runtime !== 'local') return null;
  let text: string;
  try {
    const fd = fs.openSync(node.logFile, 'r');
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, 256 * 1024);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    fs.closeSync(fd);
    text = buf.toString('utf8');
  } catch {
    return null;
  }
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    if (/\b(ERROR|FATAL):/.test(line) && (line.includes(`"${sub}"`) || /logical replication/.test(line))) return line.replace(/^\S+ \S+ \S+ \[\d+\] /, '');
  }
  return null;
}

function subscriptionOf(config: LabConfig, name: string) {
  const sub = config.replication.subscriptions.find((s) => s.name === name);
  if (!sub) {
    const names = config.replication.subscriptions.map((s) => s.name);
    throw new ProdhomeError('USAGE', `no subscription "${name}" in lab "${config.lab}"${names.length ? ` (subscriptions: ${names.join(', ')})` : ''}`);
  }
  return sub;
}

/** `replication pause|resume SUB`: ALTER SUBSCRIPTION … DISABLE/ENABLE. */
export async function labSetSubscriptionEnabled(config: LabConfig, name: string, enabled: boolean): Promise<string> {
  const sub = subscriptionOf(config, name);
  const text = `ALTER SUBSCRIPTION ${quoteIdent(name)} ${enabled ? 'ENABLE' : 'DISABLE'}`;
  await withLabPools(config, async (sql) => void (await sql(sub.node).unsafe(text)));
  return `${text};`;
}

