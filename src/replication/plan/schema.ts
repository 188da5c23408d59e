import { quoteIdent } from '../../pg/index.js';
import { qualified, tableInfo, tableKey } from '../catalog.js';
import { hash, type PlanContext, type StagePlan, type Step } from './types.js';

export async function planSchema(ctx: PlanContext): Promise<StagePlan> {
  const steps: Step[] = [];
  for (const entry of ctx.config.schema) {
    if (!ctx.nodes.has(entry.node)) continue;
    const h = hash(entry.sql);
    if (!ctx.all && ctx.applied.schema[entry.node]?.includes(h)) continue;
    steps.push({
      node: entry.node,
      kind: 'sql',
      reason: `the lab's tables (${entry.origin})`,
      show: entry.sql.trim(),
      exec: async (c) => void (await c.sql(entry.node).unsafe(entry.sql)),
      remains: `${entry.origin} ran on ${entry.node}; what it created is still there`,
      record: (a) => {
        a.schema[entry.node] = [...(a.schema[entry.node] ?? []), h];
      },
    });
  }
  for (const seed of ctx.config.seed) {
    if (!ctx.nodes.has(seed.node)) continue;
    const sql = ctx.sql(seed.node);
    const exists = await tableInfo(sql, seed.table);
    if (exists && !ctx.all) {
      const [row] = await sql.unsafe(`select exists (select from ${qualified(seed.table)}) as has_rows`);
      if (row?.has_rows) continue;
    }
    const header = seed.csv.split('\n')[0]!.trim();
    const columns = header.split(',').map((c) => quoteIdent(c.trim())).join(', ');
    const rows = seed.csv.trim().split('\n').length - 1;
    const copy = `COPY ${qualified(seed.table)} (${columns}) FROM STDIN WITH (FORMAT csv, HEADER true)`;
    steps.push({
      node: seed.node,
      kind: 'copy',
      reason: `${tableKey(seed.table)} is empty: load ${rows} rows from ${seed.origin}`,
      show: `${copy};  -- ${rows} rows`,
      exec: async (c) => {
        const stream = await c.sql(seed.node).unsafe(copy).writable();
        await new Promise<void>((resolve, reject) => {
          stream.on('error', reject);
          stream.on('finish', resolve);
          stream.end(seed.csv);
        });
      },
      undo: async (c) => void (await c.sql(seed.node).unsafe(`TRUNCATE ${qualified(seed.table)}`)),
    });
  }
  return { steps, problems: [] };
}

/** Columns a row filter mentions: identifiers outside string literals that are table columns. */
