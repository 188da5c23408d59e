import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopAgent } from '../src/lab/agent.js';
import { labStatus, labUp, nodeConnection, readState, type SinkReport } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { processAlive } from '../src/runtime/index.js';
import { CLI, cli, portRange, tempLab, waitFor, type TempLab } from './helpers.js';
import { influxQL, requireTool, rows, startInfluxd, type ServerProcess } from './support/influxd.js';

/*
 * Sinks lose nothing silently (issue 12), against real servers: the agent of a real lab writes to
 * a real InfluxDB 1.x whose database does not exist yet, to the lab's Postgres metrics store and
 * to a line-protocol file (the reference: it takes every point offered and never drops one).
 * Then a store that refuses points, promtool on /metrics in every state, and the reliability
 * figures across a 30 s outage of both stores and an agent restart.
 */

const influxd = requireTool('influxd', 'influxdb');
const promtool = requireTool('promtool', 'prometheus');

describe.skipIf(!influxd || !promtool)('sinks account for every point, against real stores', () => {
  let lab: TempLab;
  let influx: ServerProcess;
  let metricsUrl: string;
  const DB = 'prodhome';
  const lpFile = () => path.join(lab.dir, 'agent.lp');
  const stateDir = () => lab.config().stateDir;
  const agentLog = () => fs.readFileSync(path.join(stateDir(), 'agent.log'), 'utf8');
  const store = <T extends Record<string, unknown>>(text: string) => withConnection(nodeConnection(lab.config(), 'm'), (sql) => sql.unsafe(text)) as Promise<T[]>;
  const sinks = async () => (await labStatus(lab.config())).sinks;
  const sinkNamed = async (prefix: string) => (await sinks()).find((s) => s.name.startsWith(prefix));
  const metrics = async () => (await fetch(metricsUrl)).text();
  const check = (text: string) => spawnSync(promtool!, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  const balanced = (s: SinkReport) => s.offered === s.written + s.buffered + s.dropped + s.rejected;
  const killNode = async (name: string) => {
    const node = readState(stateDir())!.nodes[name] as { dataDir: string };
    const pid = Number(fs.readFileSync(`${node.dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
    process.kill(pid, 'SIGINT');
    await waitFor(() => !processAlive(pid), 15_000, `${name} to stop`);
  };
  /**
   * Until every sink is healthy and has accounted for (written, dropped or rejected) every point
   * it had been offered when this was called. (Not "buffered 0" at one moment: the status is a
   * snapshot taken between samples, and each sink empties its buffer on its own beat.)
   */
  const settled = async (what: string, ms: number) => {
    const target = new Map((await sinks()).map((s) => [s.name, s.offered]));
    await waitFor(async () => (await sinks()).every((s) => s.healthy && s.written + s.dropped + s.rejected >= (target.get(s.name) ?? 0)), ms, what).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(await sinks())}\nagent log:\n${agentLog().split('\n').slice(-10).join('\n')}`);
    });
  };
  /** Figures per sink at checkpoints, printed at the end (README's Metrics section has them). */
  const figures: string[] = [];
  const snapshot = async (label: string) => {
    for (const s of await sinks()) {
      figures.push(`${label.padEnd(34)} ${s.name.padEnd(46)} offered ${s.offered}, written ${s.written}, buffered ${s.buffered}, dropped ${s.dropped}, rejected ${s.rejected}`);
    }
  };

  beforeAll(async () => {
    influx = await startInfluxd(influxd!);
    lab = tempLab(`lab: sinkhealth\n${portRange(58600)}nodes:\n  a: { role: publisher }\n  m: { role: metrics }\n`);
    fs.appendFileSync(lab.file, `metrics:\n  interval: 250ms\n  sinks: ["influx://127.0.0.1:${influx.port}/${DB}", "file://${lpFile()}"]\n`);
    await labUp(lab.config());
    const status = await waitFor(async () => {
      const s = await labStatus(lab.config());
      return s.agent.sampling?.prometheus && s.sinks.length === 3 ? s : undefined;
    }, 20_000, 'the agent to sample into its three sinks');
    metricsUrl = status.agent.sampling!.prometheus!;
  }, 60_000);
  afterAll(async () => {
    if (figures.length) console.log(`\nreliability figures (agent at 250 ms, two nodes):\n${figures.join('\n')}\n`);
    await lab?.cleanup();
    await influx?.cleanup();
  });

  it('creates the InfluxDB database it was given, writes every point of the seconds before it existed, and counts them right', async () => {
    const influxSink = await waitFor(async () => {
      const s = await sinkNamed('influx://');
      return s && s.written > 0 && s.healthy ? s : undefined;
    }, 15_000, 'the influx sink to write');
    expect(influxSink).toMatchObject({ dropped: 0, rejected: 0 });
    expect(balanced(influxSink)).toBe(true);
    expect(agentLog()).toContain(`created the database "${DB}"`);
    expect(rows((await influxQL(influx, 'SHOW DATABASES')).series[0]).map((r) => r.name)).toContain(DB);
    // The first sample was refused with "database not found"; it was sent again, not lost.
    const first = Number(/^pg_up,\S+ \S+ (\d+)$/m.exec(fs.readFileSync(lpFile(), 'utf8'))![1]);
    const [earliest] = rows((await influxQL(influx, 'SELECT first(up) FROM pg_up', DB)).series[0]);
    expect(earliest!.time).toBe(first);
    await snapshot('after the missing database');
  });

  it('writes counters and counts as integers, booleans as booleans, query text as a field with queryid the tag', async () => {
    await withConnection(nodeConnection(lab.config(), 'a'), (sql) => sql`select pg_create_logical_replication_slot('health_slot', 'pgoutput')`);
    const fieldTypes = async (measurement: string) =>
      Object.fromEntries(rows((await influxQL(influx, `SHOW FIELD KEYS FROM ${measurement}`, DB)).series[0]).map((r) => [r.fieldKey, r.fieldType]));
    const slot = await waitFor(async () => {
      const t = await fieldTypes('pg_replication_slot');
      return t.active ? t : undefined;
    }, 15_000, 'the slot in InfluxDB');
    expect(slot).toEqual({ active: 'boolean', retained_bytes: 'integer' });
    expect(await fieldTypes('pg_stat_database')).toMatchObject({ xact_commit: 'integer', xact_commit_rate: 'float', temp_bytes: 'integer', blks_hit: 'integer' });
    expect(await fieldTypes('pg_up')).toEqual({ up: 'integer', scrape_seconds: 'float' });
    expect(await fieldTypes('process')).toMatchObject({ processes: 'integer', memory_bytes: 'integer', cpu_seconds: 'float' });
    const statements = await waitFor(async () => {
      const t = await fieldTypes('pg_statements');
      return t.query ? t : undefined;
    }, 15_000, 'pg_statements in InfluxDB');
    expect(statements).toMatchObject({ query: 'string', calls: 'integer', total_seconds: 'float', mean_seconds: 'float', rows: 'integer' });
    const tags = rows((await influxQL(influx, 'SHOW TAG KEYS FROM pg_statements', DB)).series[0]).map((r) => r.tagKey);
    expect(tags).toEqual(['node', 'queryid', 'role']);
    // The store's columns follow: integers as bigint, booleans as boolean; the tags once per series.
    await waitFor(async () => (await store("select to_regclass('metrics.pg_replication_slot_raw') as t"))[0]!.t, 10_000, 'the store to have pg_replication_slot');
    // (a column comes with its field's first value: retained_bytes may come a sample after the slot)
    const columns = await waitFor(async () => {
      const c = await store<{ name: string; type: string }>(
        "select attname as name, format_type(atttypid, atttypmod) as type from pg_attribute where attrelid = 'metrics.pg_replication_slot_raw'::regclass and attnum > 0 and not attisdropped order by attnum",
      );
      return c.length >= 4 ? c : undefined;
    }, 10_000, 'both fields of the slot in the store');
    expect(columns.map((c) => `${c.name}:${c.type}`)).toEqual(['time:timestamp with time zone', 'sid:integer', 'active:boolean', 'retained_bytes:bigint']);
    const [series] = await store<{ keys: string[] }>("select array_agg(k order by k) as keys from (select distinct jsonb_object_keys(tags) as k from metrics._series where measurement = 'pg_replication_slot') t");
    expect(series!.keys).toEqual(['node', 'role', 'slot']);
  });

  it('a store that refuses points (a column of another type) counts them as rejected and shows failing in status', async () => {
    await waitFor(async () => (await store("select to_regclass('metrics.prodhome_sampler_raw') as t"))[0]!.t, 10_000, 'the store to have prodhome_sampler');
    await store('drop view metrics.prodhome_sampler');
    await store('alter table metrics.prodhome_sampler_raw alter column points type boolean using null');
    const failing = await waitFor(async () => {
      const s = await sinkNamed('postgres://');
      return s && !s.healthy && (s.rejectedBy.sqlstate_22P02 ?? 0) > 0 ? s : undefined;
    }, 15_000, 'the store sink to show the refusal');
    expect(failing.lastError).toMatch(/^COPY metrics\.prodhome_sampler_raw: invalid input syntax for type boolean/);
    expect(balanced(failing)).toBe(true);
    expect(failing.dropped).toBe(0);

    const text = cli(['status'], { cwd: lab.dir });
    expect(text.code, text.stderr).toBe(0);
    console.log(`prodhome status with a refusing store:\n${text.stdout}`);
    expect(text.stdout).toMatch(/^SINKS$/m);
    expect(text.stdout).toMatch(/^SINK +STATE +OFFERED +WRITTEN +BUFFERED +RETRIES +DROPPED +REJECTED$/m);
    expect(text.stdout).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:586\d\d\/postgres +FAILING since \d\d:\d\d:\d\d .* \d+ \(sqlstate_22P02 \d+\)$/m);
    expect(text.stdout).toMatch(/^influx:\/\/127\.0\.0\.1:\d+\/prodhome +healthy since /m);
    expect(text.stdout).toMatch(/^ {2}postgres:\/\/\S+: last error at \d\d:\d\d:\d\d COPY metrics\.prodhome_sampler_raw: invalid input syntax for type boolean/m);
    const json = JSON.parse(cli(['status', '--json'], { cwd: lab.dir }).stdout) as { sinks: SinkReport[] };
    const pg = json.sinks.find((s) => s.name.startsWith('postgres://'))!;
    expect(pg).toMatchObject({ healthy: false, dropped: 0 });
    expect(pg.rejected).toBeGreaterThan(0);
    expect(balanced(pg)).toBe(true);

    const shown = await waitFor(async () => {
      const t = await metrics();
      return /^prodhome_sink_healthy\{sink="postgres:[^"]+"\} 0$/m.test(t) ? t : undefined;
    }, 5000, '/metrics to show the store sink failing');
    expect(shown).toMatch(/^prodhome_sink_rejected_points_total\{sink="postgres:[^"]+"\} [1-9]\d*$/m);
    expect(shown).toMatch(/^prodhome_sink_lost_points_total\{outcome="rejected",reason="sqlstate_22P02",sink="postgres:[^"]+"\} [1-9]\d*$/m);
    expect(agentLog()).toMatch(/sink postgres:\S+: failing since \S+: COPY metrics\.prodhome_sampler_raw: invalid input syntax for type boolean/);

    // Drop the bad table: the sink makes it again and is healthy.
    await store('drop table metrics.prodhome_sampler_raw cascade');
    await waitFor(async () => (await sinkNamed('postgres://'))?.healthy, 15_000, 'the store sink to recover');
    expect(agentLog()).toMatch(/sink postgres:\S+: healthy again; offered \d+ = written \d+/);
    await snapshot('after the refusing table');
  });

  it('/metrics passes promtool with no warning: idle, under a load with errors, and with a node down', async () => {
    const idle = await metrics();
    const i = check(idle);
    expect(i.stdout + i.stderr).toBe('');
    expect(i.status).toBe(0);
    expect(idle).not.toMatch(/^process_/m); // the client libraries' names for the exporter's own process
    expect(idle).toMatch(/^pg_node_process_cpu_seconds_total\{node="a",role="publisher"\} /m);
    expect(idle).toMatch(/^pg_node_process_memory_bytes\{node="a",role="publisher"\} /m);
    expect(idle).toMatch(/^# HELP pg_connections_limit_max The server's max_connections setting/m);
    expect(idle).toMatch(/^# HELP pg_connections_limit_used Client connections in use/m);
    expect(idle).not.toMatch(/^pg_settings_(bytes|seconds|value)\{name="autovacuum_work_mem"/m); // -1: use maintenance_work_mem
    expect(idle).toMatch(/^pg_settings_bytes\{name="maintenance_work_mem",node="a",role="publisher"\} \d+$/m);
    for (const line of idle.split('\n').filter((l) => /_age_seconds\{/.test(l))) expect(Number(line.split(' ').at(-1))).toBeGreaterThanOrEqual(0);
    expect(idle).toMatch(/^pg_statements_calls_total\{node="a",queryid="-?\d+",role="publisher"\} \d+$/m); // no query label

    const script = path.join(lab.dir, 'fails.sql');
    fs.writeFileSync(script, 'SELECT 1 / 0;\n\\sleep 20 ms\n');
    const run = spawn(process.execPath, [CLI, 'load', 'custom', script, '-c', '1', '-T', '4'], { cwd: lab.dir, stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => run.on('exit', resolve));
    const loaded = await waitFor(async () => {
      const t = await metrics();
      return /^workload_errors\{/m.test(t) ? t : undefined;
    }, 10_000, 'the run\'s errors on /metrics');
    expect(loaded).toMatch(new RegExp(`^workload_errors\\{node="a",run="${run.pid}",sqlstate="22012",workload="custom"\\} \\d+$`, 'm'));
    expect(loaded).not.toMatch(/workload_errors_count/);
    const r = check(loaded);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(await exited).toBe(2); // every transaction failed: the run exits 2, as pgbench's does
    // The stores have the run too, tagged with it as /metrics labels it.
    const errors = rows((await influxQL(influx, `SELECT "count" FROM workload_errors WHERE run = '${run.pid}'`, DB)).series[0]);
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect((await store<{ n: number }>(`select count(*)::int as n from metrics.workload_errors where run = '${run.pid}'`))[0]!.n).toBeGreaterThanOrEqual(2);

    await killNode('a');
    const down = await waitFor(async () => {
      const t = await metrics();
      return /^pg_up\{node="a",role="publisher"\} 0$/m.test(t) ? t : undefined;
    }, 15_000, '/metrics to show a down');
    const d = check(down);
    expect(d.stdout + d.stderr).toBe('');
    expect(d.status).toBe(0);
    await labUp(lab.config()); // a comes back
  }, 60_000);

  it('loses nothing across a 30 s outage of both stores and an agent restart: written + dropped + rejected = offered, dropped 0', async () => {
    await settled('every sink healthy and empty', 20_000);
    await snapshot('before the outage');
    await influx.stop();
    await killNode('m');
    const outageStart = Date.now();
    await new Promise((r) => setTimeout(r, 30_000));
    const during = await sinks();
    for (const s of during.filter((x) => !x.name.startsWith('file:'))) {
      expect(s.healthy, s.name).toBe(false);
      expect(s.buffered, s.name).toBeGreaterThan(0);
      expect(s.dropped, s.name).toBe(0);
      expect(balanced(s), s.name).toBe(true);
    }
    await snapshot(`during the outage (${Math.round((Date.now() - outageStart) / 1000)} s)`);
    await influx.start();
    await labUp(lab.config()); // m comes back
    await settled('every sink to deliver its buffer', 30_000);
    await snapshot('after the outage');

    // An agent restart: the old agent delivers what it holds at close and says so in its log.
    const before = (await labStatus(lab.config())).agent.pid!;
    await stopAgent(stateDir());
    expect(processAlive(before)).toBe(false);
    await labUp(lab.config());
    await waitFor(async () => (await sinks()).length === 3 && (await sinks()).every((s) => s.written > 0), 20_000, 'the new agent to write');
    await new Promise((r) => setTimeout(r, 2000));
    await stopAgent(stateDir());

    // Every agent lifetime's account, as each logged it at close.
    const closes = [...agentLog().matchAll(/sink (\S+) at close: offered (\d+) = written (\d+) \+ buffered (\d+) \+ dropped (\d+)(?: \([^)]*\))? \+ rejected (\d+)/g)];
    expect(closes).toHaveLength(6); // three sinks, two lifetimes
    const total = new Map<string, { offered: number; written: number; dropped: number; rejected: number }>();
    for (const [, name, offered, written, buffered, dropped, rejected] of closes) {
      expect(Number(buffered), name).toBe(0);
      expect(Number(dropped), name).toBe(0);
      expect(Number(written) + Number(dropped) + Number(rejected), name).toBe(Number(offered));
      const t = total.get(name!) ?? { offered: 0, written: 0, dropped: 0, rejected: 0 };
      total.set(name!, { offered: t.offered + Number(offered), written: t.written + Number(written), dropped: t.dropped + Number(dropped), rejected: t.rejected + Number(rejected) });
      figures.push(`${'at close of an agent'.padEnd(34)} ${name!.padEnd(46)} offered ${offered}, written ${written}, buffered ${buffered}, dropped ${dropped}, rejected ${rejected}`);
    }
    // The reference file took every point; the stores hold every pg_up point of it, once.
    const pgUpLines = fs.readFileSync(lpFile(), 'utf8').split('\n').filter((l) => l.startsWith('pg_up,')).length;
    const [influxCount] = rows((await influxQL(influx, 'SELECT count(up) FROM pg_up', DB)).series[0]);
    const [storeCount] = await store<{ n: number }>('select count(*)::int as n from metrics.pg_up');
    figures.push(`pg_up points: ${pgUpLines} in the reference file, ${influxCount!.count} in InfluxDB, ${storeCount!.n} in the Postgres store`);
    for (const [name, t] of total) figures.push(`${'both lifetimes'.padEnd(34)} ${name.padEnd(46)} offered ${t.offered}, written ${t.written}, dropped ${t.dropped}, rejected ${t.rejected}`);
    expect(influxCount!.count).toBe(pgUpLines);
    expect(storeCount!.n).toBe(pgUpLines);
    const [fileTotal, influxTotal] = [...total.entries()].filter(([n]) => !n.startsWith('postgres')).sort().map(([, t]) => t);
    expect(influxTotal!.offered).toBe(fileTotal!.offered); // the same points were offered to each
    expect(influxTotal!.written).toBe(influxTotal!.offered);
  }, 150_000);
});
