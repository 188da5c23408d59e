import { onNode } from './common.js';
import type { Fault } from './types.js';

/** An inactive replication slot: the server keeps every WAL segment since it — the disk fills. */
export const SLOT_NAME = 'prodhome_fault_slot';

export const slot: Fault = {
  name: 'slot',
  summary: 'an inactive logical replication slot retaining WAL (the disk-filling incident)',
  targets: 'node',
  async plan(args, env) {
    const node = env.node(args.target);
    const logical = await isLogical(node.connection, node.name);
    return [
      `${node.name}: ${logical ? `SELECT pg_create_logical_replication_slot('${SLOT_NAME}', 'pgoutput')` : `SELECT pg_create_physical_replication_slot('${SLOT_NAME}', true) -- wal_level is not logical here, so a physical slot (it retains WAL the same way)`}`,
      `undo: SELECT pg_drop_replication_slot('${SLOT_NAME}')`,
    ];
  },
  async inject(args, env) {
    const node = env.node(args.target);
    const logical = await isLogical(node.connection, node.name);
    await onNode(node.connection, `${node.name}: creating slot ${SLOT_NAME}`, async (sql) => {
      const [exists] = await sql`select 1 from pg_replication_slots where slot_name = ${SLOT_NAME}`;
      if (exists) return;
      if (logical) await sql`select pg_create_logical_replication_slot(${SLOT_NAME}, 'pgoutput')`;
      else await sql`select pg_create_physical_replication_slot(${SLOT_NAME}, true)`;
    });
    return { summary: `inactive ${logical ? 'logical' : 'physical'} slot ${SLOT_NAME} retaining WAL`, data: { slot: SLOT_NAME, logical } };
  },
  async heal(record, env) {
    const node = env.node(record.node);
    const dropped = await onNode(node.connection, `${node.name}: dropping slot ${SLOT_NAME}`, async (sql) => {
      const rows = await sql`select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = ${SLOT_NAME}`;
      return rows.length > 0;
    });
    return dropped ? [`${node.name}: SELECT pg_drop_replication_slot('${SLOT_NAME}');`] : [];
  },
  async active(record, env) {
    const node = env.node(record.node);
    try {
      return await onNode(node.connection, `${node.name}: slot`, async (sql) => (await sql`select 1 from pg_replication_slots where slot_name = ${SLOT_NAME}`).length > 0);
    } catch {
      return true; // a node that is away keeps its slot
    }
  },
};

async function isLogical(info: Parameters<typeof onNode>[0], name: string): Promise<boolean> {
  return onNode(info, `${name}: wal_level`, async (sql) => (await sql<{ w: string }[]>`select current_setting('wal_level') as w`)[0]!.w === 'logical');
}
