import type { ReplicationConfig } from '../config/index.js';
import type { Sql } from '../pg/index.js';
import type { ApplyConflict } from './conflicts.js';
import type { WorkerError } from './worker-log.js';
import { slotName } from './plan/index.js';

/** One subscription as both ends see it. Lags are null when the sender is not connected. */
export interface SubscriptionStatus {
  subscription: string;
  subscriber: string;
  publisher: string;
  exists: boolean;
  enabled: boolean;
  /** streaming | catching up | syncing | disabled | down | missing | subscriber down | publisher down */
  state: string;
  workerPid: number | null;
  lagBytes: { write: number | null; flush: number | null; replay: number | null };
  lagSeconds: { write: number | null; flush: number | null; replay: number | null };
  slot: { active: boolean; retainedWalBytes: number | null } | null;
  tables: { table: string; state: string }[];
  applyErrors: number | null;
  syncErrors: number | null;
  /** The newest error of its workers in the subscriber's log: "at TIME (pid N): text — detail". */
  lastError: string | null;
  /** Its workers' errors in the subscriber's log, newest first (empty for an external subscriber). */
  errors: WorkerError[];
  /**
   * The newest heartbeat applied on the subscriber: commit-to-apply latency, and how long ago it
   * was beaten (it grows while replication stalls, or while no agent or sample beats it).
   */
  heartbeat?: { latencySeconds: number; ageSeconds: number };
  /** What to do about its state, one line; absent when it is healthy. */
  fix?: string;
  /** Which end is down and why, when one is. */
  downReason?: string;
  /** The apply conflict it is stalled on, with the ways out (filled in by the lab, which has the log). */
  conflict?: ApplyConflict;
}

const SYNC_STATES: Record<string, string> = { i: 'initialize', d: 'copying', f: 'copied', s: 'synchronized', r: 'ready' };

/**
 * Each subscription from both ends. A node in `down` is not asked: a down subscriber's row still
 * shows what the publisher keeps for it (its slot, inactive, and the WAL it retains).
 */
export async function replicationStatus(
  config: ReplicationConfig,
  sql: (node: string) => Sql,
  errorsOf: (node: string, sub: string, oid: number | null) => WorkerError[],
  down: Map<string, string> = new Map(),
): Promise<SubscriptionStatus[]> {
  return Promise.all(
    config.subscriptions.map(async (s): Promise<SubscriptionStatus> => {
      const sub = sql(s.node);
      const pub = sql(s.publisher);
      let row: { enabled: boolean; pid: number | null; oid: number } | undefined;
      let subscriberDown = down.get(s.node);
      if (!subscriberDown) {
        try {
          [row] = await sub<{ enabled: boolean; pid: number | null; oid: number }[]>`
            select s.subenabled as enabled, (select st.pid from pg_stat_subscription st where st.subid = s.oid and st.relid is null limit 1) as pid, s.oid::int as oid
            from pg_subscription s where s.subname = ${s.name}`;
        } catch (e) {
          subscriberDown = `unreachable: ${(e as Error).message}`;
        }
      }
      const base: SubscriptionStatus = {
        subscription: s.name,
        subscriber: s.node,
        publisher: s.publisher,
        exists: !!row,
        enabled: row?.enabled ?? false,
        state: 'missing',
        workerPid: row?.pid ?? null,
        lagBytes: { write: null, flush: null, replay: null },
        lagSeconds: { write: null, flush: null, replay: null },
        slot: null,
        tables: [],
        applyErrors: null,
        syncErrors: null,
        lastError: null,
        errors: [],
      };
      if (subscriberDown) {
        base.state = 'subscriber down';
        base.downReason = `${s.node} ${subscriberDown}`;
        if (down.has(s.publisher)) base.state = 'both ends down';
        else await publisherSide(pub, s.name, base).catch(() => (base.state = 'both ends down'));
        setErrors(base, errorsOf(s.node, s.name, null));
        base.fix = fixFor(base);
        return base;
      }
      if (!row) {
        base.fix = fixFor(base);
        return base;
      }
      const tables = await sub<{ t: string; s: string }[]>`
        select n.nspname || '.' || c.relname as t, r.srsubstate::text as s from pg_subscription_rel r
        join pg_class c on c.oid = r.srrelid join pg_namespace n on n.oid = c.relnamespace where r.srsubid = ${row.oid} order by 1`;
      base.tables = tables.map((t) => ({ table: t.t, state: SYNC_STATES[t.s] ?? t.s }));
      try {
        const [stats] = await sub<{ apply: number; sync: number }[]>`
          select apply_error_count::int as apply, sync_error_count::int as sync from pg_stat_subscription_stats where subname = ${s.name}`;
        base.applyErrors = stats?.apply ?? 0;
        base.syncErrors = stats?.sync ?? 0;
      } catch {
        // pg_stat_subscription_stats is Postgres 15+
      }
      try {
        // The heartbeat: the subscriber's side of the lag, in seconds, end to end.
        const [beat] = await sub<{ lag: number | null; age: number | null }[]>`
          select max(extract(epoch from h.applied_at - h.beat))::float8 as lag, min(extract(epoch from now() - h.beat))::float8 as age
          from public.prodhome_heartbeat h where h.publication = any(${s.publications})`;
        if (beat && beat.age !== null) base.heartbeat = { latencySeconds: Math.max(0, beat.lag ?? 0), ageSeconds: Math.max(0, beat.age) };
      } catch {
        // no heartbeat table on this subscriber
      }
      let senderState: string | undefined;
      try {
        if (down.has(s.publisher)) throw new Error(down.get(s.publisher));
        senderState = await publisherSide(pub, s.name, base);
      } catch (e) {
        base.state = 'publisher down';
        base.downReason = `${s.publisher} ${down.get(s.publisher) ?? `unreachable: ${(e as Error).message}`}`;
      }
      setErrors(base, errorsOf(s.node, s.name, row.oid));
      if (base.state !== 'publisher down') {
        const syncing = base.tables.some((t) => t.state !== 'ready' && t.state !== 'synchronized');
        base.state = !base.enabled ? 'disabled' : !base.workerPid ? 'down' : syncing ? 'syncing' : senderState === 'catchup' ? 'catching up' : 'streaming';
      }
      base.fix = fixFor(base);
      return base;
    }),
  );
}

