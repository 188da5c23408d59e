import { quoteIdent, type Sql } from '../pg/index.js';
import { TIER_SECONDS, columnsOf, ensureRollupTables, isTextId, measurementsOf, partitionBounds, partitionStart, tierName, tierTable, type Tier } from './store-layout.js';

/**
 * The store's maintenance job: rolls full-resolution rows up into 1-minute min/avg/max rows and
 * those into 10-minute ones, then drops partitions past each tier's keep — a raw hour only once
 * it is rolled up, a 1-minute day only once the 10-minute tier has it.
 *
 * Small and safe to repeat: each window is recomputed whole (DELETE + INSERT … SELECT in one
 * transaction with its watermark in `_rollup`), so running it twice, or after a crash, gives the
 * same rows. Bounded: at most `chunkMs` per measurement and tier per window, and no new window
 * once `budgetMs` has passed; the rest waits for the next run. Points that arrive late (a store
 * that was away) move the watermark back (`late`), so their minutes are rolled again.
 */

export interface MaintenanceOptions {
  schema: string;
  now: number;
  rawKeepMs: number;
  oneMinuteKeepMs: number;
  retentionMs: number;
  /** Per measurement, the oldest point written since the last run. */
  late?: Map<string, number>;
  /** Rows newer than now − settleMs are not rolled up yet (a sample may still be arriving). */
  settleMs?: number;
  budgetMs?: number;
  /** Per measurement, the raw columns whose rollup tables and partitions are known made (kept by the caller between runs: fewer round trips). */
  made?: Map<string, string>;
}

export interface MaintenanceReport {
  /** windows rolled up: measurement, tier, from, to (ms) */
  rolled: { measurement: string; tier: Tier; from: number; to: number }[];
  /** partitions dropped */
  dropped: string[];
  /** true when the budget ran out before everything due was done */
  unfinished: boolean;
}

const CHUNK_MS: Record<'1m' | '10m', number> = { '1m': 3_600_000, '10m': 12 * 3_600_000 };
const SOURCE: Record<'1m' | '10m', Tier> = { '1m': 'raw', '10m': '1m' };

export async function maintainStore(sql: Sql, o: MaintenanceOptions): Promise<MaintenanceReport> {
  const started = Date.now();
  const budget = o.budgetMs ?? 5000;
  const settle = o.settleMs ?? 15_000;
  const report: MaintenanceReport = { rolled: [], dropped: [], unfinished: false };
  const s = quoteIdent(o.schema);
  // One runner at a time per store (an agent and a `prodhome sample` may both write it).
  const [lock] = await sql<{ ok: boolean }[]>`select pg_try_advisory_lock(hashtext(${`prodhome-rollup:${o.schema}`})) as ok`;
  if (!lock!.ok) return report;
  try {
    for (const [measurement, oldest] of o.late ?? []) {
      // Late points: roll their minutes (and ten minutes) again — while their raw hour is still kept.
      if (oldest < o.now - o.rawKeepMs) continue;
      await sql.unsafe(
        `UPDATE ${s}._rollup SET done_until = least(done_until, date_bin(make_interval(secs => CASE tier WHEN '1m' THEN 60 ELSE 600 END), $2::timestamptz, timestamptz '1970-01-01 00:00:00+00'))
         WHERE measurement = $1`,
        [measurement, new Date(oldest)] as never[],
      );
    }
    const measurements = await measurementsOf(sql, o.schema);
    const done = new Map<string, number>();
    for (const r of await sql<{ measurement: string; tier: string; done_until: Date }[]>`select measurement, tier, done_until from ${sql(o.schema)}._rollup`) {
      done.set(`${r.measurement}/${r.tier}`, r.done_until.getTime());
    }
    for (const tier of ['1m', '10m'] as const) {
      const width = TIER_SECONDS[tier] * 1000;
      for (const m of measurements) {
        const source = SOURCE[tier];
        let from = done.get(`${m}/${tier}`) ?? (await oldestPartition(sql, o.schema, tierName(m, source)));
        if (from === undefined) continue;
        from = Math.floor(from / width) * width;
        // The 10-minute tier reads the 1-minute one: only as far as that is done.
        const ready = tier === '10m' ? Math.min(done.get(`${m}/1m`) ?? 0, o.now - settle) : o.now - settle;
        const until = Math.floor(ready / width) * width;
        while (from < until) {
          if (Date.now() - started > budget) {
            report.unfinished = true;
            return await finish();
          }
          const to = Math.min(until, from + CHUNK_MS[tier]);
          await rollWindow(sql, o.schema, m, tier, from, to, o.made ?? new Map());
          report.rolled.push({ measurement: m, tier, from, to });
          done.set(`${m}/${tier}`, to);
          from = to;
        }
      }
    }
    return await finish();

    async function finish(): Promise<MaintenanceReport> {
      report.dropped = await dropExpired(sql, o, measurements, done);
      return report;
    }
  } finally {
    await sql`select pg_advisory_unlock(hashtext(${`prodhome-rollup:${o.schema}`}))`.catch(() => {});
  }
}

/** The start of a table's oldest partition, or undefined when it has none. */
async function oldestPartition(sql: Sql, schema: string, table: string): Promise<number | undefined> {
  const parts = await partitionsOf(sql, schema, table);
  return parts.length ? Math.min(...parts.map((p) => p.from)) : undefined;
}

