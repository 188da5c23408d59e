import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatestPoints } from '../src/sinks/index.js';
import { labDown, labStatus, labUp, nodeConnection, readState } from '../src/lab/index.js';
import type { Point } from '../src/sinks/index.js';
import { withConnection } from '../src/pg/index.js';
import { processAlive } from '../src/runtime/index.js';
import { CLI, cli, tempLab, waitFor, type TempLab } from './helpers.js';
import { requireTool } from './support/influxd.js';

// The agent started by `up` samples continuously: into its sinks and onto /metrics.
const promtool = requireTool('promtool', 'prometheus');

describe('the agent samples the lab', () => {
  let lab: TempLab;
  let metricsUrl: string;
  const lp = () => path.join(lab.dir, 'agent.lp');
  beforeAll(async () => {
    lab = tempLab('lab: agentsample\nports: { from: 56810, to: 56819 }\nnodes:\n  a: { role: publisher }\n  b: { role: subscriber }\n  m: { role: metrics }\n');
    fs.appendFileSync(lab.file, `metrics:\n  interval: 250ms\n  sinks: [file://${path.join(lab.dir, 'agent.lp')}]\n`);
    await labUp(lab.config());
    const status = await waitFor(async () => {
      const s = await labStatus(lab.config());
      return s.agent.sampling?.lastSampleAt ? s : undefined;
    }, 15_000, 'the agent to sample');
    metricsUrl = status.agent.sampling!.prometheus!;
  });
  afterAll(() => lab.cleanup());

  it('status names the interval, the sinks and the /metrics address', async () => {
    const s = (await labStatus(lab.config())).agent.sampling!;
    expect(s.intervalMs).toBe(250);
    expect(s.sinks).toEqual([`file://${lp()}`, expect.stringMatching(/^postgres:\/\/postgres@127\.0\.0\.1:568\d\d\/postgres$/)]);
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  });

  it('serves /metrics that promtool accepts without a single warning', async () => {
    const text = await (await fetch(metricsUrl)).text();
    expect(text).toMatch(/^pg_up\{node="a",role="publisher"\} 1$/m);
    expect(text).toMatch(/^# TYPE pg_stat_database_xact_commit_total counter$/m);
    expect(text).not.toMatch(/^\w+_rate[{ ]/m); // rates are left to PromQL's rate()
    expect(text).toMatch(/^prodhome_sampler_points \d+$/m);
    expect(text).toMatch(/^prodhome_sink_written_points_total\{sink="postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres"\} \d+$/m);
    // pg_settings is sampled once a minute; /metrics keeps showing it between its samples.
    const settingsLine = /^pg_settings_value\{name="max_connections",node="a",role="publisher"\} 100$/m;
    expect(text).toMatch(settingsLine);
    expect(text).toMatch(/^pg_settings_bytes\{name="shared_buffers",node="a",role="publisher"\} 134217728$/m);
    const before = Number(/^prodhome_sampler_points (\d+)$/m.exec(text)![1]);
    const later = await waitFor(async () => {
      const t = await (await fetch(metricsUrl)).text();
      return /^prodhome_sampler_points (\d+)$/m.exec(t)![1] !== String(before) ? t : undefined;
    }, 5000, 'another sample');
    expect(later).toMatch(settingsLine);
    if (!promtool) return;
    const check = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('writes every sample to its sinks', async () => {
    const lines = await waitFor(() => {
      const l = fs.existsSync(lp()) ? fs.readFileSync(lp(), 'utf8').split('\n').filter((x) => x.startsWith('pg_up,node=b')) : [];
      return l.length >= 4 ? l : undefined;
    }, 10_000, 'four samples of b in the file sink');
    expect(lines[0]).toMatch(/^pg_up,node=b,role=subscriber up=1i,scrape_seconds=/);
  });

  it('keeps the samples in the metrics node, one partitioned raw table per measurement', async () => {
    const rows = await waitFor(async () => {
      const r = await withConnection(nodeConnection(lab.config(), 'm'), (sql) => sql`select node, count(*)::int as n from metrics.pg_up group by node order by node`).catch(() => []);
      return r.length === 3 && r.every((x) => x.n >= 2) ? r : undefined;
    }, 15_000, 'samples in the metrics store');
    expect(rows.map((r) => r.node)).toEqual(['a', 'b', 'm']);
    const kinds = await withConnection(nodeConnection(lab.config(), 'm'), (sql) => sql`select relkind::text as kind from pg_class where oid = 'metrics.pg_stat_database_raw'::regclass`);
    expect(kinds).toEqual([{ kind: 'p' }]);
  });

  it('a load run writes its per-second figures into the same store, and onto /metrics while it runs', async () => {
    expect(cli(['seed', 'pgbench', '--scale', '1'], { cwd: lab.dir }).code).toBe(0);
    const run = spawn(process.execPath, [CLI, 'load', 'tpcb', '-c', '2', '-T', '4'], { cwd: lab.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    run.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => run.on('exit', resolve));
    const tpsLine = new RegExp(`^workload_tps\\{node="a",run="${run.pid}",workload="tpcb"\\} (\\S+)$`, 'm');
    const text = await waitFor(async () => {
      const t = await (await fetch(metricsUrl)).text();
      return tpsLine.test(t) ? t : undefined;
    }, 10_000, "the run's figures on /metrics");
    expect(Number(tpsLine.exec(text)![1])).toBeGreaterThan(0);
    expect(text).toMatch(/^# TYPE workload_latency_p95_seconds gauge$/m);
    expect(text).toMatch(new RegExp(`^workload_latency_p95_seconds\\{node="a",run="${run.pid}",workload="tpcb"\\} 0\\.\\d+`, 'm'));
    if (promtool) {
      const check = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(check.stdout + check.stderr).toBe('');
    }
    expect(await exited, stderr).toBe(0);
    // Once the run is over, its series leave /metrics (they are stale after 5 s).
    await waitFor(async () => !/^workload_tps/m.test(await (await fetch(metricsUrl)).text()), 10_000, "the ended run's series to leave /metrics");
    // The agent wrote them to the store (the run handed them over; it opened no sink itself).
    const rows = await waitFor(async () => {
      const r = await withConnection(nodeConnection(lab.config(), 'm'), (sql) => sql`select workload, node, tps, latency_p95_ms from metrics.workload order by time`);
      return r.length >= 2 ? r : undefined;
    }, 10_000, "the run's seconds in the store");
    expect(rows[0]).toMatchObject({ workload: 'tpcb', node: 'a' });
    expect(Math.max(...rows.map((x) => x.tps as number))).toBeGreaterThan(0);
  });

  it("a load run's errors go to the store by SQLSTATE, each second", async () => {
    const script = path.join(lab.dir, 'fails.sql');
    fs.writeFileSync(script, 'SELECT 1 / 0;\n\\sleep 10 ms\n');
    const r = cli(['load', 'custom', script, '-c', '1', '-T', '2'], { cwd: lab.dir });
    expect(r.code, r.stderr).toBe(2); // a run with errors exits 2, as pgbench's does
    // The agent writes what the run handed it with its next sample: wait for the last second.
    const total = Number(new RegExp('22012\\D+(\\d+)').exec(r.stdout)?.[1]);
    const rows = await waitFor(async () => {
      const got = await withConnection(nodeConnection(lab.config(), 'm'), (sql) => sql`select sqlstate, sum(count)::int as n, count(*)::int as seconds from metrics.workload_errors where workload = 'custom' group by sqlstate`).catch(() => []); // the table comes with its first rows
      return got.length === 1 && got[0]!.n === total ? got : undefined;
    }, 10_000, 'every error the summary counted, in the store');
    expect(rows).toEqual([{ sqlstate: '22012', n: total, seconds: expect.any(Number) }]);
    expect(rows[0]!.seconds).toBeGreaterThanOrEqual(2);
  });

  it('shows a node that died as pg_up 0, and down stops the agent', async () => {
    const node = readState(lab.config().stateDir)!.nodes.b as { dataDir: string };
    const pid = Number(fs.readFileSync(`${node.dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
    process.kill(pid, 'SIGKILL');
    await waitFor(async () => /^pg_up\{node="b",role="subscriber"\} 0$/m.test(await (await fetch(metricsUrl)).text()), 10_000, '/metrics to show b down').catch(async (e: Error) => {
      const shown = (await (await fetch(metricsUrl)).text()).split('\n').filter((l) => /^(pg_up|prodhome_sampler)/.test(l)).join('\n');
      const status = fs.readFileSync(path.join(lab.config().stateDir, 'agent-status.json'), 'utf8');
      throw new Error(`${e.message}; /metrics shows:\n${shown}\nagent status: ${status}\nnow ${new Date().toISOString()}\nagent log:\n${fs.readFileSync(path.join(lab.config().stateDir, 'agent.log'), 'utf8')}`);
    });
    const agentPid = (await labStatus(lab.config())).agent.pid!;
    await labDown(lab.config());
    expect(processAlive(agentPid)).toBe(false);
    await expect(fetch(metricsUrl)).rejects.toThrow();
  });
});

describe('what /metrics keeps between samples', () => {
  const point = (measurement: string, node: string, fields: Record<string, number>, name = ''): Point => ({ measurement, tags: { node, ...(name ? { name } : {}) }, fields, time: 0 });
  const up = (node: string, value = 1) => point('pg_up', node, { up: value });
  const names = (points: Point[]) => points.map((p) => `${p.measurement}:${p.tags.node}${p.tags.name ? `:${p.tags.name}` : ''}:${Object.values(p.fields).join(',')}`).sort();

  it('keeps a slow family until its next sample, and drops it when its node goes down', () => {
    const latest = new LatestPoints((m) => m === 'pg_settings');
    latest.update([up('a'), up('b'), point('pg_locks', 'a', { granted: 3 }), point('pg_settings', 'a', { value: 100 }, 'max_connections'), point('pg_settings', 'b', { value: 50 }, 'max_connections')]);
    // A scrape without the slow family: the last settings stay, the every-scrape family is the new one.
    latest.update([up('a'), up('b'), point('pg_locks', 'a', { granted: 1 })]);
    expect(names(latest.points())).toEqual(['pg_locks:a:1', 'pg_settings:a:max_connections:100', 'pg_settings:b:max_connections:50', 'pg_up:a:1', 'pg_up:b:1']);
    // Its next sample replaces it whole (a setting gone from the sample is gone from /metrics).
    latest.update([up('a'), up('b'), point('pg_settings', 'a', { value: 200 }, 'work_mem')]);
    expect(names(latest.points())).toEqual(['pg_settings:a:work_mem:200', 'pg_settings:b:max_connections:50', 'pg_up:a:1', 'pg_up:b:1']);
    // A node that is down shows pg_up 0 and nothing else of it, even after it comes back.
    latest.update([up('a'), up('b', 0)]);
    expect(names(latest.points())).toEqual(['pg_settings:a:work_mem:200', 'pg_up:a:1', 'pg_up:b:0']);
    latest.update([up('a'), up('b')]);
    expect(names(latest.points())).toEqual(['pg_settings:a:work_mem:200', 'pg_up:a:1', 'pg_up:b:1']);
  });
});
