import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { exportedName, pointsToFamilies, PrometheusSink, sanitizeLabelName, sanitizeMetricName, toPrometheusText, type Family, type Point } from '../src/sinks/index.js';
import { requireTool } from './support/influxd.js';

const g = (over: Partial<Family>): Family => ({ name: 'm', help: 'help', type: 'gauge', samples: [{ labels: {}, value: 1 }], ...over });

describe('Prometheus text, byte for byte', () => {
  const cases: [string, Family[], string][] = [
    ['one gauge', [g({})], '# HELP m help\n# TYPE m gauge\nm 1\n'],
    [
      'labels sorted, empty ones left out',
      [g({ samples: [{ labels: { z: '1', a: '2', e: '' }, value: 3 }] })],
      '# HELP m help\n# TYPE m gauge\nm{a="2",z="1"} 3\n',
    ],
    [
      'label values escape backslash, quote, newline',
      [g({ samples: [{ labels: { v: 'C:\\ "x"\nend' }, value: 1 }] })],
      '# HELP m help\n# TYPE m gauge\nm{v="C:\\\\ \\"x\\"\\nend"} 1\n',
    ],
    ['unicode label values as they are', [g({ samples: [{ labels: { v: 'ü 値 😀' }, value: 1 }] })], '# HELP m help\n# TYPE m gauge\nm{v="ü 値 😀"} 1\n'],
    ['HELP escapes backslash and newline, not quotes', [g({ help: 'a "b" \\ c\nd' })], '# HELP m a "b" \\\\ c\\nd\n# TYPE m gauge\nm 1\n'],
    ['names sanitised', [g({ name: 'pg.stat-db 1', samples: [{ labels: { 'a-b': 'x', '1st': 'y', __r: 'z' }, value: 1 }] })], '# HELP pg_stat_db_1 help\n# TYPE pg_stat_db_1 gauge\npg_stat_db_1{_1st="y",_r="z",a_b="x"} 1\n'],
    ['a name starting with a digit', [g({ name: '9lives' })], '# HELP _9lives help\n# TYPE _9lives gauge\n_9lives 1\n'],
    ['counter gets _total', [g({ name: 'pg_xact_commit', type: 'counter' })], '# HELP pg_xact_commit_total help\n# TYPE pg_xact_commit_total counter\npg_xact_commit_total 1\n'],
    ['counter already in _total', [g({ name: 'x_total', type: 'counter' })], '# HELP x_total help\n# TYPE x_total counter\nx_total 1\n'],
    ['bytes suffix', [g({ name: 'pg_database_size', unit: 'bytes' })], '# HELP pg_database_size_bytes help\n# TYPE pg_database_size_bytes gauge\npg_database_size_bytes 1\n'],
    [
      'milliseconds counter to seconds',
      [g({ name: 'blk_read_time', type: 'counter', unit: 'milliseconds', samples: [{ labels: {}, value: 1500 }] })],
      '# HELP blk_read_time_seconds_total help\n# TYPE blk_read_time_seconds_total counter\nblk_read_time_seconds_total 1.5\n',
    ],
    [
      'a unit in the name is replaced, not doubled',
      [g({ name: 'lag_milliseconds', unit: 'milliseconds', samples: [{ labels: {}, value: 250 }] }), g({ name: 'uptime_seconds', unit: 'seconds' })],
      '# HELP lag_seconds help\n# TYPE lag_seconds gauge\nlag_seconds 0.25\n# HELP uptime_seconds help\n# TYPE uptime_seconds gauge\nuptime_seconds 1\n',
    ],
    ['kilobytes are 1024 bytes', [g({ name: 'wal', unit: 'kilobytes', samples: [{ labels: {}, value: 2 }] })], '# HELP wal_bytes help\n# TYPE wal_bytes gauge\nwal_bytes 2048\n'],
    ['non-base units add nothing', [g({ name: 'tup_fetched', type: 'counter', unit: 'rows' })], '# HELP tup_fetched_total help\n# TYPE tup_fetched_total counter\ntup_fetched_total 1\n'],
    [
      'special values and integers',
      [g({ samples: [{ labels: { k: 'a' }, value: NaN }, { labels: { k: 'b' }, value: Infinity }, { labels: { k: 'c' }, value: -Infinity }, { labels: { k: 'd' }, value: 2n ** 63n - 1n }, { labels: { k: 'e' }, value: 1e-7 }] })],
      '# HELP m help\n# TYPE m gauge\nm{k="a"} NaN\nm{k="b"} +Inf\nm{k="c"} -Inf\nm{k="d"} 9223372036854775807\nm{k="e"} 1e-7\n',
    ],
    ['timestamps when given', [g({ samples: [{ labels: {}, value: 1, time: 1700000000123.7 }] })], '# HELP m help\n# TYPE m gauge\nm 1 1700000000123\n'],
    [
      'one family grouped even when given in parts',
      [g({ name: 'a', samples: [{ labels: { n: '1' }, value: 1 }] }), g({ name: 'b' }), g({ name: 'a', samples: [{ labels: { n: '2' }, value: 2 }] })],
      '# HELP a help\n# TYPE a gauge\na{n="1"} 1\na{n="2"} 2\n# HELP b help\n# TYPE b gauge\nb 1\n',
    ],
    ['a family with no samples is left out', [g({ samples: [] })], ''],
  ];
  it.each(cases)('%s', (_, families, text) => {
    expect(toPrometheusText(families)).toBe(text);
  });

  it.each([
    ['pg_stat.database', 'pg_stat_database'],
    ['ns:metric', 'ns:metric'],
    ['', '_'],
  ])('metric name %j is %j', (name, out) => expect(sanitizeMetricName(name)).toBe(out));
  it.each([
    ['ns:label', 'ns_label'],
    ['__name__', '_name__'],
    ['', '_'],
  ])('label name %j is %j', (name, out) => expect(sanitizeLabelName(name)).toBe(out));
  it('exportedName scales milliseconds', () => expect(exportedName({ name: 'x', type: 'gauge', unit: 'milliseconds' })).toEqual({ name: 'x_seconds', factor: 1e-3 }));
  it('exportedName drops a short unit suffix it converts (latency_p95_ms → latency_p95_seconds)', () => {
    expect(exportedName({ name: 'workload_latency_p95_ms', type: 'gauge', unit: 'milliseconds' })).toEqual({ name: 'workload_latency_p95_seconds', factor: 1e-3 });
    expect(exportedName({ name: 'temp_kb', type: 'counter', unit: 'kilobytes' })).toEqual({ name: 'temp_bytes_total', factor: 1024 });
    expect(exportedName({ name: 'forms', type: 'gauge', unit: 'milliseconds' }).name).toBe('forms_seconds'); // "ms" inside a word stays
  });
});

