import path from 'node:path';
import type { LabConfig } from '../config/index.js';
import { ProdhomeError, messageOf } from '../errors.js';
import {
  annotate, endAnnotation, faults, isFrozen, readFaults, thawTree, updateFaults,
  type FaultArgs, type FaultEnv, type FaultKind, type FaultNode, type FaultRecord,
} from '../faults/index.js';
import type { ConnectionInfo } from '../pg/index.js';
import type { LocalNodeState } from '../runtime/index.js';
import { nodeConnection } from './nodes.js';
import { acquireLock } from './lock.js';
import { restartLocal } from './replication.js';
import { files, readSecrets, readState, writeState, type LabState } from './state.js';

/**
 * The lab's side of faults: which nodes and subscriptions there are, how to start a node, where
 * active faults are recorded (faults.json) and annotated (the metrics store). The faults
 * themselves (src/faults) know nothing of state dirs.
 */

export interface FaultResult {
  /** What was (or, with --dry-run, would be) done. */
  steps: string[];
  dryRun: boolean;
  record?: FaultRecord;
  /** The same fault was already in place: nothing new was done. */
  already?: boolean;
}

export interface ClearResult {
  cleared: { record: FaultRecord; steps: string[] }[];
}

type Log = (line: string) => void;

function requireState(config: LabConfig): LabState {
  const state = readState(config.stateDir);
  if (!state) throw new ProdhomeError('LAB_NOT_UP', `lab "${config.lab}" has not been brought up here`, { hint: 'Run `prodhome up` first.' });
  return state;
}

/** The metrics store's connection, or undefined when the lab has none (metrics.store: false). */
function storeOf(config: LabConfig, state: LabState): ConnectionInfo | undefined {
  const store = config.metrics.store;
  return store && state.nodes[store] ? nodeConnection(config, store) : undefined;
}

function faultEnv(config: LabConfig, state: LabState, log: Log): FaultEnv {
  const known = () => [...new Set([...config.nodes.map((n) => n.name), ...Object.keys(state.nodes)])];
  const startOrRestart = async (name: string) => {
    // Starting a node changes state.json: one command at a time (the same lock as up/down).
    const release = acquireLock(files(config.stateDir).lock, config.lab, 'fault');
    try {
      const fresh = readState(config.stateDir) ?? state;
      fresh.nodes[name] = await restartLocal(config, fresh, name, readSecrets(config.stateDir).nodes[name]?.password, log);
      writeState(config.stateDir, fresh);
      state.nodes[name] = fresh.nodes[name]!;
    } finally {
      release();
    }
  };
  return {
    stateDir: config.stateDir,
    labId: state.labId,
    replication: config.replication,
    holderLog: path.join(config.stateDir, 'faults.log'),
    log,
    node(name: string): FaultNode {
      const spec = config.nodes.find((n) => n.name === name);
      const node = state.nodes[name];
      if (!spec || !node) {
        if (!known().includes(name)) {
          throw new ProdhomeError('UNKNOWN_NODE', `there is no node "${name}" in lab "${config.lab}" (nodes: ${known().join(', ')})`, { hint: 'Use one of the node names from `prodhome status`.' });
        }
        throw new ProdhomeError('LAB_NOT_UP', `node "${name}" of lab "${config.lab}" has not been created (or is no longer in the config)`, { hint: 'Run `prodhome up` first.' });
      }
      return { name, role: spec.role, connection: nodeConnection(config, name), ...(node.runtime === 'local' ? { local: node as LocalNodeState } : {}) };
    },
    subscription(name: string) {
      const sub = config.replication.subscriptions.find((s) => s.name === name);
      if (!sub) {
        const names = config.replication.subscriptions.map((s) => s.name);
        throw new ProdhomeError('USAGE', `there is no subscription "${name}" in lab "${config.lab}"${names.length ? ` (subscriptions: ${names.join(', ')})` : ' (it has none)'}`, {
          hint: 'Use a subscription name from `prodhome replication status`.',
        });
      }
      return sub;
    },
    startNode: startOrRestart,
    restartNode: startOrRestart,
  };
}

/** The node a fault acts on: the node named, or a subscription's subscriber. */
function nodeOf(kind: FaultKind, args: FaultArgs, env: FaultEnv): string {
  if (kind === 'conflict') return env.subscription(args.target).node;
  if (kind === 'net') {
    const sub = env.replication.subscriptions.find((s) => s.name === args.target) ?? env.replication.subscriptions.find((s) => s.node === args.target);
    return sub?.node ?? args.target; // an unknown link is named by the fault's own plan()
  }
  return env.node(args.target).name;
}

