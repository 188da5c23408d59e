import { localNode, runningPostmaster } from './common.js';
import type { Fault } from './types.js';

/** A fast stop and a start: over when the command returns (annotated, never listed as active). */
export const restart: Fault = {
  name: 'restart',
  summary: 'fast stop and start of the node (over when the command returns)',
  targets: 'local node',
  instant: true,
  plan(args, env) {
    const node = localNode(env, args.target, 'restart');
    const pid = runningPostmaster(node, 'restart');
    return [`${node.name}: fast shutdown (postmaster ${pid}), then start it again with the same port, settings and caps`];
  },
  async inject(args, env) {
    const node = localNode(env, args.target, 'restart');
    await env.restartNode(node.name);
    return { summary: 'restarted', data: {} };
  },
  async heal() {
    return [];
  },
  active() {
    return false;
  },
};
