import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, nodeConnection, readState } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { processAlive } from '../src/runtime/index.js';
import { PostgresSink, type Point } from '../src/sinks/index.js';
import { tempLab, waitFor, type TempLab } from './helpers.js';

// The default metrics store: a real Postgres node of a lab, written with COPY into hourly partitions of the compact layout.
describe('postgres sink', () => {
  let lab: TempLab;
  const q = (text: string) => withConnection(nodeConnection(lab.config(), 'store'), (sql) => sql.unsafe(text));
  beforeAll(async () => {
    lab = tempLab('lab: pgsink\nports: { from: 56820, to: 56829 }\nmetrics: { store: false, prometheus: false }\nnodes:\n  store: { role: metrics }\n');
    await labUp(lab.config());
  });
  afterAll(() => lab.cleanup());

  // Recent: the store keeps full resolution for hours, and its job drops older raw hours once rolled up.
  const day = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  const hour = new Date(day).toISOString().slice(0, 13).replace(/[-T]/g, '');
  it('stores a row per point as (time, series id, a typed column per field) in hourly partitions; the view shows tags and values exactly', async () => {
    const sink = new PostgresSink(nodeConnection(lab.config(), 'store'), { schema: 'm1' });
    await sink.open();
    const points: Point[] = [
      { measurement: 'pg_demo', tags: { node: 'a', note: 'tab\there, new\nline \\ back' }, fields: { value: 1.5, count: 7n, ok: true, c: 10n, c_rate: 2.5, alone_rate: 4 }, time: day },
      { measurement: 'pg_demo', tags: { node: 'b', note: '' }, fields: { value: 2, count: null, extra: 'text' }, time: day + 1 },
      { measurement: 'pg_demo', tags: { node: 'b', note: '' }, fields: { value: 3, extra: 'text' }, time: day + 2 },
      { measurement: 'other', tags: {}, fields: { x: -1 }, time: day + 2 },
    ];
    await sink.write(points);
    expect(await sink.flush()).toBe(true);
    await sink.close();
    expect(sink.stats).toMatchObject({ written: 4, dropped: 0, buffered: 0 });
    expect(await q('select node, note, value, count, ok, extra, c, alone_rate, time from m1.pg_demo order by node, time')).toEqual([
      { node: 'a', note: 'tab\there, new\nline \\ back', value: 1.5, count: '7', ok: true, extra: null, c: '10', alone_rate: 4, time: new Date(day) },
      { node: 'b', note: '', value: 2, count: null, ok: null, extra: 'text', c: null, alone_rate: null, time: new Date(day + 1) },
      { node: 'b', note: '', value: 3, count: null, ok: null, extra: 'text', c: null, alone_rate: null, time: new Date(day + 2) },
    ]);
    // Compact: tags once per series, a text once, a rate that its counter gives is not stored.
    const types = await q("select attname, format_type(atttypid, atttypmod) as type from pg_attribute where attrelid = 'm1.pg_demo_raw'::regclass and attnum > 0 order by attnum");
    expect(types.map((r) => `${r.attname}:${r.type}`)).toEqual(['time:timestamp with time zone', 'sid:integer', 'value:double precision', 'count:bigint', 'ok:boolean', 'c:bigint', 'alone_rate:double precision', 'extra:m1.text_id']);
    expect(await q("select measurement, tags from m1._series order by id")).toEqual([
      { measurement: 'pg_demo', tags: { node: 'a', note: 'tab\there, new\nline \\ back' } },
      { measurement: 'pg_demo', tags: { node: 'b', note: '' } },
      { measurement: 'other', tags: {} },
    ]);
    expect(await q('select value from m1._text')).toEqual([{ value: 'text' }]);
    expect(await q("select relname from pg_class where relname like 'pg\\_demo\\_raw%' and relkind = 'r'")).toEqual([{ relname: `pg_demo_raw_${hour}` }]);
    // Only a BRIN index on time: no per-row B-tree.
    expect(await q(`select indexdef from pg_indexes where schemaname = 'm1' and tablename = '${`pg_demo_raw_${hour}`}'`)).toEqual([{ indexdef: expect.stringMatching(/USING brin \("time"\)/) }]);
  });

  it('recreates a store of the first layout (a table per measurement) cleanly, keeping the annotations, and says so', async () => {
    await q('create schema m2');
    await q('create table m2.pg_old (time timestamptz not null, node text, v double precision, v_rate double precision) partition by range (time)');
    await q("create table m2.pg_old_20261128 partition of m2.pg_old for values from ('2026-11-28') to ('2026-11-29')");
    await q("insert into m2.pg_old values ('2026-11-28 10:00Z', 'a', 1, 0)");
    await q("create table m2.annotations (id bigserial primary key, time timestamptz not null, text text)");
    await q("insert into m2.annotations (time, text) values ('2026-11-28 10:00Z', 'kept')");
    const warnings: string[] = [];
    const sink = new PostgresSink(nodeConnection(lab.config(), 'store'), { schema: 'm2', warn: (w) => warnings.push(w) });
    await sink.open();
    await sink.write([{ measurement: 'pg_old', tags: { node: 'b' }, fields: { v: 2 }, time: day }]);
    expect(await sink.flush()).toBe(true);
    await sink.close();
    expect(warnings).toEqual([expect.stringMatching(/first layout .* 1 old tables and their history dropped/)]);
    expect(await q('select node, v from m2.pg_old')).toEqual([{ node: 'b', v: 2 }]);
    expect(await q('select text from m2.annotations')).toEqual([{ text: 'kept' }]);
    expect(await q('select version from m2._layout')).toEqual([{ version: 2 }]);
  });

  it('a table that refuses its rows costs only its points, counted by SQLSTATE; a boolean goes into a number column as 1 or 0', async () => {
    const warnings: string[] = [];
    const sink = new PostgresSink(nodeConnection(lab.config(), 'store'), { schema: 'm4', warn: (w) => warnings.push(w) });
    await sink.open();
    await sink.write([
      { measurement: 'refuses', tags: {}, fields: { v: 1 }, time: day },
      { measurement: 'old', tags: {}, fields: { ok: 0 }, time: day },
    ]);
    expect(await sink.flush()).toBe(true);
    await q('drop view m4.refuses');
    await q('alter table m4.refuses_raw alter column v type inet using null');
    await sink.write([
      { measurement: 'refuses', tags: {}, fields: { v: 1.5 }, time: day + 1 },
      { measurement: 'fine', tags: {}, fields: { n: 7n }, time: day },
      { measurement: 'old', tags: {}, fields: { ok: true }, time: day + 1 },
    ]);
    expect(await sink.flush()).toBe(true); // nothing to retry: the refused point is not kept
    expect(sink.stats).toMatchObject({ offered: 5, written: 4, buffered: 0, dropped: 0, rejected: 1, rejectedBy: { sqlstate_22P02: 1 }, healthy: false });
    expect(sink.stats.lastError).toMatch(/^COPY m4\.refuses_raw: invalid input syntax for type inet: "1\.5"$/);
    expect(warnings).toEqual([expect.stringMatching(/refused 1 points: COPY m4\.refuses_raw: .* \(SQLSTATE 22P02\) — fix or drop the table m4\.refuses_raw$/)]);
    expect(await q('select n from m4.fine')).toEqual([{ n: '7' }]);
    expect(await q('select ok from m4.old order by time')).toEqual([{ ok: 0 }, { ok: 1 }]);
    // A flush that writes everything makes it healthy again.
    await sink.write([{ measurement: 'fine', tags: {}, fields: { n: 8n }, time: day }]);
    await sink.flush();
    expect(sink.stats).toMatchObject({ offered: 6, written: 5, rejected: 1, healthy: true });
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