function describe(kind: FaultKind, args: FaultArgs): string {
  const n = args.net ?? {};
  const net = [n.latencyMs ? `latency ${n.latencyMs}ms` : '', n.jitterMs ? `jitter ${n.jitterMs}ms` : '', n.bytesPerSecond ? `${n.bytesPerSecond} B/s` : '', n.partition ? 'partition' : '', n.reset ? 'reset connections' : ''];
  const extra = [...net, args.cpus !== undefined ? `${args.cpus} CPUs` : '', args.memoryBytes !== undefined ? `${args.memoryBytes} bytes` : '', args.table ?? '', args.hold ? `hold ${args.hold}` : '', args.forMs ? `for ${args.forMs / 1000}s` : '']
    .filter(Boolean)
    .join(', ');
  return `fault ${kind} ${args.target}${extra ? ` (${extra})` : ''}`;
}

/** `prodhome fault KIND TARGET …`: plan (--dry-run) or inject, record and annotate one fault. */
export async function labFault(config: LabConfig, kind: FaultKind, args: FaultArgs, opts: { dryRun?: boolean; log?: Log } = {}): Promise<FaultResult> {
  const log = opts.log ?? (() => {});
  const state = requireState(config);
  const env = faultEnv(config, state, log);
  const fault = faults[kind];
  const node = nodeOf(kind, args, env);
  const steps = await fault.plan(args, env);
  if (opts.dryRun) return { steps, dryRun: true };

  const same = readFaults(config.stateDir).faults.find((f) => f.kind === kind && f.node === node && f.args.target === args.target);
  if (same && (await stillActive(same, env))) return { steps: [`already in place: fault ${same.id} (${same.summary}); \`prodhome fault clear ${same.id}\` ends it`], dryRun: false, record: same, already: true };

  const store = storeOf(config, state);
  const startedAt = new Date();
  const annotationId = await annotate(store, { time: startedAt, kind: 'fault', node, text: describe(kind, args), tags: { fault: kind, target: args.target, lab: config.lab } }, log);
  if (store && annotationId !== undefined) env.annotation = { store, id: annotationId };
  let injected;
  try {
    injected = await fault.inject(args, env);
  } catch (e) {
    await endAnnotation(store, annotationId, new Date(), log);
    throw e;
  }
  const record: FaultRecord = { id: '', kind, node, args, startedAt: startedAt.toISOString(), ...injected, ...(annotationId !== undefined ? { annotationId } : {}) };
  if (typeof fault.instant === 'function' ? fault.instant(args) : fault.instant) {
    await endAnnotation(store, annotationId, new Date(), log);
    return { steps: [...steps.filter((s) => !s.startsWith('undo:')), `done: ${injected.summary}`], dryRun: false, record };
  }
  await updateFaults(config.stateDir, (file) => {
    record.id = String(file.next++);
    file.faults.push(record);
  });
  return { steps: [`fault ${record.id}: ${injected.summary}`], dryRun: false, record };
}

async function stillActive(record: FaultRecord, env: FaultEnv): Promise<boolean> {
  try {
    return await faults[record.kind].active(record, env);
  } catch {
    return true;
  }
}

/** `prodhome fault list`: the active faults; ones that ended by themselves are dropped (and their annotation ended). */
export async function labFaultList(config: LabConfig): Promise<{ active: FaultRecord[]; ended: FaultRecord[] }> {
  const state = readState(config.stateDir);
  if (!state) return { active: [], ended: [] };
  const env = faultEnv(config, state, () => {});
  const records = readFaults(config.stateDir).faults;
  const ended = await endedFaults(records, env);
  if (ended.length) await forget(config, state, ended);
  return { active: records.filter((r) => !ended.includes(r)), ended };
}

/** Drops records from faults.json and ends their annotations. */
async function forget(config: LabConfig, state: LabState, records: FaultRecord[]): Promise<void> {
  const ids = new Set(records.map((r) => r.id));
  await updateFaults(config.stateDir, (file) => void (file.faults = file.faults.filter((f) => !ids.has(f.id))));
  const store = storeOf(config, state);
  for (const r of records) {
    const end = r.until && Date.parse(r.until) < Date.now() ? new Date(r.until) : new Date();
    await endAnnotation(store, r.annotationId, end, () => {});
  }
}

