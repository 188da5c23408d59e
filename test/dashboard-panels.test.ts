import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseStep, loadPanels, seriesSql } from '../src/dashboard/index.js';
import { loadCatalog } from '../src/metrics/index.js';

/** The dashboard's panels are data: each must name something the sampler really stores. */

// Measurements the agent writes beside the catalog (process stats, load runs), with their fields.
const BUILT_IN: Record<string, { tags: string[]; fields: string[] }> = {
  process: { tags: [], fields: ['cpu_percent', 'memory_bytes', 'memory_limit_bytes', 'read_bytes_rate', 'write_bytes_rate'] },
  workload: { tags: ['workload'], fields: ['tps', 'latency_p50_ms', 'latency_p95_ms', 'latency_p99_ms'] },
  workload_errors: { tags: ['workload', 'sqlstate'], fields: ['count'] },
};

describe('dashboard panels', () => {
  it('every panel reads a stored measurement, its fields (counters as _rate) and its series columns', () => {
    const catalog = loadCatalog();
    const panels = loadPanels();
    expect(panels.length).toBeGreaterThanOrEqual(20);
    for (const p of panels) {
      const metric = catalog.find((m) => m.name === p.measurement);
      const known = metric
        ? { tags: metric.tags, fields: Object.entries(metric.fields).flatMap(([f, d]) => (d.kind === 'counter' ? [f, `${f}_rate`] : [f])) }
        : BUILT_IN[p.measurement];
      expect(known, `${p.id}: no measurement ${p.measurement}`).toBeDefined();
      for (const f of p.fields) expect(known!.fields, `${p.id}: field ${f}`).toContain(f);
      expect(p.by[0], p.id).toBe('node');
      for (const b of p.by.slice(1)) expect(known!.tags, `${p.id}: series column ${b}`).toContain(b);
    }
  });

  it('rejects a panel file that is not as documented, naming the file and the problem', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-panels-'));
    fs.writeFileSync(path.join(dir, 'bad.yaml'), '- id: x\n  title: X\n  measurement: pg_up\n  fields: [up]\n  unit: furlongs\n  by: [node]\n  info: one line only\n');
    expect(() => loadPanels(dir)).toThrow(/bad\.yaml: .*unit/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('quotes identifiers and passes the range, bucket and nodes as parameters', () => {
    const panel = loadPanels().find((p) => p.id === 'lag_bytes')!;
    const sql = seriesSql(panel);
    expect(sql).toContain('from "metrics"."pg_replication_raw"');
    expect(sql).toContain('date_bin($3::interval, time');
    expect(sql).toContain('time < $2::timestamptz');
    expect(sql).toContain("tags->>'node' = any($4::text[])");
    // A 1-minute bucket reads the 1-minute rollups (their averages), then the raw rows past their watermark.
    const rolled = seriesSql(panel, undefined, '1m');
    expect(rolled).toContain('from "metrics"."pg_replication_1m"');
    expect(rolled).toContain('"write_lag_bytes_avg" as "write_lag_bytes"');
    expect(rolled).toContain("tier = '1m'");
  });

  it('a busiest-tables panel ranks its top 10 series from a rollup tier (measure columns only) before it reads their rows', () => {
    const dead = loadPanels().find((p) => p.id === 'dead_tuples')!;
    expect(dead.top).toBe(10);
    const sql = seriesSql(dead, undefined, 'raw');
    // Ranked from the 10-minute rollups (the gauge's max), the 1-minute ones and raw rows past them, then only those series read.
    expect(sql).toMatch(/select sid, "n_dead_tup_max" as m0 from "metrics"\."pg_table_10m"/);
    expect(sql).toMatch(/select sid, "n_dead_tup_max" as m0 from "metrics"\."pg_table_1m"/);
    expect(sql).toContain('order by coalesce(max(m0), 0) desc, sid limit 10');
    expect(sql.match(/and sid in \(select id from s\)/g)).toHaveLength(1); // the raw branch: a raw bucket reads no rollup
    // A counter's measure is its increase.
    const vac = seriesSql(loadPanels().find((p) => p.id === 'vacuums')!, undefined, '10m');
    expect(vac).toContain('from "metrics"."pg_table_10m" where time >= $1::timestamptz and time < least(');
    expect(vac).toContain('coalesce(max(m0) - min(m0), 0) + coalesce(max(m1) - min(m1), 0) desc');
    // Other panels read every series.
    expect(seriesSql(loadPanels().find((p) => p.id === 'lag_bytes')!)).not.toContain('limit');
  });

  it('chooses a bucket that keeps any range near 400 points (or the chart\'s width), never below the sampling interval', () => {
    expect(chooseStep(86_400_000, 1000, 1000)).toBe(120);
    expect(chooseStep(300_000, 1000)).toBe(1);
    expect(chooseStep(900_000, 1000)).toBe(5);
    expect(chooseStep(86_400_000, 1000)).toBe(300);
    expect(chooseStep(300_000, 5000)).toBe(5);
    for (const range of [300e3, 900e3, 3600e3, 21600e3, 86400e3]) expect(range / 1000 / chooseStep(range, 1000)).toBeLessThanOrEqual(400);
  });
});
