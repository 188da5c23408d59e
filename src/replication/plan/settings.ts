import { serverFacts } from '../catalog.js';
import { lit, publisherNodes, subscriberNodes, type PlanContext, type Problem, type StagePlan, type Step } from './types.js';

export async function planSettings(ctx: PlanContext): Promise<StagePlan> {
  const steps: Step[] = [];
  const problems: Problem[] = [];
  const wanted = new Map<string, Record<string, number | 'logical'>>();
  for (const node of publisherNodes(ctx.config)) {
    const subs = ctx.config.subscriptions.filter((s) => s.publisher === node).length;
    // Each subscription holds a slot and a sender; its initial sync briefly needs two more.
    wanted.set(node, { wal_level: 'logical', max_replication_slots: subs + 2, max_wal_senders: subs + 2 });
  }
  for (const node of subscriberNodes(ctx.config)) {
    const subs = ctx.config.subscriptions.filter((s) => s.node === node).length;
    const w = wanted.get(node) ?? {};
    w.max_logical_replication_workers = subs + 2;
    w.max_worker_processes = subs + 6;
    wanted.set(node, w);
  }
  for (const [node, want] of wanted) {
    if (!ctx.nodes.has(node)) continue;
    const facts = await serverFacts(ctx.sql(node));
    const changes: [string, string, string][] = [];
    for (const [name, value] of Object.entries(want)) {
      const have = facts.settings[name];
      if (have === undefined) continue;
      const ok = value === 'logical' ? have === 'logical' : Number(have) >= value;
      if (!ok) changes.push([name, have, String(value)]);
    }
    if (!changes.length) continue;
    if (!facts.isSuperuser) {
      problems.push({ node, what: `needs ${changes.map(([n, h, v]) => `${n}=${v} (now ${h})`).join(', ')} for logical replication`, fix: `ask its administrator to set them and restart it` });
      continue;
    }
    for (const [name, have, value] of changes) {
      steps.push({
        node,
        kind: 'sql',
        reason: `${name} is ${have}; logical replication needs ${value === 'logical' ? 'logical' : `at least ${value}`}`,
        show: `ALTER SYSTEM SET ${name} = ${lit(value)};`,
        exec: async (c) => void (await c.sql(node).unsafe(`ALTER SYSTEM SET ${name} = ${lit(value)}`)),
        undo: async (c) => void (await c.sql(node).unsafe(`ALTER SYSTEM RESET ${name}`)),
        record: (a) => {
          a.previousSettings[node] ??= {};
          a.previousSettings[node][name] ??= have;
        },
      });
    }
    if (ctx.nodes.get(node)!.runtime === 'external') {
      problems.push({ node, what: `${changes.map(([n]) => n).join(', ')} ${changes.length > 1 ? 'take' : 'takes'} effect only after a restart, and prodhome does not restart external servers`, fix: `set them, restart ${node} yourself, then run prodhome replicate again` });
    } else {
      steps.push({
        node,
        kind: 'restart',
        reason: `${changes.map(([n]) => n).join(', ')} take effect only at server start`,
        show: `-- prodhome restarts ${node} now (like: pg_ctl restart -m fast)`,
        exec: async (c) => c.restart(node),
      });
    }
  }
  return { steps, problems };
}
