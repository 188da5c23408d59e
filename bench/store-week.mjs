#!/usr/bin/env node
// Benchmark: how big a week of the default lab at 1 s is in the metrics store. Brings up the
// default 4-node lab, lets its agent sample for a little over a minute, and takes the last whole
// minute of every measurement back out of the store (tags, fields, which series, how often each
// family is sampled) as the template of a real minute. Then writes a synthetic week — that
// minute repeated, counters still counting — through the real store code (PostgresSink, its
// rollup and retention job run as the simulated clock advances) into a schema of its own on the
// lab's real metrics node, and reports what the store holds at the end of the week:
//   - bytes on disk (tables, indexes, TOAST), by tier, against the issue's target (≤ 2 GB);
//   - bytes per sample: over the whole week (what is left of it), and for the full-resolution
//     tier alone, beside Prometheus's TSDB figure of ≈ 1.3–2 bytes a sample (its own docs; no
//     Prometheus runs here, so that figure is quoted, not measured).
// A "sample" is one stored field value of one point (a counter's rate, derived by the readers,
// is not one; the collector's `_rate` fields are not written).
// Exits non-zero only when something fails to run, never on size.
//
//   node bench/store-week.mjs [--days N] [--json]      (needs `npm run build`)

import fs from 'node:fs';
import path from 'node:path';
import { benchArgs, CLI, logger, makeTempDir, mustRun, removeDir, rescueLab, sleep } from './lib.mjs';

const { days, json } = benchArgs({
  usage: 'node bench/store-week.mjs [--days N] [--json]',
  options: { days: { type: 'string', default: '7' } }, // fewer days on a busy machine: the 7-day size is projected from them
  integers: ['days'],
  defaultRounds: 1,
  needs: 'sinks/index.js',
});
const log = logger(json);
const { DEFAULT_CONFIG_YAML, loadConfig } = await import('../dist/config/index.js');
const { nodeConnection } = await import('../dist/lab/index.js');
const { connect, quoteIdent } = await import('../dist/pg/index.js');
const { PostgresSink } = await import('../dist/sinks/index.js');

