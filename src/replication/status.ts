import type { ReplicationConfig } from '../config/index.js';
import type { Sql } from '../pg/index.js';
import type { ApplyConflict } from './conflicts.js';
import { slotName } from './plan/index.js';

/** One subscription as both ends see it. Lags are null when the sender is not connected. */
export interface SubscriptionStatus {
  subscription: string;
  subscriber: string;
  publisher: string;
  exists: boolean;
  enabled: boolean;
  /** streaming | catching up | syncing | disabled | down | missing */
  state: string;
  workerPid: number | null;
  lagBytes: { write: number | null; flush: number | null; replay: number | null };
  lagSeconds: { write: number | null; flush: number | null; replay: number | null };
  slot: { active: boolean; retainedWalBytes: number | null } | null;
  tables: { table: string; state: string }[];
  applyErrors: number | null;
  syncErrors: number | null;
  lastError: string | null;
  /** The apply conflict it is stalled on, with the ways out (filled in by the lab, which has the log). */
  conflict?: ApplyConflict;
}

const SYNC_STATES: Record<string, string> = { i: 'initialize', d: 'copying', f: 'copied', s: 'synchronized', r: 'ready' };

export async function replicationStatus(config: ReplicationConfig, sql: (node: string) => Sql, lastErrorOf: (node: string, sub: string) => string | null): Promise<SubscriptionStatus[]> {
  return Promise.all(
    config.subscriptions.map(async (s): Promise<SubscriptionStatus> => {
      const sub = sql(s.node);
      const pub = sql(s.publisher);
      const [row] = await sub<{ enabled: boolean; pid: number | null; oid: number }[]>`
        select s.subenabled as enabled, (select st.pid from pg_stat_subscription st where st.subid = s.oid and st.relid is null limit 1) as pid, s.oid::int as oid
        from pg_subscription s where s.subname = ${s.name}`;
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
      };
      if (!row) return base;
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
      let senderState: string | undefined;
      try {
        const [rep] = await pub<{ state: string; w: string | null; f: string | null; r: string | null; wl: number | null; fl: number | null; rl: number | null }[]>`
          select state, pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn)::text as w, pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::text as f,
                 pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::text as r,
                 extract(epoch from write_lag)::float8 as wl, extract(epoch from flush_lag)::float8 as fl, extract(epoch from replay_lag)::float8 as rl
          from pg_stat_replication where application_name = ${s.name} limit 1`;
        if (rep) {
          senderState = rep.state;
          base.lagBytes = { write: num(rep.w), flush: num(rep.f), replay: num(rep.r) };
          base.lagSeconds = { write: rep.wl ?? 0, flush: rep.fl ?? 0, replay: rep.rl ?? 0 };
        }
        const [slot] = await pub<{ active: boolean; retained: string | null }[]>`
          select active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text as retained from pg_replication_slots where slot_name = ${slotName(s.name)}`;
        if (slot) base.slot = { active: slot.active, retainedWalBytes: num(slot.retained) };
      } catch {
        base.state = 'publisher down';
      }
      base.lastError = lastErrorOf(s.node, s.name);
      if (base.state !== 'publisher down') {
        const syncing = base.tables.some((t) => t.state !== 'ready' && t.state !== 'synchronized');
        base.state = !base.enabled ? 'disabled' : !base.workerPid ? 'down' : syncing ? 'syncing' : senderState === 'catchup' ? 'catching up' : 'streaming';
      }
      return base;
    }),
  );
}

const num = (v: string | null) => (v === null ? null : Number(v));
