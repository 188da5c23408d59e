import { localNode, runningPostmaster } from './common.js';
import { freezeTree, isFrozen, thawTree } from './process-tree.js';
import type { Fault } from './types.js';

/**
 * A hung server: SIGSTOP to the postmaster and every process it forked. Connections are still
 * accepted by the kernel but nothing answers. `fault thaw NODE`, `fault clear` and `up` continue it.
 */
export const freeze: Fault = {
  name: 'freeze',
  summary: 'SIGSTOP the whole process tree (a hung server); thaw, clear or `up` continues it',
  targets: 'local node',
  plan(args, env) {
    const node = localNode(env, args.target, 'freeze');
    const pid = runningPostmaster(node, 'freeze');
    return [`${node.name}: kill -STOP ${pid} (the postmaster), then every backend and worker it forked`, `undo: kill -CONT each of them (fault thaw ${node.name}, fault clear, or prodhome up)`];
  },
  async inject(args, env) {
    const node = localNode(env, args.target, 'freeze');
    runningPostmaster(node, 'freeze');
    const pids = freezeTree(node.local);
    return { summary: `${pids.length} processes stopped (SIGSTOP)`, data: { postmaster: pids[0] ?? null, processes: pids.length } };
  },
  async heal(record, env) {
    const node = localNode(env, record.node, 'freeze');
    const stopped = thawTree(node.local);
    return stopped ? [`${node.name}: ${stopped} processes continued (SIGCONT)`] : [];
  },
  active(record, env) {
    return isFrozen(localNode(env, record.node, 'freeze').local);
  },
};
