import { runtimes } from '../runtime/index.js';
import { localNode, runningPostmaster, startsAgainOnHeal } from './common.js';
import type { Fault } from './types.js';

/** A fast shutdown, through the runtime's own stop (clients disconnected, checkpoint, exit). */
export const stop: Fault = {
  name: 'stop',
  summary: 'fast shutdown of the node; clear or `up` starts it again',
  targets: 'local node',
  plan(args, env) {
    const node = localNode(env, args.target, 'stop');
    const pid = runningPostmaster(node, 'stop');
    return [`${node.name}: fast shutdown (SIGINT to postmaster ${pid}: clients disconnected, checkpoint, exit)`, `undo: start ${node.name} again (fault clear, or prodhome up)`];
  },
  async inject(args, env) {
    const node = localNode(env, args.target, 'stop');
    const down = await runtimes.local.down(node.name, node.local);
    const summary = down.result === 'stopped' ? 'stopped (fast shutdown)' : down.result === 'not running' ? `${node.name} was not running` : `${node.name} left alone: ${down.note ?? 'its process could not be verified'}`;
    return { summary, data: {} };
  },
  ...startsAgainOnHeal('stop'),
};
