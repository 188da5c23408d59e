import type { ReplicationConfig, TableRef } from '../config/index.js';

/**
 * End-to-end replication latency, which no sender-side view shows: the sampler writes
 * `now()` into one row per publication of `prodhome_heartbeat` on each publisher every interval;
 * the row travels with the publication (its row filter picks that publication's row, so
 * subscriptions on one subscriber never collide); on the subscriber a trigger that fires for
 * replicated rows (ENABLE ALWAYS) stamps the apply time. applied_at − beat is the true time from
 * commit to apply.
 */

export const HEARTBEAT: TableRef = { schema: 'public', name: 'prodhome_heartbeat' };

export const isHeartbeat = (t: TableRef) => t.schema === HEARTBEAT.schema && t.name === HEARTBEAT.name;

const PUBLISHER_SQL = `CREATE TABLE IF NOT EXISTS public.prodhome_heartbeat (
  publication text PRIMARY KEY,
  beat timestamptz NOT NULL
);`;

/** Run on the subscriber after its copy of the table is created. */
export const HEARTBEAT_SUBSCRIBER_SQL = [
  'ALTER TABLE public.prodhome_heartbeat ADD COLUMN IF NOT EXISTS applied_at timestamptz;',
  `CREATE OR REPLACE FUNCTION public.prodhome_heartbeat_applied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.applied_at := clock_timestamp();
  RETURN NEW;
END $$;`,
  'DROP TRIGGER IF EXISTS prodhome_heartbeat_applied ON public.prodhome_heartbeat;',
  'CREATE TRIGGER prodhome_heartbeat_applied BEFORE INSERT OR UPDATE ON public.prodhome_heartbeat FOR EACH ROW EXECUTE FUNCTION public.prodhome_heartbeat_applied();',
  '-- apply workers run as replicas, which skip ordinary triggers: this one must always fire',
  'ALTER TABLE public.prodhome_heartbeat ENABLE ALWAYS TRIGGER prodhome_heartbeat_applied;',
];

/** The statement the sampler runs on a publisher each interval. */
export const HEARTBEAT_BEAT_SQL = `INSERT INTO public.prodhome_heartbeat (publication, beat) SELECT unnest($1::text[]), now()
ON CONFLICT (publication) DO UPDATE SET beat = excluded.beat`;

/** Publications that carry a heartbeat: subscribed to, listing tables, publishing updates. */
export function heartbeatPublications(config: ReplicationConfig): Map<string, string[]> {
  const byNode = new Map<string, string[]>();
  for (const p of config.publications) {
    const subscribed = config.subscriptions.some((s) => s.publications.includes(p.name));
    if (!subscribed || p.allTables || !p.publish.includes('update') || !p.publish.includes('insert')) continue;
    byNode.set(p.node, [...(byNode.get(p.node) ?? []), p.name]);
  }
  return byNode;
}

/** The config with the heartbeat table added to each carrying publication and its publisher's schema. */
export function withHeartbeat(config: ReplicationConfig): ReplicationConfig {
  const carrying = heartbeatPublications(config);
  if (!carrying.size) return config;
  return {
    ...config,
    schema: [...config.schema, ...[...carrying.keys()].map((node) => ({ node, sql: PUBLISHER_SQL, origin: 'heartbeat (replication latency)' }))],
    publications: config.publications.map((p) =>
      carrying.get(p.node)?.includes(p.name) && !p.tables.some((t) => isHeartbeat(t.table))
        ? { ...p, tables: [...p.tables, { table: HEARTBEAT, where: `publication = '${p.name.replace(/'/g, "''")}'` }] }
        : p,
    ),
  };
}
