import os from 'node:os';
import path from 'node:path';
import type { LabConfig } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { quoteIdent } from '../pg/index.js';
import { parseTableRef, readReplicationFiles } from '../config/index.js';
import {
  dropSubscription, pgMessage, readApplied, resetSubscription, resyncTable, revertReplication, writeApplied, type OperationReport,
  applyReplication, pools, replicationStatus, verify, workerErrors, type ApplyResult, type PlanNode, type SubscriptionStatus, type VerifyResult,
} from '../replication/index.js';
import { binariesAt, runningPid, runtimes, type LocalNodeState } from '../runtime/index.js';
import { acquireLock } from './lock.js';
import { labNodes } from './nodes.js';
import { logTail, resolveConflict, withConflicts, type ResolveMode } from './resolve.js';
import { files, newPassword, readSecrets, readState, writeSecrets, writeState, type LabState, type Secrets, replicationFile } from './state.js';
export { replicationFile };

/**
 * The lab's side of replication: which connection each node has, the replication role's
 * password, and how to restart a node when a setting needs it. The replication part itself
 * knows nothing of state dirs or runtimes.
 */


/** The replication plan's view of the lab's nodes: how to reach each, and how it runs. */
export function planNodes(config: LabConfig, state: LabState, secrets: Secrets): Map<string, PlanNode> {
  return new Map([...labNodes(config, state, secrets)].map(([name, h]) => [name, { connection: h.connection, runtime: h.runtime }]));
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

function requireUp(config: LabConfig, only?: string[]): LabState {
  const state = readState(config.stateDir);
  const down = config.nodes.filter((n) => !only || only.includes(n.name)).filter((n) => {
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
export async function labReplicate(config: LabConfig, opts: { dryRun?: boolean; all?: boolean; checkOnly?: boolean; log?: (l: string) => void } = {}): Promise<ApplyResult> {
  // The files the config names are read first: a bad one is reported before any server is asked.
  readReplicationFiles(config.replication);
  const state = requireUp(config);
  const readOnly = opts.dryRun || opts.all || opts.checkOnly;
  const release = readOnly ? () => {} : acquireLock(files(config.stateDir).lock, config.lab, 'replicate');
  try {
    const secrets = readSecrets(config.stateDir);
    const result = await applyReplication(
      {
        config: config.replication,
        nodes: planNodes(config, state, secrets),
        stateFile: replicationFile(config.stateDir),
        replicationPassword: replicationPasswords(secrets),
        hasReplicationPassword: (p) => !!secrets.replication?.[p],
        restart: async (name) => {
          state.nodes[name] = await restartLocal(config, state, name, secrets.nodes[name]?.password, opts.log ?? (() => {}));
          writeState(config.stateDir, state);
        },
        log: opts.log,
      },
      { dryRun: opts.dryRun, checkOnly: opts.checkOnly, all: opts.all },
    );
    if (!readOnly) writeSecrets(config.stateDir, secrets);
    return result;
  } finally {
    release();
  }
}

/**
 * Runs `fn` with one pool per node of a lab that is up. `degraded` (status, verify): the lab may
 * have nodes down; `fn` gets them, with why, and reports them instead of refusing.
 */
async function withLabPools<T>(
  config: LabConfig,
  fn: (sql: ReturnType<typeof pools>['sql'], state: LabState, down: Map<string, string>) => Promise<T>,
  only?: string[],
  settingsOf?: Parameters<typeof pools>[1],
  degraded = false,
): Promise<T> {
  const state = degraded ? readState(config.stateDir) : requireUp(config, only);
  if (!state) throw new ProdhomeError('LAB_NOT_UP', `lab "${config.lab}" is not up`, { hint: 'Run `prodhome up` first (it also applies replication).' });
  const db = pools(planNodes(config, state, readSecrets(config.stateDir)), settingsOf);
  try {
    return await fn(db.sql, state, degraded ? await downNodes(config, state, db.sql) : new Map());
  } finally {
    await db.end();
  }
}

/** Nodes that cannot be asked now, with why: a local server not running, or one that does not answer. */
async function downNodes(config: LabConfig, state: LabState, sql: ReturnType<typeof pools>['sql']): Promise<Map<string, string>> {
  const down = new Map<string, string>();
  await Promise.all(
    config.nodes.map(async (n) => {
      const s = state.nodes[n.name];
      if (!s) return void down.set(n.name, 'has not been created (`prodhome up` creates it)');
      if (s.runtime === 'local' && !runningPid(s.dataDir)) return void down.set(n.name, 'is not running (`prodhome up` starts it)');
      let timer: NodeJS.Timeout | undefined;
      try {
        // Bounded: the driver can wait for ever on a server that accepts and never answers.
        await Promise.race([sql(n.name)`select 1`, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('no answer in 5 s')), 5000)))]);
      } catch (e) {
        down.set(n.name, `does not answer (${(e as Error).message})`);
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return down;
}

export async function labVerify(config: LabConfig, opts: { waitMs: number; maxKeys: number }): Promise<VerifyResult> {
  if (!config.replication.subscriptions.length) throw new ProdhomeError('USAGE', `lab "${config.lab}" has no subscriptions to verify`, { hint: 'Add subscriptions: to prodhome.yaml.' });
  return withLabPools(
    config,
    (sql, _state, down) => verify(config.replication, sql, { ...opts, down }),
    undefined,
    (node) => (node.runtime === 'local' ? verifyScanSettings() : undefined),
    true,
  );
}

/**
 * verify hashes the publisher's and the subscriber's table at once. Local nodes share this
 * machine's cores, so each side gets half of them: parallel workers beyond that only contend
 * (on 2 cores, none: 0.21 s instead of 0.23 s for 2,000,000 rows a side, bench/replication.mjs).
 * External servers keep their own setting.
 */
export function verifyScanSettings(cores = os.availableParallelism()): Record<string, string> {
  return { max_parallel_workers_per_gather: String(Math.max(0, Math.floor(cores / 2) - 1)) };
}

/** `replication status`: every subscription, with down nodes reported instead of refused. */
export async function labReplicationStatus(config: LabConfig): Promise<SubscriptionStatus[]> {
  return withLabPools(config, async (sql, state, down) =>
    withConflicts(
      await replicationStatus(config.replication, sql, (node, sub, oid) => {
        const log = logTail(state.nodes[node]);
        return log === null ? [] : workerErrors(log, sub, oid);
      }, down),
      sql,
      state.nodes,
    ),
    undefined,
    undefined,
    true,
  );
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
  // Only the subscriber is needed: another node being down does not stop a pause or resume.
  await withLabPools(config, async (sql) => void (await sql(sub.node).unsafe(text)), [sub.node]);
  return `${text};`;
}

/** `replication resolve SUB --skip | --delete-local`: unstall a subscription's apply conflict. */
export async function labResolve(config: LabConfig, name: string, mode: ResolveMode, lsn?: string): Promise<OperationReport> {
  const sub = subscriptionOf(config, name);
  return withLabPools(config, (sql, state) => resolveConflict(config, sub.name, mode, sql, state.nodes, lsn), [sub.node]);
}

/** `replication drop [SUB]`: drop one subscription (or all) with its slot, even with the publisher down. */
export async function labDropSubscriptions(config: LabConfig, name?: string): Promise<OperationReport> {
  const subs = name ? [subscriptionOf(config, name)] : config.replication.subscriptions;
  const release = acquireLock(files(config.stateDir).lock, config.lab, 'replication drop');
  try {
    const report: OperationReport = { ran: [], notes: [] };
    await withLabPools(
      config,
      async (sql) => {
        const applied = readApplied(replicationFile(config.stateDir));
        for (const sub of subs) {
          await dropSubscription(sub, sql(sub.node), sql(sub.publisher), report);
          delete applied.subscriptions[sub.name];
        }
        writeApplied(replicationFile(config.stateDir), applied);
      },
      subs.map((s) => s.node),
    );
    report.notes.push(`${subs.map((s) => s.name).join(', ')} ${subs.length > 1 ? 'are' : 'is'} still in the config: the next \`prodhome up\` creates ${subs.length > 1 ? 'them' : 'it'} again; remove ${subs.length > 1 ? 'them' : 'it'} there to keep ${subs.length > 1 ? 'them' : 'it'} gone`);
    return report;
  } finally {
    release();
  }
}

/** `replication resync SUB [TABLE]`: copy a subscription's tables (or one table) afresh. */
export async function labResync(config: LabConfig, name: string, table?: string): Promise<OperationReport> {
  const sub = subscriptionOf(config, name);
  const report: OperationReport = { ran: [], notes: [] };
  if (table) {
    const ref = parseTableRef(table);
    await withLabPools(config, async (sql) => {
      try {
        await resyncTable(config.replication, sub, ref, sql(sub.node), sql(sub.publisher), report);
      } catch (e) {
        if (e instanceof ProdhomeError) throw e;
        throw new ProdhomeError('USAGE', `cannot resync ${table} of ${name}: ${pgMessage(e)}`);
      }
    });
    return report;
  }
  await withLabPools(config, async (sql) => {
    const applied = readApplied(replicationFile(config.stateDir));
    await resetSubscription(config.replication, sub, sql(sub.node), sql(sub.publisher), applied, report);
    writeApplied(replicationFile(config.stateDir), applied);
  });
  const again = await labReplicate(config);
  report.ran.push(...again.steps.map((s) => ({ node: s.node, sql: s.show })));
  return report;
}

/** `replicate revert`: remove the replication prodhome made and restore the settings it changed. */
export async function labRevert(config: LabConfig, log: (l: string) => void = () => {}): Promise<OperationReport> {
  const state = requireUp(config);
  const release = acquireLock(files(config.stateDir).lock, config.lab, 'replicate revert');
  const report: OperationReport = { ran: [], notes: [] };
  try {
    const secrets = readSecrets(config.stateDir);
    const db = pools(planNodes(config, state, secrets));
    const applied = readApplied(replicationFile(config.stateDir));
    let restart: string[];
    try {
      restart = await revertReplication(applied, db.sql, report);
    } finally {
      writeApplied(replicationFile(config.stateDir), applied);
      await db.end();
    }
    for (const node of restart) {
      if (state.nodes[node]?.runtime === 'local') {
        state.nodes[node] = await restartLocal(config, state, node, secrets.nodes[node]?.password, log);
        report.ran.push({ node, sql: `-- restarted ${node} so the restored settings take effect` });
      } else report.notes.push(`restart ${node} yourself so its restored settings take effect`);
    }
    writeState(config.stateDir, state);
    report.notes.push('tables and their rows are kept; the next `prodhome up` applies the replication in the config again');
    return report;
  } finally {
    release();
  }
}
