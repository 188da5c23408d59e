import { holdFor, healHolder, holderActive, injectHolder, requirePositive } from './holding.js';
import type { Fault } from './types.js';

/** Takes connection slots and keeps them: the next client meets 53300 "too many clients". */
export const connections: Fault = {
  name: 'connections',
  summary: 'hold connections (all free slots, or --hold N): the next client meets 53300 too many clients',
  targets: 'node',
  plan(args, env) {
    const node = env.node(args.target);
    requirePositive(args.hold, '--hold');
    return [
      `${node.name}: a holder process opens ${args.hold ?? 'as many connections as the server gives (until 53300)'} as ${node.connection.user} and keeps them idle ${holdFor(args)}`,
      'undo: end the holder process (its sessions close)',
    ];
  },
  inject(args, env) {
    return injectHolder({ kind: 'connections', hold: args.hold }, args, env, (held, full) =>
      `holding ${held} connections${full ? ' (the server refused more: the next client meets 53300)' : ''}${args.forMs ? ` for ${args.forMs / 1000} s` : ''}`,
    );
  },
  heal: (record) => healHolder(record),
  active: (record) => holderActive(record),
};
