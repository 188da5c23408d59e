import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSink, type InfluxSink, type Point } from '../src/sinks/index.js';
import { influxQL, requireTool, rows, startInfluxd, startVictoriaMetrics, type ServerProcess } from './support/influxd.js';

/** An InfluxQL identifier: double-quoted, `"` and `\` escaped. */
const ident = (s: string) => `"${s.replace(/[\\"]/g, '\\$&')}"`;
const T = Math.floor(Date.now() / 1000) * 1000 - 60_000; // recent: VictoriaMetrics drops points outside retention

const MEASUREMENT = 'cpu load,ü=x';
const nasty: Point = {
  measurement: MEASUREMENT,
  tags: { 'host name': 'db 1,eu=west', path: 'C:\\data\\x', esc: 'a\\,b', quote: 'say "hi"', emoji: '😀 値', empty: '' },
  fields: {
    f: 1.5,
    neg: -0.25,
    huge: 1e300,
    i: 42n,
    imax: 2n ** 63n - 1n,
    imin: -(2n ** 63n),
    yes: true,
    no: false,
    s: 'he said "C:\\" ,= ok 😀',
    blank: '',
    nan: NaN,
    none: null,
  },
  time: T,
};
const plain: Point = { measurement: MEASUREMENT, tags: { 'host name': 'other' }, fields: { f: 2, i: 1n }, time: T + 1 };
const broken: Point = { measurement: MEASUREMENT, tags: {}, fields: { s: 'two\nlines' }, time: T + 2 };