const points: Point[] = [
  { measurement: 'pg_stat_database', tags: { node: 'a', datname: 'app "prod"\\1' }, fields: { xact_commit: 10n, blk_read_time: 1500, up: true, note: 'text' }, time: 1000 },
  { measurement: 'pg_stat_database', tags: { node: 'a', datname: 'app "prod"\\1' }, fields: { xact_commit: 12n }, time: 2000 },
  { measurement: 'pg_stat_database', tags: { node: 'b', datname: 'postgres' }, fields: { xact_commit: 5n, blk_read_time: null }, time: 2000 },
  { measurement: 'pg-odd name', tags: { 'node-name': 'ü\n2' }, fields: { 'value.x': NaN, ratio: 0.5 }, time: 2000 },
];
const describeField = (m: string, f: string) =>
  m === 'pg_stat_database'
    ? f === 'xact_commit'
      ? { help: 'Transactions committed.', type: 'counter' as const, unit: 'transactions' }
      : f === 'blk_read_time'
        ? { help: 'Time reading blocks.', type: 'counter' as const, unit: 'milliseconds' }
        : undefined
    : undefined;

describe('points to Prometheus families', () => {
  it('one family per measurement and field, latest sample per series, strings skipped', () => {
    expect(toPrometheusText(pointsToFamilies(points, describeField))).toBe(
      [
        '# HELP pg_stat_database_xact_commit_total Transactions committed.',
        '# TYPE pg_stat_database_xact_commit_total counter',
        'pg_stat_database_xact_commit_total{datname="app \\"prod\\"\\\\1",node="a"} 12',
        'pg_stat_database_xact_commit_total{datname="postgres",node="b"} 5',
        '# HELP pg_stat_database_blk_read_time_seconds_total Time reading blocks.',
        '# TYPE pg_stat_database_blk_read_time_seconds_total counter',
        'pg_stat_database_blk_read_time_seconds_total{datname="app \\"prod\\"\\\\1",node="a"} 1.5',
        '# HELP pg_stat_database_up pg_stat_database up',
        '# TYPE pg_stat_database_up untyped',
        'pg_stat_database_up{datname="app \\"prod\\"\\\\1",node="a"} 1',
        '# HELP pg_odd_name_value_x pg-odd name value.x',
        '# TYPE pg_odd_name_value_x untyped',
        'pg_odd_name_value_x{node_name="ü\\n2"} NaN',
        '# HELP pg_odd_name_ratio pg-odd name ratio',
        '# TYPE pg_odd_name_ratio untyped',
        'pg_odd_name_ratio{node_name="ü\\n2"} 0.5',
        '',
      ].join('\n'),
    );
  });

  it('keeps point times when asked', () => {
    const text = toPrometheusText(pointsToFamilies(points.slice(0, 2), describeField, { timestamps: true }));
    expect(text).toContain('pg_stat_database_xact_commit_total{datname="app \\"prod\\"\\\\1",node="a"} 12 2000\n');
  });
});