/** The sender's lag and the slot, read on the publisher; returns the sender's state. */
async function publisherSide(pub: Sql, name: string, base: SubscriptionStatus): Promise<string | undefined> {
  const [rep] = await pub<{ state: string; w: string | null; f: string | null; r: string | null; wl: number | null; fl: number | null; rl: number | null }[]>`
    select state, pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn)::text as w, pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::text as f,
           pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::text as r,
           extract(epoch from write_lag)::float8 as wl, extract(epoch from flush_lag)::float8 as fl, extract(epoch from replay_lag)::float8 as rl
    from pg_stat_replication where application_name = ${name} limit 1`;
  if (rep) {
    base.lagBytes = { write: num(rep.w), flush: num(rep.f), replay: num(rep.r) };
    base.lagSeconds = { write: rep.wl ?? 0, flush: rep.fl ?? 0, replay: rep.rl ?? 0 };
  }
  const [slot] = await pub<{ active: boolean; retained: string | null }[]>`
    select active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text as retained from pg_replication_slots where slot_name = ${slotName(name)}`;
  if (slot) base.slot = { active: slot.active, retainedWalBytes: num(slot.retained) };
  return rep?.state;
}

function fixFor(s: SubscriptionStatus): string | undefined {
  switch (s.state) {
    case 'both ends down':
      return `start ${s.publisher} and ${s.subscriber} (\`prodhome up\`)`;
    case 'subscriber down':
      return `start ${s.subscriber} (\`prodhome up\`): until then ${s.publisher} keeps the WAL ${s.subscription} has not received`;
    case 'publisher down':
      return `start ${s.publisher} (\`prodhome up\`): ${s.subscription} reconnects by itself`;
    case 'disabled':
      return `prodhome replication resume ${s.subscription}`;
    case 'missing':
      return `prodhome replicate creates it again (\`prodhome replicate --dry-run\` shows the SQL first)`;
    case 'down':
      return s.errors.length
        ? `its apply worker keeps failing (last error above): fix the cause on ${s.subscriber}; it retries by itself, or \`prodhome replication resync ${s.subscription}\` copies its tables afresh`
        : `its apply worker is not running: see ${s.subscriber}'s log (\`prodhome logs ${s.subscriber}\`), and max_logical_replication_workers there`;
    default:
      return undefined;
  }
}

function setErrors(base: SubscriptionStatus, errors: WorkerError[]): void {
  base.errors = errors;
  const e = errors[0];
  if (!e) return;
  const worker = e.pid === base.workerPid ? `its worker, pid ${e.pid}` : `worker pid ${e.pid}${base.workerPid ? `, not the running one (${base.workerPid})` : ''}`;
  base.lastError = `at ${e.at} (${worker}) ${e.level}: ${e.text}${e.detail ? ` — ${e.detail}` : ''}`;
}

const num = (v: string | null) => (v === null ? null : Number(v));
