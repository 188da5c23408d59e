import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, nodeConnection } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { runPgbench, runPrepared, prepareLoad, type LoadOptions } from '../src/workload/index.js';
import { PreciseTimers } from '../src/workload/timers.js';
import { requirePgbench, portRange, tempLab, type TempLab } from './helpers.js';

// \sleep and -R to the microsecond: the thread's wake-ups (PreciseTimers) keep their order and
// never come early, and a sub-millisecond \sleep adds to a transaction what it adds under pgbench.

const now = () => performance.timeOrigin + performance.now();

describe('PreciseTimers: the wake-ups of one thread', () => {
  it('wakes each waiter at or after its time, in time order, sub-millisecond ones included', async () => {
    for (const idle of [true, false]) {
      const timers = new PreciseTimers(now, () => idle);
      const woke: { name: string; late: number }[] = [];
      const t0 = now();
      const at = { a: t0 + 0.3, b: t0 + 0.1, c: t0 + 2.5, d: t0 + 0.2 };
      await Promise.all(Object.entries(at).map(([name, t]) => timers.until(t).then(() => woke.push({ name, late: now() - t }))));
      timers.close();
      expect(woke.map((w) => w.name)).toEqual(['b', 'd', 'a', 'c']);
      for (const w of woke) expect(w.late).toBeGreaterThanOrEqual(0); // never early (how late depends on the machine)
    }
  });

  it('a 100 µs wait is waited, not skipped (setTimeout has whole milliseconds only)', async () => {
    const timers = new PreciseTimers(now, () => true);
    const t0 = now();
    for (let i = 0; i < 20; i++) await timers.until(now() + 0.1);
    timers.close();
    expect(now() - t0).toBeGreaterThanOrEqual(20 * 0.1);
  });

  it('wakeAll (a run stopped) wakes every waiter at once; close leaves nothing behind', async () => {
    const timers = new PreciseTimers(now);
    const waits = [timers.until(now() + 60_000), timers.until(now() + 30_000), timers.until(now() + 0.5)];
    expect(timers.pending).toBe(3);
    const t0 = now();
    timers.wakeAll();
    await Promise.all(waits);
    expect(now() - t0).toBeLessThan(1000);
    expect(timers.pending).toBe(0);
    timers.close();
  });
});

const PGBENCH = requirePgbench('the \\sleep comparison with pgbench');

describe.skipIf(!PGBENCH)('\\sleep under a millisecond, against pgbench', () => {
  let lab: TempLab;
  beforeAll(async () => {
    lab = tempLab(`lab: sleeptest\n${portRange(59700)}nodes:\n  publisher:\n    role: publisher\n`);
    await labUp(lab.config());
  });
  afterAll(() => lab?.cleanup());

  // Timed by the server: each transaction stamps clock_timestamp() three times, with no pause
  // between the first two and the \sleep before the third, so (t3 - t2) - (t2 - t1) is what the
  // sleep added, measured under the same conditions in the same transaction. Before, a 100 µs
  // sleep added nothing (it was skipped) and a 500 µs one a whole millisecond (setTimeout).
  const q = <T>(text: string) => withConnection(nodeConnection(lab.config(), 'publisher'), (sql) => sql.unsafe(text)) as Promise<T[]>;
  const added = async (table: string) =>
    (
      await q<{ ms: number }>(
        `select percentile_cont(0.5) within group (order by extract(epoch from (t3 - t2) - (t2 - t1)) * 1000) as ms
           from (select k, max(t) filter (where step = 1) t1, max(t) filter (where step = 2) t2, max(t) filter (where step = 3) t3 from ${table} group by k) x`,
      )
    )[0]!.ms;

  it.each([100, 500])('\\sleep %i us adds what it says, within 0.35 ms of what it adds under pgbench (server-side timestamps)', async (us) => {
    const median: Record<string, number> = {};
    for (const engine of ['pgbench', 'prodhome'] as const) {
      const table = `gaps_${engine}_${us}`;
      await q(`create table ${table} (k bigint, step int, t timestamptz)`);
      const file = path.join(lab.dir, `${table}.sql`);
      const stamp = (step: number) => `INSERT INTO ${table} VALUES (:k, ${step}, clock_timestamp());`;
      fs.writeFileSync(file, ['\\set k random(1, 9000000000000000)', stamp(1), stamp(2), `\\sleep ${us} us`, stamp(3), ''].join('\n'));
      const options: LoadOptions = { workload: 'custom', options: { file }, node: 'publisher', connection: nodeConnection(lab.config(), 'publisher'), clients: 1, transactions: 500, engine };
      const prepared = await prepareLoad(options);
      const s = engine === 'prodhome' ? await runPrepared(prepared, options) : await runPgbench(prepared, options, PGBENCH!);
      expect(s.transactions).toBe(500);
      median[engine] = await added(table);
    }
    const said = `median time the sleep added: prodhome ${median.prodhome!.toFixed(3)} ms, pgbench ${median.pgbench!.toFixed(3)} ms`;
    console.log(`\\sleep ${us} us: ${said}`);
    expect(median.prodhome!, said).toBeGreaterThanOrEqual((0.8 * us) / 1000);
    expect(median.prodhome!, said).toBeLessThan(median.pgbench! + 0.35);
  });
});
