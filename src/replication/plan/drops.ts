import { quoteIdent } from '../../pg/index.js';
import type { PlanContext, StagePlan, Step } from './types.js';

export async function planDrops(ctx: PlanContext): Promise<StagePlan> {
  const steps: Step[] = [];
  if (ctx.all) return { steps, problems: [] };
  for (const [name, sub] of Object.entries(ctx.applied.subscriptions)) {
    if (ctx.config.subscriptions.some((s) => s.name === name)) continue;
    if (!ctx.nodes.has(sub.node)) continue;
    steps.push({
      node: sub.node,
      kind: 'sql',
      reason: `subscription ${name} is no longer in the config (its slot on ${sub.publisher} goes too)`,
      show: `DROP SUBSCRIPTION IF EXISTS ${quoteIdent(name)};`,
      exec: async (c) => void (await c.sql(sub.node).unsafe(`DROP SUBSCRIPTION IF EXISTS ${quoteIdent(name)}`)),
      remains: `subscription ${name} was dropped on ${sub.node}`,
      record: (a) => delete a.subscriptions[name],
    });
  }
  for (const [name, pub] of Object.entries(ctx.applied.publications)) {
    if (ctx.config.publications.some((p) => p.name === name) || !ctx.nodes.has(pub.node)) continue;
    steps.push({
      node: pub.node,
      kind: 'sql',
      reason: `publication ${name} is no longer in the config`,
      show: `DROP PUBLICATION IF EXISTS ${quoteIdent(name)};`,
      exec: async (c) => void (await c.sql(pub.node).unsafe(`DROP PUBLICATION IF EXISTS ${quoteIdent(name)}`)),
      remains: `publication ${name} was dropped on ${pub.node}`,
      record: (a) => delete a.publications[name],
    });
  }
  return { steps, problems: [] };
}
