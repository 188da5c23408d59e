import { holdFor, healHolder, holderActive, injectHolder } from './holding.js';
import type { Fault } from './types.js';

/** An idle-in-transaction session holding an xid and a snapshot: vacuum cannot clean behind it. */
export const idleTx: Fault = {
  name: 'idle-tx',
  summary: 'an idle-in-transaction session holding back vacuum: dead tuples grow',
  targets: 'node',
  plan(args, env) {
    const node = env.node(args.target);
    return [`${node.name}: BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT txid_current(); -- then idle in transaction ${holdFor(args)}`, 'undo: end the holder process (ROLLBACK)'];
  },
  inject(args, env) {
    return injectHolder({ kind: 'idle-tx' }, args, env, () => `a session idle in transaction (holding its xid and snapshot)${args.forMs ? ` for ${args.forMs / 1000} s` : ''}`);
  },
  heal: (record) => healHolder(record),
  active: (record) => holderActive(record),
};