// promtool parses and lints the output as Prometheus would scrape it.
const promtool = requireTool('promtool', 'prometheus');
describe.skipIf(!promtool)('promtool check metrics', () => {
  it('finds nothing wrong with the serializer output', () => {
    const families = [
      ...pointsToFamilies(points, describeField),
      { name: 'pg_replication_lag', help: 'Replay lag.\nPer subscriber.', type: 'gauge', unit: 'milliseconds', samples: [{ labels: { sub: 'a\\b "c"' }, value: 12 }] },
      { name: 'pg_database_size', help: 'Size on disk.', type: 'gauge', unit: 'bytes', samples: [{ labels: { datname: 'x' }, value: 2n ** 40n }] },
      { name: 'pg_wal_written', help: 'WAL written.', type: 'counter', unit: 'kilobytes', samples: [{ labels: {}, value: 10, time: 1700000000000 }] },
    ] satisfies Family[];
    const text = toPrometheusText(families);
    const r = spawnSync(promtool!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect({ status: r.status, output: `${r.stdout}${r.stderr}` }).toEqual({ status: 0, output: '' });
  });

  it('is a real check: it flags a non-base unit', () => {
    const r = spawnSync(promtool!, ['check', 'metrics'], { input: '# HELP x_milliseconds h\n# TYPE x_milliseconds gauge\nx_milliseconds 1\n', encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/base unit/);
  });
});

describe('the Prometheus sink: /metrics as a sink on the point bus', () => {
  const describeAll = (m: string, f: string) => (f === 'hidden' ? undefined : { help: `${m} ${f}`, type: 'gauge' as const });
  const sink = (port?: number, previousPort?: number) =>
    new PrometheusSink({ port, previousPort, describe: describeAll, sampledLessOften: (m) => m === 'slow', sampleMarker: 'marker' });
  const p = (measurement: string, time: number, fields: Point['fields'], tags: Record<string, string> = {}): Point => ({ measurement, tags: { node: 'a', ...tags }, fields, time });
  const sample = (time: number, ...extra: Point[]) => [p('pg_up', time, { up: 1n }), p('marker', time, { points: 1 }, { node: '' }), ...extra];
  const series = (text: string) => text.split('\n').filter((l) => l && !l.startsWith('#')).sort();

  it('shows the newest sample and, beside it, the newest second of each run while it is fresh', async () => {
    const s = sink();
    await s.write([...sample(1000, p('fast', 1000, { v: 1, hidden: 5 }), p('slow', 1000, { v: 7 })), p('workload', 1500, { tps: 10 }, { run: '42' })]);
    // The next sample has no slow family (it stays) and its fast family replaces the last one;
    // a run's older second arriving late does not replace its newer one.
    await s.write([...sample(2000, p('fast', 2000, { v: 2 })), p('workload', 1200, { tps: 99 }, { run: '42' }), p('workload', 2500, { tps: 20 }, { run: '43' })]);
    expect(series(s.text(3000))).toEqual(['fast_v{node="a"} 2', 'marker_points 1', 'pg_up_up{node="a"} 1', 'slow_v{node="a"} 7', 'workload_tps{node="a",run="42"} 10', 'workload_tps{node="a",run="43"} 20']);
    // 5 s after its last second a run leaves the page; the sample stays until the next one.
    expect(series(s.text(6600))).toEqual(['fast_v{node="a"} 2', 'marker_points 1', 'pg_up_up{node="a"} 1', 'slow_v{node="a"} 7', 'workload_tps{node="a",run="43"} 20']);
    expect(s.stats).toMatchObject({ offered: 10, written: 10, dropped: 0 });
  });

  it('takes several queued samples in one write in order, and a stray point without a run does not replace the sample', async () => {
    const s = sink();
    await s.write([...sample(2000, p('fast', 2000, { v: 2 })), ...sample(1000, p('slow', 1000, { v: 7 })), p('stray', 2600, { x: 1 })]);
    expect(series(s.text(3000))).toEqual(['fast_v{node="a"} 2', 'marker_points 1', 'pg_up_up{node="a"} 1', 'slow_v{node="a"} 7', 'stray_x{node="a"} 1']);
  });

  it('serves GET and HEAD /metrics on 127.0.0.1, takes its previous port again when free, and says when a port is taken', async () => {
    const first = sink();
    await first.open();
    try {
      await first.write(sample(Date.now()));
      const res = await fetch(first.url!);
      expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      expect(await res.text()).toBe(first.text());
      expect(first.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      expect((await fetch(first.url!, { method: 'POST' })).status).toBe(405);
      expect((await fetch(first.url!.replace('/metrics', '/other'))).status).toBe(404);
      const port = Number(new URL(first.url!).port);
      // Taken: an explicit port is an error naming it; a previous port falls back to any free one.
      await expect(sink(port).open()).rejects.toThrow(`cannot serve /metrics on 127.0.0.1:${port}: listen EADDRINUSE`);
      const other = sink(undefined, port);
      await other.open();
      expect(other.url).not.toBe(first.url);
      await other.close();
      await first.close();
      const again = sink(undefined, port);
      await again.open();
      expect(again.url).toBe(first.url);
      await again.close();
    } finally {
      await first.close();
    }
    await expect(fetch(first.url!)).rejects.toThrow();
  });
});
