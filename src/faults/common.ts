import { ProdhomeError, messageOf } from '../errors.js';
import { connect, type ConnectionInfo, type Sql } from '../pg/index.js';
import type { LocalNodeState } from '../runtime/index.js';
import { postmasterOf } from './process-tree.js';
import type { Fault, FaultEnv, FaultNode } from './types.js';

/** The node as a local one; an external server (URL) is refused for what only a local node allows. */
export function localNode(env: FaultEnv, name: string, fault: string): FaultNode & { local: LocalNodeState } {
  const node = env.node(name);
  if (!node.local) {
    throw new ProdhomeError('USAGE', `fault ${fault}: ${name} is an external server (given by URL); prodhome does not own its processes or cgroups`, {
      hint: `Use it on a node prodhome runs; on ${name} only the SQL faults (connections, lock, idle-tx, slot) apply.`,
    });
  }
  return node as FaultNode & { local: LocalNodeState };
}

/** The running postmaster's pid, or a clear error. */
export function runningPostmaster(node: FaultNode & { local: LocalNodeState }, fault: string): number {
  const pid = postmasterOf(node.local);
  if (!pid) throw new ProdhomeError('LAB_NOT_UP', `fault ${fault}: ${node.name} is not running`, { hint: 'Run `prodhome up` first.' });
  return pid;
}

/** heal and active of a fault that takes a node down (kill, stop): active while it is down, healed by starting it. */
export function startsAgainOnHeal(fault: string): Pick<Fault, 'heal' | 'active'> {
  return {
    async heal(record, env) {
      const node = localNode(env, record.node, fault);
      if (postmasterOf(node.local)) return [];
      await env.startNode(node.name);
      return [`${node.name}: started again`];
    },
    active(record, env) {
      return !postmasterOf(localNode(env, record.node, fault).local);
    },
  };
}

/** Runs `fn` on one bounded connection (a frozen or dead server must not hang a fault). */
export async function onNode<T>(info: ConnectionInfo, what: string, fn: (sql: Sql) => Promise<T>): Promise<T> {
  const sql = connect(info, { connectTimeoutSeconds: 5, statementTimeoutMs: 15_000, applicationName: 'prodhome-fault' });
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('no answer within 20 s')), 20_000)));
    return await Promise.race([fn(sql), timeout]);
  } catch (e) {
    if (e instanceof ProdhomeError) throw e;
    throw new ProdhomeError('FAULT_FAILED', `${what}: ${messageOf(e)}`);
  } finally {
    clearTimeout(timer);
    void sql.end({ timeout: 1 }).catch(() => {});
  }
}
