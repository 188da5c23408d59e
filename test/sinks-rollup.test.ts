import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, nodeConnection } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { downsampleSql, PostgresSink, type Point } from '../src/sinks/index.js';
import { portRange, tempLab, type TempLab } from './helpers.js';

// The store's rollup and retention job, on a real Postgres node: known inputs give known
// min/avg/max rows, running it again changes nothing, late points are rolled again, and
// retention drops only what is past each tier's keep.
describe('metrics store rollup and retention', () => {
  let lab: TempLab;
  const q = (text: string, params: unknown[] = []) => withConnection(nodeConnection(lab.config(), 'store'), (sql) => sql.unsafe(text, params as never[]));
  const sinkFor = (schema: string) => new PostgresSink(nodeConnection(lab.config(), 'store'), { schema, maintainEveryMs: 3_600_000, flushMs: 60_000 });
  /** Runs the job until it has done everything due (each run is bounded in time). */
  const maintain = async (sink: PostgresSink, now: number) => {
    const all = { rolled: 0, dropped: [] as string[] };
    for (let i = 0; i < 50; i++) {
      const r = await sink.maintain(now);
      all.rolled += r.rolled.length;
      all.dropped.push(...r.dropped);
      if (!r.unfinished) return all;
    }
    throw new Error('the job never finished');
  };
  beforeAll(async () => {
    lab = tempLab(`lab: rollup\n${portRange(60100)}metrics: { store: false, prometheus: false }\nnodes:\n  store: { role: metrics }\n`);
    await labUp(lab.config());
  }, 120_000);
  afterAll(() => lab.cleanup());

  const HOUR = 3_600_000;
  const MIN = 60_000;
  // Two hours ago, on an hour: inside the raw tier's 6 h, and its 10 minutes long complete.
  const t0 = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
  // Minute 0: v = 1…60; minute 1: v = 10; minute 2: v = 0 and 100 alternately. c counts 5 a second.
  const points: Point[] = [];
  for (let s = 0; s < 180; s++) {
    const v = s < 60 ? s + 1 : s < 120 ? 10 : s % 2 ? 100 : 0;
    points.push({ measurement: 'm', tags: { node: 'a' }, fields: { v, c: BigInt(1000 + 5 * s), c_rate: 5, q: 'select 1' }, time: t0 + s * 1000 });
  }

  it('rolls raw rows into 1-minute and 10-minute min/avg/max, and counters read back as rates from every tier', async () => {
    const sink = sinkFor('r1');
    await sink.open();
    await sink.write(points);
    expect(await sink.flush()).toBe(true);
    await maintain(sink, t0 + 11 * MIN);
    const oneMinute = await q('select extract(epoch from time)::bigint * 1000 as t, n, v_min, v_avg, v_max, c_min, c_max from r1.m_1m order by time');
    expect(oneMinute).toEqual([
      { t: String(t0), n: 60, v_min: 1, v_avg: 30.5, v_max: 60, c_min: '1000', c_max: '1295' },
      { t: String(t0 + MIN), n: 60, v_min: 10, v_avg: 10, v_max: 10, c_min: '1300', c_max: '1595' },
      { t: String(t0 + 2 * MIN), n: 60, v_min: 0, v_avg: 50, v_max: 100, c_min: '1600', c_max: '1895' },
    ]);
    const [tenMinutes] = await q('select n, v_min, v_avg, v_max, c_min, c_max, q from r1.m_10m');
    expect(tenMinutes).toMatchObject({ n: 180, v_min: 0, v_max: 100, c_min: '1000', c_max: '1895' });
    expect(tenMinutes!.v_avg).toBeCloseTo((30.5 + 10 + 50) / 3, 4);
    expect(await q('select t.value from r1.m_10m r join r1._text t on t.id = r.q')).toEqual([{ value: 'select 1' }]);
    // The rate is not stored; it is derived in the query, the same from raw rows and from rollups.
    expect((await q("select attname from pg_attribute where attrelid = 'r1.m_raw'::regclass and attnum > 0 and attname like 'c%'")).map((r) => r.attname)).toEqual(['c']);
    const read = (tier: 'raw' | '1m', stepS: number) =>
      q(downsampleSql({ measurement: 'm', by: ['node'], fields: ['v', 'c_rate'], combine: 'sum', schema: 'r1', stored: new Map([['v', 'double precision'], ['c', 'bigint']]) }, tier), [
        new Date(t0),
        new Date(t0 + 3 * MIN),
        `${stepS} seconds`,
        null,
      ]);
    const raw = await read('raw', 60);
    expect(raw.map((r) => r.v)).toEqual([30.5, 10, 50]);
    expect(raw.map((r) => r.c_rate)).toEqual([5, 5, 5]);
    const rolled = await read('1m', 60);
    expect(rolled.map((r) => r.v)).toEqual([30.5, 10, 50]);
    // The first minute has no minute before it in the range's lookback: no rate; then 300 a minute.
    expect(rolled.map((r) => r.c_rate)).toEqual([null, 5, 5]);
    await sink.close();
  });

  it('is idempotent, and rolls late points again', async () => {
    const sink = sinkFor('r1');
    await sink.open();
    const before = await q('select * from r1.m_1m order by time');
    const again = await maintain(sink, t0 + 11 * MIN);
    expect(again.rolled).toBe(0);
    expect(await q('select * from r1.m_1m order by time')).toEqual(before);
    // The watermark moved back: rolling those windows again gives the same rows.
    await q("update r1._rollup set done_until = done_until - interval '2 minutes'");
    await maintain(sink, t0 + 11 * MIN);
    expect(await q('select * from r1.m_1m order by time')).toEqual(before);
    // A point that arrives late (a store that was away) lands in its minute's rollup.
    await sink.write([{ measurement: 'm', tags: { node: 'a' }, fields: { v: 1000 }, time: t0 + 30_500 }]);
    await sink.flush();
    await maintain(sink, t0 + 12 * MIN);
    expect(await q('select n, v_max from r1.m_1m order by time limit 1')).toEqual([{ n: 61, v_max: 1000 }]);
    expect(await q('select n, v_max from r1.m_10m')).toEqual([{ n: 181, v_max: 1000 }]);
    await sink.close();
  });

  it('drops only what is past each keep: raw hours after 6 h once rolled up, 1-minute days after 2 days, everything after the retention', async () => {
    const sink = new PostgresSink(nodeConnection(lab.config(), 'store'), { schema: 'r2', retentionDays: 7, maintainEveryMs: 3_600_000, flushMs: 60_000 });
    await sink.open();
    const now = Math.floor(Date.now() / HOUR) * HOUR + 30 * MIN;
    const at = (ago: number, v: number): Point => ({ measurement: 'k', tags: { node: 'a' }, fields: { v }, time: now - ago });
    await sink.write([at(8 * 86_400_000, 8), at(3 * 86_400_000, 3), at(8 * HOUR, 0.3), at(HOUR, 0.04)]);
    expect(await sink.flush()).toBe(true);
    const { dropped } = await maintain(sink, now);
    const hourOf = (ms: number) => new Date(ms).toISOString().slice(0, 13).replace(/[-T]/g, '');
    const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10).replace(/-/g, '');
    expect(dropped).toEqual(
      // (what is past the retention may go before it is rolled up, when a run's time budget ends first)
      expect.arrayContaining([`k_raw_${hourOf(now - 8 * 86_400_000)}`, `k_raw_${hourOf(now - 3 * 86_400_000)}`, `k_raw_${hourOf(now - 8 * HOUR)}`, `k_1m_${dayOf(now - 3 * 86_400_000)}`]),
    );
    expect(dropped).not.toContain(`k_raw_${hourOf(now - HOUR)}`);
    // Full resolution for the last hours only; the rollups for what the raw tier let go.
    expect((await q('select v from r2.k order by time')).map((r) => r.v)).toEqual([0.04]);
    expect((await q('select v_max from r2.k_1m order by time')).map((r) => r.v_max)).toEqual([0.3, 0.04]);
    expect((await q('select v_max from r2.k_10m order by time')).map((r) => r.v_max)).toEqual([3, 0.3, 0.04]);
    await sink.close();
  });
});