const influxd = requireTool('influxd', 'influxdb');
describe.skipIf(!influxd)('influx sink against a real InfluxDB 1.x', () => {
  let server: ServerProcess;
  const DB = 'prodhome test';
  const sinkFor = (query = '', warn?: (w: string) => void) =>
    createSink(`influx://127.0.0.1:${server.port}/${encodeURIComponent(DB)}${query}`, { warn }) as InfluxSink;
  const q = async (statement: string) => influxQL(server, statement, DB);

  beforeAll(async () => {
    server = await startInfluxd(influxd!);
    await influxQL(server, `CREATE DATABASE ${ident(DB)}`);
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  it('round-trips nasty measurement, tags and fields exactly', async () => {
    const warnings: string[] = [];
    const sink = sinkFor('', (w) => warnings.push(w));
    await sink.write([nasty, broken, plain]);
    expect(await sink.flush()).toBe(true);
    await sink.close();
    expect(sink.stats).toMatchObject({ written: 2, rejected: 1, dropped: 0 });
    expect(warnings).toEqual([`${sink.name}: cannot write point "${MEASUREMENT}" as line protocol: field s: the string contains a newline`]);

    const { series, raw } = await q(`SELECT * FROM ${ident(MEASUREMENT)}`);
    expect(series.map((s) => s.name)).toEqual([MEASUREMENT]);
    expect(rows(series[0])).toEqual([
      {
        time: T,
        'host name': 'db 1,eu=west',
        path: 'C:\\data\\x',
        esc: 'a\\,b',
        quote: 'say "hi"',
        emoji: '😀 値',
        f: 1.5,
        neg: -0.25,
        huge: 1e300,
        i: 42,
        imax: Number(2n ** 63n - 1n),
        imin: Number(-(2n ** 63n)),
        yes: true,
        no: false,
        s: 'he said "C:\\" ,= ok 😀',
        blank: '',
      },
      { time: T + 1, 'host name': 'other', path: null, esc: null, quote: null, emoji: null, f: 2, neg: null, huge: null, i: 1, imax: null, imin: null, yes: null, no: null, s: null, blank: null },
    ]);
    // JSON numbers lose int64's last digits; the answer's text has them
    expect(raw).toContain('9223372036854775807');
    expect(raw).toContain('-9223372036854775808');
    const types = rows((await q(`SHOW FIELD KEYS FROM ${ident(MEASUREMENT)}`)).series[0]);
    expect(Object.fromEntries(types.map((r) => [r.fieldKey, r.fieldType]))).toEqual({
      blank: 'string',
      f: 'float',
      huge: 'float',
      i: 'integer',
      imax: 'integer',
      imin: 'integer',
      neg: 'float',
      no: 'boolean',
      s: 'string',
      yes: 'boolean',
    });
  });

  it.each(['s', 'ms', 'ns'] as const)('writes time at precision %s', async (precision) => {
    const sink = sinkFor(`?precision=${precision}`);
    await sink.write([{ measurement: `precision_${precision}`, tags: {}, fields: { v: 1 }, time: T + 1234.5 }]);
    await sink.close();
    const [series] = (await influxQL(server, `SELECT v FROM precision_${precision}`, DB)).series;
    const expected = { s: T + 1000, ms: T + 1234, ns: T + 1234 }[precision]; // epoch=ms rounds the ns time down
    expect(rows(series)).toEqual([{ time: expected, v: 1 }]);
  });

  it('loses no point across a 30 s outage of the server, sampling once a second meanwhile', async () => {
    const warnings: string[] = [];
    const sink = createSink(`influx://127.0.0.1:${server.port}/${encodeURIComponent(DB)}?batch_size=10&flush_ms=100`, {
      tuning: { minBackoffMs: 100, maxBackoffMs: 2000 },
      warn: (w) => warnings.push(w),
    }) as InfluxSink;
    const batch = (from: number, n: number): Point[] =>
      Array.from({ length: n }, (_, k) => ({ measurement: 'outage', tags: { node: 'a' }, fields: { n: BigInt(from + k) }, time: T + from + k }));

    await sink.write(batch(0, 20));
    expect(await sink.flush()).toBe(true);

    await server.stop();
    for (let k = 0; k < 30; k++) {
      await sink.write(batch(20 + k * 10, 10)); // resolves at once: the points wait in the buffer
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(sink.stats.buffered).toBe(300);
    expect(sink.stats.retries).toBeGreaterThan(0);
    expect(sink.stats.lastError).toBe('ECONNREFUSED');

    await server.start(); // same port, same data dir
    expect(await sink.flush()).toBe(true);
    await sink.close();

    expect(sink.stats).toMatchObject({ written: 320, buffered: 0, dropped: 0, rejected: 0 });
    const [series] = (await q('SELECT n FROM outage')).series;
    expect(rows(series).map((r) => r.n)).toEqual(Array.from({ length: 320 }, (_, k) => k));
    expect(warnings[0]).toMatch(/cannot write \(ECONNREFUSED\); buffering up to 100000 points and retrying\.$/);
    expect(warnings.at(-1)).toMatch(/writing again after \d+ failed attempts; 0 points dropped and 0 refused so far\.$/);
  });
});

interface Exported {
  metric: Record<string, string>;
  values: number[];
  timestamps: number[];
}

const vmBin = requireTool('victoria-metrics', 'victoria-metrics');
describe.skipIf(!vmBin)('influx2 sink against VictoriaMetrics (the 2.x write API)', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startVictoriaMetrics(vmBin!);
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  /** Every series whose name matches, once VictoriaMetrics has made them searchable. */
  async function exported(match: string, count: number): Promise<Exported[]> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      await fetch(`${server.url}/internal/force_flush`).then((r) => r.arrayBuffer());
      const res = await fetch(`${server.url}/api/v1/export?${new URLSearchParams({ 'match[]': `{__name__=~${JSON.stringify(match)}}` })}`);
      const found = (await res.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Exported);
      if (found.length >= count || Date.now() > deadline) return found;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it('round-trips tags and numeric fields through /api/v2/write', async () => {
    const sink = createSink(`influx2://127.0.0.1:${server.port}?org=lab&bucket=prodhome`, { env: { PRODHOME_INFLUX_TOKEN: 'not-checked-by-vm' } }) as InfluxSink;
    // VictoriaMetrics reads `\\` in a tag as one backslash where InfluxDB keeps both, so a tag
    // with a backslash right before `,` `=` or space (the `esc` tag) cannot go there as it is:
    // line-protocol.ts writes what InfluxDB reads back
    const { esc: _, ...tags } = nasty.tags;
    await sink.write([{ ...nasty, tags }, plain]);
    expect(await sink.flush()).toBe(true);
    await sink.close();
    expect(sink.stats).toMatchObject({ written: 2, rejected: 0 });

    const series = await exported('cpu load,ü=x_.*', 12);
    const labels = { 'host name': 'db 1,eu=west', path: 'C:\\data\\x', quote: 'say "hi"', emoji: '😀 値' };
    const key = (s: Exported) => `${s.metric.__name__}|${s.metric['host name']}`;
    const got = series.sort((a, b) => key(a).localeCompare(key(b))).map((s) => ({ ...s.metric, values: s.values, timestamps: s.timestamps }));
    // VictoriaMetrics names a series <measurement>_<field>, stores every value as a float, and
    // has no strings (it stores them as 0)
    const one = (field: string, value: number) => ({ __name__: `${MEASUREMENT}_${field}`, ...labels, values: [value], timestamps: [T] });
    expect(got).toEqual([
      one('blank', 0),
      one('f', 1.5),
      { __name__: `${MEASUREMENT}_f`, 'host name': 'other', values: [2], timestamps: [T + 1] },
      one('huge', 1e300),
      one('i', 42),
      { __name__: `${MEASUREMENT}_i`, 'host name': 'other', values: [1], timestamps: [T + 1] },
      one('imax', 2 ** 63),
      one('imin', -(2 ** 63)),
      one('neg', -0.25),
      one('no', 0),
      one('s', 0),
      one('yes', 1),
    ]);
  });
});
