import { ProdhomeError } from '../../errors.js';
import type { Sql } from '../../pg/index.js';
import { sharedScript } from '../script.js';
import { PgbenchRandom } from '../random.js';
import { scriptSource } from '../script-source.js';
import type { Workload } from '../types.js';

/** pgbench's built-in "tpcb-like" script, word for word (pgbench.c, Postgres 15). */
export const TPCB_SCRIPT = `\\set aid random(1, 100000 * :scale)
\\set bid random(1, 1 * :scale)
\\set tid random(1, 10 * :scale)
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
`;

/** The scale as pgbench reads it: count(*) of pgbench_branches; undefined when the table is missing. */
export async function pgbenchScale(sql: Sql): Promise<number | undefined> {
  try {
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from pgbench_branches`;
    return row!.n;
  } catch (e) {
    if ((e as { code?: string }).code === '42P01') return undefined;
    throw e;
  }
}

/** TPC-B (sort of), as pgbench runs it by default; the tables come from `prodhome seed pgbench` or `pgbench -i`. */
export const tpcb: Workload<{ scale: number }> = {
  name: 'tpcb',
  description: "pgbench's default TPC-B-like transaction on the pgbench_* tables",
  takes: [],
  async prepare({ sql, node }) {
    const scale = await pgbenchScale(sql);
    const hint = 'Create the tables: prodhome seed pgbench --scale 1 (or pgbench -i -s 1).';
    if (scale === undefined) throw new ProdhomeError('WORKLOAD_SETUP', `${node}: table "pgbench_branches" does not exist`, { hint });
    if (scale === 0) throw new ProdhomeError('WORKLOAD_SETUP', `${node}: pgbench_branches is empty, so the scale is 0`, { hint });
    return { scale };
  },
  client({ scale }, { clientId, clients, seed }) {
    return scriptSource(sharedScript(TPCB_SCRIPT, '<builtin: tpcb>'), { scale, clientId, seed, defaultSeed: PgbenchRandom.defaultSeed(seed, clients) }, PgbenchRandom.forClient(seed, clientId));
  },
  plan: ({ scale }) => ({ summary: `TPC-B (sort of), scale ${scale}`, script: TPCB_SCRIPT }),
  pgbench: () => ['-b', 'tpcb-like'],
};