async function partitionsOf(sql: Sql, schema: string, table: string): Promise<{ name: string; from: number; to: number }[]> {
  const rows = await sql<{ name: string }[]>`
    select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = to_regclass(${`${quoteIdent(schema)}.${quoteIdent(table)}`})`;
  const out: { name: string; from: number; to: number }[] = [];
  for (const r of rows) {
    const bounds = partitionStart(r.name.slice(table.length + 1));
    if (r.name.startsWith(`${table}_`) && bounds) out.push({ name: r.name, ...bounds });
  }
  return out;
}

/**
 * One window of one measurement into one tier, recomputed whole: the tier's table gets the
 * source's columns (min/avg/max per number, the last id per text) and the partitions the window
 * needs, then DELETE + INSERT … SELECT and the watermark, in one transaction.
 */
async function rollWindow(sql: Sql, schema: string, measurement: string, tier: '1m' | '10m', from: number, to: number, made: Map<string, string>): Promise<void> {
  const source = SOURCE[tier];
  const target = tierTable(schema, measurement, tier);
  const src = tierTable(schema, measurement, source);
  const s = quoteIdent(schema);
  // The raw fields, and the tiers' tables with their columns (the writer makes them; here in case
  // a column came from another writer).
  const raw = await columnsOf(sql, schema, tierName(measurement, 'raw'));
  const shape = [...raw].join();
  if (made.get(measurement) !== shape) {
    await ensureRollupTables(sql, schema, measurement, raw);
    made.set(measurement, shape);
  }
  const cols: string[] = [];
  const exprs: string[] = [];
  for (const [f, type] of raw) {
    const q = (suffix: string) => quoteIdent(`${f}${suffix}`);
    if (isTextId(type)) {
      cols.push(quoteIdent(f));
      exprs.push(`max(${quoteIdent(f)})`);
      continue;
    }
    cols.push(q('_min'), q('_avg'), q('_max'));
    if (source === 'raw') {
      const v = type === 'boolean' ? `${quoteIdent(f)}::int` : quoteIdent(f);
      exprs.push(`min(${v})`, `avg(${v})`, `max(${v})`);
    } else {
      exprs.push(`min(${q('_min')})`, `sum(${q('_avg')} * n) / nullif(sum(n) filter (where ${q('_avg')} is not null), 0)`, `max(${q('_max')})`);
    }
  }
  for (let day = Math.floor(from / 86_400_000) * 86_400_000; day < to; day += 86_400_000) {
    const part = partitionBounds(tier, day);
    const key = `${tierName(measurement, tier)}_${part.name}`;
    if (made.has(key)) continue;
    made.set(key, '');
    await sql.unsafe(
      `CREATE TABLE IF NOT EXISTS ${s}.${quoteIdent(`${tierName(measurement, tier)}_${part.name}`)} PARTITION OF ${target} FOR VALUES FROM ('${part.from.toISOString()}') TO ('${part.to.toISOString()}')`,
    );
  }
  const bucket = `date_bin('${TIER_SECONDS[tier]} seconds', time, timestamptz '1970-01-01 00:00:00+00')`;
  const count = source === 'raw' ? 'count(*)' : 'sum(n)';
  await sql.begin(async (tx) => {
    await tx.unsafe("SET LOCAL statement_timeout = '60s'");
    await tx.unsafe(`DELETE FROM ${target} WHERE time >= $1 AND time < $2`, [new Date(from), new Date(to)] as never[]);
    await tx.unsafe(
      `INSERT INTO ${target} (time, sid, n${cols.map((c) => `, ${c}`).join('')})
       SELECT ${bucket}, sid, least(${count}, 32767)${exprs.map((e) => `, ${e}`).join('')}
       FROM ${src} WHERE time >= $1 AND time < $2 GROUP BY 1, 2`,
      [new Date(from), new Date(to)] as never[],
    );
    await tx.unsafe(
      `INSERT INTO ${s}._rollup (measurement, tier, done_until) VALUES ($1, $2, $3)
       ON CONFLICT (measurement, tier) DO UPDATE SET done_until = excluded.done_until`,
      [measurement, tier, new Date(to)] as never[],
    );
  });
}

/**
 * Drops partitions past their tier's keep: a raw hour older than rawKeep once the 1-minute tier
 * has it, a 1-minute day older than its keep once the 10-minute tier has it, anything older
 * than the retention. Returns the dropped partitions' names.
 */
async function dropExpired(sql: Sql, o: MaintenanceOptions, measurements: string[], done: Map<string, number>): Promise<string[]> {
  const dropped: string[] = [];
  const retention = o.now - o.retentionMs;
  for (const m of measurements) {
    const plan: [Tier, number][] = [
      ['raw', Math.max(Math.min(o.now - o.rawKeepMs, done.get(`${m}/1m`) ?? -Infinity), retention)],
      ['1m', Math.max(Math.min(o.now - o.oneMinuteKeepMs, done.get(`${m}/10m`) ?? -Infinity), retention)],
      ['10m', retention],
    ];
    for (const [tier, before] of plan) {
      for (const p of await partitionsOf(sql, o.schema, tierName(m, tier))) {
        if (p.to > before) continue;
        await sql.unsafe(`DROP TABLE IF EXISTS ${quoteIdent(o.schema)}.${quoteIdent(p.name)}`);
        o.made?.delete(p.name);
        dropped.push(p.name);
      }
    }
  }
  return dropped;
}
