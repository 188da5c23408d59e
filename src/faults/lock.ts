import { parseTableRef } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { quoteIdent } from '../pg/index.js';
import { onNode } from './common.js';
import { holdFor, healHolder, holderActive, injectHolder } from './holding.js';
import type { FaultArgs, FaultEnv, Fault } from './types.js';

/** An ACCESS EXCLUSIVE lock held open: readers and writers of the table queue behind it. */
export const lock: Fault = {
  name: 'lock',
  summary: 'hold an ACCESS EXCLUSIVE lock on a table: every reader and writer queues',
  targets: 'node',
  async plan(args, env) {
    const table = await existingTable(args, env);
    return [`${args.target}: BEGIN; LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE; -- held by a holder process ${holdFor(args)}`, 'undo: end the holder process (ROLLBACK: the lock goes)'];
  },
  async inject(args, env) {
    const table = await existingTable(args, env);
    return injectHolder({ kind: 'lock', table }, args, env, () => `ACCESS EXCLUSIVE lock on ${table}${args.forMs ? ` for ${args.forMs / 1000} s` : ''}`);
  },
  heal: (record) => healHolder(record),
  active: (record) => holderActive(record),
};

async function existingTable(args: FaultArgs, env: FaultEnv): Promise<string> {
  if (!args.table) throw new ProdhomeError('USAGE', 'fault lock NODE TABLE: name the table to lock');
  const ref = parseTableRef(args.table);
  const table = `${quoteIdent(ref.schema)}.${quoteIdent(ref.name)}`;
  const node = env.node(args.target);
  const [row] = await onNode(node.connection, `${node.name}: looking up ${args.table}`, (sql) => sql<{ t: string | null }[]>`select to_regclass(${table})::text as t`);
  if (!row?.t) throw new ProdhomeError('TABLE_NOT_FOUND', `fault lock: there is no table ${args.table} on ${node.name}`, { hint: 'Name a table that exists there (schema.table for one outside public).' });
  return table;
}