const SCHEMA = 'week';
const MIN = 60_000;
const HOUR = 3_600_000;
const dir = makeTempDir('prodhome-bench-week-');
fs.writeFileSync(
  path.join(dir, 'prodhome.yaml'),
  DEFAULT_CONFIG_YAML.replace('lab: prodhome', 'lab: benchweek').replace(/ports:\n  from: \d+\n  to: \d+\n/, 'ports:\n  from: 58910\n  to: 58949\n'),
);
const results = { days };
let sql;
try {
  await mustRun('prodhome up', process.execPath, [CLI, 'up'], { cwd: dir });
  const config = loadConfig({ file: path.join(dir, 'prodhome.yaml') });
  // A little load, so the statements, locks and replication lag are those of a working lab.
  await mustRun('prodhome load', process.execPath, [CLI, 'load', 'mixed', '-T', '20', '-c', '2', '-R', '50'], { cwd: dir });
  sql = connect(nodeConnection(config, 'metrics'), { max: 1 });
  // The template is the first whole minute the agent sampled from its start: wait for its end.
  const first = await (async () => {
    for (let i = 0; i < 60; i++) {
      const [r] = await sql`select (extract(epoch from min(time)) * 1000)::float8 as t from metrics.pg_up`.catch(() => [{}]);
      if (r?.t) return r.t;
      await sleep(1000);
    }
    throw new Error('the agent wrote no sample in a minute');
  })();
  const t0 = Math.ceil((first + 1000) / MIN) * MIN;
  const end = t0 + MIN;
  log(`lab up; waiting for a whole minute of every family (${new Date(t0).toISOString()} to ${new Date(end).toISOString()}; pg_settings is sampled once a minute)…`);
  while (Date.now() < end + 5000) await sleep(1000);
  const views = (await sql`select c.relname as m from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'metrics' and c.relkind = 'v' order by 1`).map((r) => r.m);
  const template = [];
  for (const m of views) {
    const tagNames = new Set((await sql`select distinct jsonb_object_keys(tags) as k from metrics._series where measurement = ${m}`).map((r) => r.k));
    const types = new Map((await sql`select attname as name, format_type(atttypid, atttypmod) as type from pg_attribute where attrelid = ${`metrics.${quoteIdent(`${m}_raw`)}`}::regclass and attnum > 0`).map((r) => [r.name, r.type]));
    const rows = await sql.unsafe(`select * from metrics.${quoteIdent(m)} where time >= $1 and time < $2`, [new Date(t0), new Date(end)]);
    for (const r of rows) {
      const tags = {};
      const fields = {};
      for (const [k, v] of Object.entries(r)) {
        if (k === 'time' || v === null) continue;
        if (tagNames.has(k)) tags[k] = String(v);
        else fields[k] = types.get(k) === 'bigint' ? BigInt(v) : v;
      }
      template.push({ offset: r.time.getTime() - t0, measurement: m, tags, fields });
    }
  }
  template.sort((a, b) => a.offset - b.offset);
  const perMinute = template.length;
  const valuesPerMinute = template.reduce((n, p) => n + Object.keys(p.fields).length, 0);
  results.rowsPerSecond = perMinute / 60;
  results.samplesPerSecond = valuesPerMinute / 60;
  results.measurements = new Set(template.map((p) => p.measurement)).size;
  log(`template: ${results.measurements} measurements, ${results.rowsPerSecond.toFixed(1)} points/s, ${results.samplesPerSecond.toFixed(0)} samples/s (one stored field value each)`);
  // The sampling nodes are not needed any more: less noise while the week is written.
  await mustRun('prodhome stop', process.execPath, [CLI, 'stop', 'publisher', 'subscriber1', 'subscriber2'], { cwd: dir });

  // ---- the week, through the real sink, its job run as the simulated clock advances ----
  await sql.unsafe(`drop schema if exists ${SCHEMA} cascade`);
  const warnings = [];
  const sink = new PostgresSink(nodeConnection(config, 'metrics'), { schema: SCHEMA, retentionDays: 7, maintainEveryMs: 1e12, flushMs: 1e9, batchSize: 20_000, maxBuffer: 1e7, warn: (w) => warnings.push(w) });
  await sink.open();
  const start = Math.floor((Date.now() - days * 86_400_000) / HOUR) * HOUR;
  const minutes = days * 1440;
  const samplesByHour = new Map();
  let jobMs = 0;
  let written = 0;
  const began = Date.now();
  const maintain = async (now) => {
    const t = Date.now();
    for (let i = 0; i < 100; i++) if (!(await sink.maintain(now)).unfinished) break;
    jobMs += Date.now() - t;
  };
  for (let m = 0; m < minutes; m++) {
    const base = start + m * MIN;
    const points = template.map((p) => {
      const fields = {};
      for (const [k, v] of Object.entries(p.fields)) fields[k] = typeof v === 'bigint' ? v + BigInt(m) * 60n : v; // counters go on counting
      return { measurement: p.measurement, tags: p.tags, fields, time: base + p.offset };
    });
    await sink.write(points);
    written += points.length;
    const hour = Math.floor(base / HOUR) * HOUR;
    samplesByHour.set(hour, (samplesByHour.get(hour) ?? 0) + valuesPerMinute);
    if (m % 60 === 59) {
      await sink.flush();
      await maintain(base + MIN + 20_000);
    }
    if (m % 1440 === 1439) log(`  day ${(m + 1) / 1440} written (${((Date.now() - began) / 1000).toFixed(0)} s, ${Math.round(written / ((Date.now() - began) / 1000))} points/s, job ${(jobMs / 1000).toFixed(0)} s)`);
  }
  await sink.flush();
  await maintain(start + minutes * MIN + 20_000);
  await sink.close();
  if (sink.stats.written !== written || warnings.length) throw new Error(`the sink wrote ${sink.stats.written} of ${written} points: ${warnings.join('; ')}`);
  results.writeSeconds = (Date.now() - began) / 1000;
  results.jobSeconds = jobMs / 1000;

  // ---- what is on disk ----
  await sql.unsafe('checkpoint');
  await sql.unsafe(`analyze`);
  const sizes = await sql`
    select case when c.relname ~ '_raw_\\d+$' then 'raw' when c.relname ~ '_1m_\\d+$' then '1m' when c.relname ~ '_10m_\\d+$' then '10m' else 'shared' end as tier,
           sum(pg_total_relation_size(c.oid))::bigint as bytes, count(*)::int as tables
    from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = ${SCHEMA} and c.relkind = 'r' group by 1`;
  const by = Object.fromEntries(sizes.map((r) => [r.tier, Number(r.bytes)]));
  const total = sizes.reduce((s, r) => s + Number(r.bytes), 0);
  const rawHours = new Set(
    (await sql`select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = ${SCHEMA} and c.relkind = 'r' and c.relname ~ '_raw_\\d+$'`).map((r) =>
      r.name.slice(-10),
    ),
  );
  const hourKey = (ms) => new Date(ms).toISOString().slice(0, 13).replace(/[-T]/g, '');
  const rawSamples = [...samplesByHour].filter(([h]) => rawHours.has(hourKey(h))).reduce((s, [, n]) => s + n, 0);
  const weekSamples = [...samplesByHour.values()].reduce((s, n) => s + n, 0);
  Object.assign(results, {
    bytes: total,
    bytesByTier: by,
    weekSamples,
    bytesPerSample: total / weekSamples,
    rawHoursKept: rawHours.size,
    rawBytesPerSample: (by.raw ?? 0) / rawSamples,
  });
  const mb = (b) => `${(b / 1048576).toFixed(1)} MB`;
  log(`wrote ${days} day(s): ${written} points in ${results.writeSeconds.toFixed(0)} s (${Math.round(written / results.writeSeconds)} points/s, the rollup and retention job ${results.jobSeconds.toFixed(0)} s of it)`);
  log(`store after the week: ${mb(total)} — raw ${mb(by.raw ?? 0)} (${rawHours.size} h kept), 1-minute ${mb(by['1m'] ?? 0)}, 10-minute ${mb(by['10m'] ?? 0)}, shared ${mb(by.shared ?? 0)} — target for 7 days ≤ 2048 MB`);
  // After 2 days the raw (6 h) and 1-minute (2 days) tiers hold all they ever will; only the
  // 10-minute tier grows with the days, linearly: from fewer days, the week is projected.
  if (days < 7) {
    results.projectedWeekBytes = (by.raw ?? 0) + (by['1m'] ?? 0) * (days >= 2 ? 1 : 2 / days) + (by['10m'] ?? 0) * (7 / days) + (by.shared ?? 0);
    results.projectedWeekBytesPerSample = results.projectedWeekBytes / ((weekSamples * 7) / days);
    log(`projected to 7 days: ${mb(results.projectedWeekBytes)} (raw and 1-minute tiers ${days >= 2 ? 'at their steady size' : 'scaled to 2 days'}, 10-minute tier × ${(7 / days).toFixed(1)}), ${results.projectedWeekBytesPerSample.toFixed(3)} bytes a sample`);
  }
  log(`bytes per sample: ${results.bytesPerSample.toFixed(3)} over the ${days}-day week (${weekSamples} samples written, older ones kept as rollups); full resolution alone ${results.rawBytesPerSample.toFixed(1)} — Prometheus TSDB ≈ 1.3–2 (quoted from its docs, full resolution, compressed)`);
} finally {
  await sql?.end({ timeout: 1 });
  await rescueLab(dir, 'benchweek').catch(() => {});
  removeDir(dir);
}
if (json) console.log(JSON.stringify(results, null, 2));
