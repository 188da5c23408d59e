import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, nodeConnection, readState } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { processAlive } from '../src/runtime/index.js';
import { PostgresSink, type Point } from '../src/sinks/index.js';
import { tempLab, waitFor, type TempLab } from './helpers.js';

// The default metrics store: a real Postgres node of a lab, written with COPY into daily partitions.
describe('postgres sink', () => {
  let lab: TempLab;
  const q = (text: string) => withConnection(nodeConnection(lab.config(), 'store'), (sql) => sql.unsafe(text));
  beforeAll(async () => {
    lab = tempLab('lab: pgsink\nports: { from: 56820, to: 56829 }\nmetrics: { store: false, prometheus: false }\nnodes:\n  store: { role: metrics }\n');
    await labUp(lab.config());
  });
  afterAll(() => lab.cleanup());

  const day = Date.UTC(2026, 10, 28, 12);
  it('creates one table per measurement, a column per tag and field, and stores values exactly', async () => {
    const sink = new PostgresSink(nodeConnection(lab.config(), 'store'), { schema: 'm1' });
    await sink.open();
    const points: Point[] = [
      { measurement: 'pg_demo', tags: { node: 'a', note: 'tab\there, new\nline \\ back' }, fields: { value: 1.5, count: 7n, ok: true }, time: day },
      { measurement: 'pg_demo', tags: { node: 'b', note: '' }, fields: { value: 2, count: null, extra: 'text' }, time: day + 1 },
      { measurement: 'other', tags: {}, fields: { x: -1 }, time: day + 2 },
    ];
    await sink.write(points);
    expect(await sink.flush()).toBe(true);
    await sink.close();
    expect(sink.stats).toMatchObject({ written: 3, dropped: 0, buffered: 0 });
    expect(await q('select node, note, value, count, ok, extra, time from m1.pg_demo order by node')).toEqual([
      { node: 'a', note: 'tab\there, new\nline \\ back', value: 1.5, count: '7', ok: true, extra: null, time: new Date(day) },
      { node: 'b', note: '', value: 2, count: null, ok: null, extra: 'text', time: new Date(day + 1) },
    ]);
    const types = await q("select attname, format_type(atttypid, atttypmod) as type from pg_attribute where attrelid = 'm1.pg_demo'::regclass and attnum > 0 order by attnum");
    expect(types.map((r) => `${r.attname}:${r.type}`)).toEqual(['time:timestamp with time zone', 'node:text', 'note:text', 'value:double precision', 'count:bigint', 'ok:boolean', 'extra:text']);
    expect(await q("select relname from pg_class where relname like 'pg_demo%' and relkind = 'r'")).toEqual([{ relname: 'pg_demo_20261128' }]);
  });

  it('retention drops whole day partitions older than the retention', async () => {
    const sink = new PostgresSink(nodeConnection(lab.config(), 'store'), { schema: 'm2', retentionDays: 7 });
    await sink.open();
    const at = (daysAgo: number): Point => ({ measurement: 'pg_old', tags: { node: 'a' }, fields: { v: daysAgo }, time: day - daysAgo * 86_400_000 });
    await sink.write([at(10), at(8), at(6), at(0)]);
    await sink.flush();
    expect((await sink.dropExpired(day)).sort()).toEqual(['pg_old_20261118', 'pg_old_20261120']);
    await sink.close();
    expect((await q('select v from m2.pg_old order by v')).map((r) => r.v)).toEqual([0, 6]);
  });

  it('a table that refuses its rows costs only its points, counted by SQLSTATE; a boolean goes into an old number column as 1 or 0', async () => {
    await q('create schema m4');
    await q('create table m4.refuses (time timestamptz not null, v inet) partition by range (time)');
    await q('create table m4.old (time timestamptz not null, ok double precision) partition by range (time)');
    const warnings: string[] = [];
    const sink = new PostgresSink(nodeConnection(lab.config(), 'store'), { schema: 'm4', warn: (w) => warnings.push(w) });
    await sink.open();
    await sink.write([
      { measurement: 'refuses', tags: {}, fields: { v: 1.5 }, time: day },
      { measurement: 'fine', tags: {}, fields: { n: 7n }, time: day },
      { measurement: 'old', tags: {}, fields: { ok: true }, time: day },
    ]);
    expect(await sink.flush()).toBe(true); // nothing to retry: the refused point is not kept
    expect(sink.stats).toMatchObject({ offered: 3, written: 2, buffered: 0, dropped: 0, rejected: 1, rejectedBy: { sqlstate_22P02: 1 }, healthy: false });
    expect(sink.stats.lastError).toMatch(/^COPY m4\.refuses: invalid input syntax for type inet: "1\.5"$/);
    expect(warnings).toEqual([expect.stringMatching(/refused 1 points: COPY m4\.refuses: .* \(SQLSTATE 22P02\) — fix or drop the table m4\.refuses$/)]);
    expect(await q('select n from m4.fine')).toEqual([{ n: '7' }]);
    expect(await q('select ok from m4.old')).toEqual([{ ok: 1 }]);
    // A flush that writes everything makes it healthy again.
    await sink.write([{ measurement: 'fine', tags: {}, fields: { n: 8n }, time: day }]);
    await sink.flush();
    expect(sink.stats).toMatchObject({ offered: 4, written: 3, rejected: 1, healthy: true });
    await sink.close();
  });

  it('keeps points while the server is away and writes them when it is back', async () => {
    const warnings: string[] = [];
    const sink = new PostgresSink(nodeConnection(lab.config(), 'store'), { schema: 'm3', flushMs: 60_000, warn: (w) => warnings.push(w) });
    await sink.open();
    await sink.write([{ measurement: 'pg_gap', tags: {}, fields: { i: 0 }, time: day }]);
    await sink.flush();
    const node = readState(lab.config().stateDir)!.nodes.store as { dataDir: string };
    const pid = Number(fs.readFileSync(`${node.dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
    process.kill(pid, 'SIGINT');
    await waitFor(() => !processAlive(pid), 10_000, 'the store to stop');
    await sink.write([1, 2, 3].map((i) => ({ measurement: 'pg_gap', tags: {}, fields: { i }, time: day + i })));
    expect(await sink.flush()).toBe(false);
    expect(sink.stats.buffered).toBe(3);
    expect(warnings[0]).toMatch(/write failed, will retry/);
    await labUp(lab.config());
    await waitFor(() => sink.flush(), 15_000, 'the buffered points to be written');
    await sink.close();
    expect(sink.stats).toMatchObject({ offered: 4, written: 4, dropped: 0, buffered: 0, rejected: 0, healthy: true });
    expect(sink.stats.retries).toBeGreaterThan(0);
    expect((await q('select i from m3.pg_gap order by i')).map((r) => r.i)).toEqual([0, 1, 2, 3]);
  });

  it('opens while the store is away (an agent started before its store), and writes once it is back', async () => {
    const node = readState(lab.config().stateDir)!.nodes.store as { dataDir: string };
    const pid = Number(fs.readFileSync(`${node.dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
    process.kill(pid, 'SIGINT');
    await waitFor(() => !processAlive(pid), 10_000, 'the store to stop');
    const warnings: string[] = [];
    const sink = new PostgresSink(nodeConnection(lab.config(), 'store'), { schema: 'm5', flushMs: 60_000, warn: (w) => warnings.push(w) });
    await sink.open(); // does not throw
    expect(sink.stats.healthy).toBe(false);
    expect(warnings[0]).toMatch(/the store is not answering .*; buffering up to 200000 points until it does/);
    await sink.write([{ measurement: 'pg_late', tags: {}, fields: { i: 1 }, time: day }]);
    expect(await sink.flush()).toBe(false);
    await labUp(lab.config());
    await waitFor(() => sink.flush(), 15_000, 'the buffered point to be written');
    await sink.close();
    expect(sink.stats).toMatchObject({ offered: 1, written: 1, dropped: 0, rejected: 0, healthy: true });
    expect(await q('select i from m5.pg_late')).toEqual([{ i: 1 }]);
  });
});
