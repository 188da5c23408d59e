import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp } from '../src/lab/index.js';
import { cli, tempLab, type TempLab } from './helpers.js';
import { influxQL, requireTool, rows, startInfluxd, type ServerProcess } from './support/influxd.js';

// The sampler end to end: real servers sampled by `prodhome sample`, written through the sinks.
describe('prodhome sample --sink', () => {
  let lab: TempLab;
  beforeAll(async () => {
    lab = tempLab('lab: sinks\nports: { from: 56800, to: 56809 }\nnodes:\n  one: { role: publisher }\n');
    await labUp(lab.config());
  });
  afterAll(() => lab.cleanup());

  it('writes line protocol to a file', () => {
    const file = path.join(lab.dir, 'points.lp');
    // 1.3 s for at least three samples at 250 ms even on a loaded machine (the first one connects)
    const r = cli(['sample', '--interval', '250ms', '--duration', '1300ms', '--sink', `file://${file}`], { cwd: lab.dir });
    expect(r.code, r.stderr).toBe(0);
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    expect(lines.filter((l) => /^pg_up,node=one,role=publisher up=1i,scrape_seconds=[\d.e-]+ \d+$/.test(l)).length).toBeGreaterThanOrEqual(3);
    expect(lines.some((l) => l.startsWith('pg_stat_database,datname=postgres,node=one,role=publisher ') && l.includes('xact_commit_rate='))).toBe(true);
  });

  it('an unknown sink is a clear error, for sample and for up', () => {
    const r = cli(['sample', '--duration', '1s', '--sink', 'kafka://127.0.0.1/x'], { cwd: lab.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('sink kafka://127.0.0.1/x: unknown sink scheme "kafka:"');
    const bad = tempLab('lab: badsink\nports: { from: 56830, to: 56839 }\nmetrics: { sinks: ["influx://127.0.0.1:8086/db?tokn=1"] }\nnodes:\n  x: {}\n');
    try {
      const u = cli(['up'], { cwd: bad.dir });
      expect(u.code).toBe(2);
      expect(u.stderr).toContain('unknown parameter "tokn"');
      expect(fs.readdirSync(bad.dir)).toEqual(['prodhome.yaml']);
    } finally {
      fs.rmSync(bad.dir, { recursive: true, force: true });
    }
  });

  const influxd = requireTool('influxd', 'influxdb');
  describe.skipIf(!influxd)('into a real InfluxDB', () => {
    let server: ServerProcess;
    beforeAll(async () => {
      server = await startInfluxd(influxd!);
      await influxQL(server, 'CREATE DATABASE prodhome');
    });
    afterAll(async () => {
      await server?.cleanup();
    });

    it('every node is sampled and queryable with InfluxQL, rates included', async () => {
      const r = cli(['sample', '--interval', '250ms', '--duration', '1s', '--sink', `influx://127.0.0.1:${server.port}/prodhome`], { cwd: lab.dir });
      expect(r.code, r.stderr).toBe(0);
      const up = await influxQL(server, 'SELECT count(up), last(up) FROM pg_up GROUP BY node', 'prodhome');
      expect(up.series.map((s) => [s.tags?.node, rows(s)[0]?.count, rows(s)[0]?.last])).toEqual([['one', expect.any(Number), 1]]);
      expect(rows(up.series[0])[0]!.count as number).toBeGreaterThanOrEqual(3);
      const commits = await influxQL(server, "SELECT xact_commit_rate FROM pg_stat_database WHERE node = 'one' AND datname = 'postgres'", 'prodhome');
      expect(rows(commits.series[0]).length).toBeGreaterThanOrEqual(2);
      const proc = await influxQL(server, 'SELECT last(memory_bytes) FROM process', 'prodhome');
      expect(rows(proc.series[0])[0]!.last as number).toBeGreaterThan(1024 * 1024);
    });
  });
});
