import { processAlive, sleep } from '../runtime/index.js';
import { localNode, runningPostmaster, startsAgainOnHeal } from './common.js';
import { childrenOf, postmasterOf, signalNodeProcess } from './process-tree.js';
import type { Fault } from './types.js';

/** A crash: SIGKILL to the postmaster. Its backends notice and exit; the next start recovers. */
export const kill: Fault = {
  name: 'kill',
  summary: 'SIGKILL the postmaster (a crash); clear or `up` starts it again with crash recovery',
  targets: 'local node',
  plan(args, env) {
    const node = localNode(env, args.target, 'kill');
    const pid = runningPostmaster(node, 'kill');
    return [`${node.name}: kill -KILL ${pid} (the postmaster; its backends exit when they notice)`, `undo: start ${node.name} again (fault clear, or prodhome up): crash recovery replays its WAL`];
  },
  async inject(args, env) {
    const node = localNode(env, args.target, 'kill');
    const pid = postmasterOf(node.local);
    if (!pid) return { summary: `${node.name} was not running`, data: { pid: null } };
    const backends = childrenOf(pid);
    signalNodeProcess(node.local, pid, 'SIGKILL');
    // Wait (bounded) for the backends too: a restart refuses while they still hold shared memory.
    const deadline = Date.now() + 15_000;
    while ([pid, ...backends].some(processAlive) && Date.now() < deadline) await sleep(20);
    return { summary: `postmaster ${pid} killed (SIGKILL)`, data: { pid } };
  },
  ...startsAgainOnHeal('kill'),
};