/** `prodhome fault clear [ID]`: undo one fault or all, newest first. */
export async function labFaultClear(config: LabConfig, id?: string, opts: { log?: Log; only?: (r: FaultRecord) => boolean } = {}): Promise<ClearResult> {
  const log = opts.log ?? (() => {});
  const state = requireState(config);
  const env = faultEnv(config, state, log);
  const all = readFaults(config.stateDir).faults;
  let chosen = all.filter(opts.only ?? (() => true));
  if (id !== undefined) {
    chosen = all.filter((f) => f.id === id);
    if (!chosen.length) {
      throw new ProdhomeError('USAGE', `there is no active fault ${id} in lab "${config.lab}"${all.length ? ` (active: ${all.map((f) => `${f.id} ${f.kind} ${f.args.target}`).join(', ')})` : ' (none is active)'}`, {
        hint: '`prodhome fault list` shows them.',
      });
    }
  }
  const result: ClearResult = { cleared: [] };
  const failed: string[] = [];
  for (const record of [...chosen].reverse()) {
    try {
      const steps = await faults[record.kind].heal(record, env);
      await forget(config, state, [record]);
      result.cleared.push({ record, steps });
    } catch (e) {
      failed.push(`fault ${record.id} (${record.kind} ${record.args.target}): ${messageOf(e)}`);
    }
  }
  if (failed.length) {
    throw new ProdhomeError('FAULT_FAILED', `could not clear ${failed.join('; ')}`, { hint: 'Fix what is named, then run `prodhome fault clear` again (the faults stay recorded until cleared).' });
  }
  return result;
}

/** `prodhome fault thaw NODE`: continue a frozen node (recorded or not). */
export async function labThaw(config: LabConfig, name: string, log: Log = () => {}): Promise<string[]> {
  const state = requireState(config);
  const env = faultEnv(config, state, log);
  const node = env.node(name);
  if (!node.local) throw new ProdhomeError('USAGE', `fault thaw: ${name} is an external server (given by URL); prodhome never froze it`);
  const cleared = await labFaultClear(config, undefined, { log, only: (r) => r.kind === 'freeze' && r.node === name });
  const steps = cleared.cleared.flatMap((c) => [`fault ${c.record.id} cleared`, ...c.steps]);
  const more = thawTree(node.local);
  if (more) steps.push(`${name}: ${more} processes continued (SIGCONT)`);
  return steps.length ? steps : [`${name} was not frozen; nothing to do`];
}

/** Before `up` starts anything: a frozen node would look running yet never answer. */
export function thawFrozenNodes(state: LabState | undefined, log: Log): void {
  for (const [name, node] of Object.entries(state?.nodes ?? {})) {
    if (node.runtime === 'local' && isFrozen(node)) {
      thawTree(node);
      log(`${name}: was frozen (SIGSTOP); continued it (SIGCONT)`);
    }
  }
}

/** After `up`: node faults it undid (kill, stop, freeze) are over; drop them and end their annotations. */
export async function settleNodeFaults(config: LabConfig): Promise<void> {
  const state = readState(config.stateDir);
  const records = readFaults(config.stateDir).faults.filter((r) => ['kill', 'stop', 'freeze', 'net'].includes(r.kind));
  if (!state || !records.length) return;
  const env = faultEnv(config, state, () => {});
  const ended = await endedFaults(records, env);
  if (ended.length) await forget(config, state, ended);
}

/** The faults that are over by themselves. A link whose proxy is gone is pointed back at its publisher. */
async function endedFaults(records: FaultRecord[], env: FaultEnv): Promise<FaultRecord[]> {
  const ended: FaultRecord[] = [];
  for (const r of records) {
    if (await stillActive(r, env)) continue;
    if (r.kind === 'net') await faults.net.heal(r, env).catch(() => {});
    ended.push(r);
  }
  return ended;
}

/**
 * Before `destroy`: no fault may outlive the lab. Holders end (their sessions close), frozen
 * nodes continue (a stopped process ignores the shutdown), faults on external servers are
 * undone; what lives in a local node's data dir (slots, planted rows) goes with it.
 */
export async function releaseFaults(config: LabConfig, state: LabState, log: Log = () => {}): Promise<void> {
  const records = readFaults(config.stateDir).faults;
  thawFrozenNodes(state, log);
  if (!records.length) return;
  const env = faultEnv(config, state, log);
  const store = storeOf(config, state);
  for (const r of records.reverse()) {
    const external = state.nodes[r.node]?.runtime === 'external';
    try {
      if (r.holder || r.kind === 'freeze' || (external && (r.kind === 'slot' || r.kind === 'conflict'))) await faults[r.kind].heal(r, env);
    } catch (e) {
      log(`fault ${r.id} (${r.kind} ${r.args.target}): ${messageOf(e)}`);
    }
    await endAnnotation(store, r.annotationId, new Date(), log);
  }
}
