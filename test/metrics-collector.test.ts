import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, nodeConnection, readState } from '../src/lab/index.js';
import { Collector, HeartbeatWriter, ProcessSampler, loadCatalog, parseCpuTime, parsePsListing, type MetricDefinition } from '../src/metrics/index.js';
import type { Point } from '../src/sinks/index.js';
import { connect, withConnection } from '../src/pg/index.js';
import { heartbeatPublications } from '../src/replication/index.js';
import { processAlive } from '../src/runtime/index.js';
import { cli, tempLab, waitFor, type TempLab } from './helpers.js';

const find = (points: Point[], measurement: string, tags: Record<string, string> = {}) =>
  points.find((p) => p.measurement === measurement && Object.entries(tags).every(([k, v]) => p.tags[k] === v));

describe('collector on real servers', () => {
  let lab: TempLab;
  let collector: Collector;
  const warnings: string[] = [];
  beforeAll(async () => {
    lab = tempLab('lab: sampler\nports: { from: 56760, to: 56769 }\nnodes:\n  a: { role: publisher }\n  b: { role: subscriber }\n');
    await labUp(lab.config());
    collector = new Collector(
      ['a', 'b'].map((name) => ({ name, role: name === 'a' ? 'publisher' : 'subscriber', connection: nodeConnection(lab.config(), name) })),
      { warn: (w) => warnings.push(w) },
    );
  });
  afterAll(async () => {
    await collector.close();
    await lab.cleanup();
  });

  it('turns commit counters into the rate of a known number of transactions', async () => {
    const t0 = Date.now();
    const first = await collector.scrape(t0);
    const before = find(first, 'pg_stat_database', { node: 'a', datname: 'postgres' })!;
    expect(before.fields.xact_commit_rate).toBeUndefined(); // no previous scrape yet
    await withConnection(nodeConnection(lab.config(), 'a'), async (sql) => {
      await sql`create table if not exists t (x int)`;
      for (let i = 0; i < 300; i++) await sql`insert into t values (${i})`;
    });
    // Pretend 2 s passed: the rate is the counter delta over the time between scrapes.
    const second = await collector.scrape(t0 + 2000);
    const after = find(second, 'pg_stat_database', { node: 'a', datname: 'postgres' })!;
    const delta = Number(after.fields.xact_commit) - Number(before.fields.xact_commit);
    expect(delta).toBeGreaterThanOrEqual(301);
    expect(delta).toBeLessThan(301 + 40); // the collector's own and the lab's few transactions
    expect(after.fields.xact_commit_rate).toBeCloseTo(delta / 2, 5);
    expect(find(second, 'pg_up', { node: 'a' })!.fields.up).toBe(1);
    expect(find(second, 'pg_connections_limit', { node: 'a' })!.fields.max).toBe(100);
    // Role decides which metrics apply: replication sender views on the publisher only.
    expect(second.some((p) => p.measurement === 'pg_subscription' && p.tags.node === 'a')).toBe(false);
  });

  it('a stopped node is up=0 without stopping the others, and comes back', async () => {
    await collector.scrape(); // b's once-a-minute families are read here, so not due again for a minute
    const state = readState(lab.config().stateDir)!.nodes.b!;
    if (state.runtime !== 'local') throw new Error('expected local');
    const pid = Number(fs.readFileSync(`${state.dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
    process.kill(pid, 'SIGINT');
    await waitFor(() => !processAlive(pid), 10_000, 'b to stop');
    const down = await collector.scrape();
    expect(find(down, 'pg_up', { node: 'b' })!.fields.up).toBe(0);
    expect(find(down, 'pg_up', { node: 'a' })!.fields.up).toBe(1);
    expect(find(down, 'pg_stat_database', { node: 'a' })).toBeDefined();
    expect(warnings.some((w) => w.startsWith('b: not answering'))).toBe(true);

    await labUp(lab.config());
    const back = await waitFor(async () => {
      const p = await collector.scrape();
      return find(p, 'pg_up', { node: 'b' })!.fields.up === 1 ? p : undefined;
    }, 15_000, 'b to be sampled again');
    expect(find(back, 'pg_stat_database', { node: 'b', datname: 'postgres' })).toBeDefined();
    // Families sampled once a minute are read again as soon as a node returns (a restart may have changed them).
    expect(find(back, 'pg_settings', { node: 'b', name: 'max_connections' })).toBeDefined();
    expect(find(back, 'pg_settings', { node: 'a' })).toBeUndefined();
  });

  it("the sampler's statement timeout is a connection parameter, so it survives a reconnect", async () => {
    const sql = connect(nodeConnection(lab.config(), 'a'), { statementTimeoutMs: 1234 });
    try {
      const pid = (await sql<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]!.pid;
      expect(await sql`show statement_timeout`).toEqual([{ statement_timeout: '1234ms' }]);
      // The server ends that connection (as an idle timeout or a restart would); the next query opens a new one.
      await withConnection(nodeConnection(lab.config(), 'a'), (other) => other`select pg_terminate_backend(${pid})`);
      await new Promise((r) => setTimeout(r, 200));
      const again = (await sql<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]!.pid;
      expect(again).not.toBe(pid);
      expect(await sql`show statement_timeout`).toEqual([{ statement_timeout: '1234ms' }]);
    } finally {
      await sql.end();
    }
  });

  it('a metric with every: is sampled once within its interval; SQL NULLs are left out, not zeros', async () => {
    const settings = loadCatalog().find((m) => m.name === 'pg_settings')!;
    expect(settings.everyMs).toBe(60_000);
    const sparse: MetricDefinition = {
      name: 'test_sparse', help: 'rows with NULLs', family: 'test', tags: ['k'],
      sql: { '10': "select * from (values ('half', null::float8, 1::float8), ('none', null, null)) v(k, a, b)" },
      fields: { a: { kind: 'gauge', unit: 'value' }, b: { kind: 'gauge', unit: 'value' } },
    };
    const c = new Collector([{ name: 'a', role: 'publisher', connection: nodeConnection(lab.config(), 'a') }], { metrics: [settings, sparse] });
    try {
      const t0 = Date.now();
      const count = (points: Point[]) => points.filter((p) => p.measurement === 'pg_settings').length;
      const first = await c.scrape(t0);
      expect(count(first)).toBeGreaterThan(100);
      expect(find(first, 'pg_settings', { name: 'max_connections' })!.fields).toEqual({ value: 100 });
      expect(find(first, 'pg_settings', { name: 'shared_buffers' })!.fields.bytes).toBe(128 * 1024 * 1024);
      expect(count(await c.scrape(t0 + 1000))).toBe(0);
      expect(count(await c.scrape(t0 + 59_000))).toBe(0);
      expect(count(await c.scrape(t0 + 60_000))).toBe(count(first));
      // The other metric runs every scrape; its NULL field is absent and an all-NULL row gives no point.
      const sparsePoints = first.filter((p) => p.measurement === 'test_sparse');
      expect(sparsePoints.map((p) => [p.tags.k, p.fields])).toEqual([['half', { b: 1 }]]);
    } finally {
      await c.close();
    }
  });

  it('a metric whose required relation exists but whose SQL names a missing one is disabled, not retried forever', async () => {
    const broken: MetricDefinition = {
      name: 'test_missing', help: 'reads a table that is not there', family: 'test', tags: [], requires: 'pg_class',
      sql: { '10': 'select count(*) as n from no_such_table_anywhere' },
      fields: { n: { kind: 'gauge', unit: 'rows' } },
    };
    const ok: MetricDefinition = { name: 'test_ok', help: 'one', family: 'test', tags: [], sql: { '10': 'select 1 as v' }, fields: { v: { kind: 'gauge', unit: 'value' } } };
    const seen: string[] = [];
    const c = new Collector([{ name: 'a', role: 'publisher', connection: nodeConnection(lab.config(), 'a') }], { metrics: [broken, ok], warn: (w) => seen.push(w) });
    try {
      const points = await c.scrape();
      expect(find(points, 'test_ok')!.fields).toEqual({ v: 1 });
      expect(find(points, 'pg_up')!.fields.up).toBe(1);
      await c.scrape();
      expect(seen).toEqual([expect.stringMatching(/^a: metric test_missing disabled on this node: relation "no_such_table_anywhere" does not exist/)]);
    } finally {
      await c.close();
    }
  });

  it('a metric whose SQL fails is disabled for that node with one warning; the rest go on', async () => {
    await withConnection(nodeConnection(lab.config(), 'a'), (sql) => sql`drop extension pg_stat_statements`);
    const points = await collector.scrape();
    await collector.scrape();
    const statementWarnings = warnings.filter((w) => w.startsWith('a: metric pg_statements disabled'));
    expect(statementWarnings).toHaveLength(1);
    expect(find(points, 'pg_locks', { node: 'a' })).toBeDefined();
    expect(find(points, 'pg_statements', { node: 'b' })).toBeDefined();
  });
});

// A server that was killed mid-scrape can leave the driver waiting on a connection that never
// answers. Here a listener plays such a server for real over TCP: it takes the connection and
// the startup message and then says nothing, ever (no Postgres server can be made to do that on
// purpose). The scrape must end at the collector's own timeout, before the driver's connect
// timeout (2 s) would, as pg_up 0.
describe('a node that stops answering', () => {
  let server: net.Server;
  let port: number;
  const sockets = new Set<net.Socket>();
  beforeAll(async () => {
    server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('is pg_up 0 once the scrape timeout passes, with one warning', async () => {
    const warnings: string[] = [];
    const collector = new Collector([{ name: 'mute', role: 'standalone', connection: { host: '127.0.0.1', port, user: 'u', password: 'p', database: 'd' } }], { scrapeTimeoutMs: 700, warn: (w) => warnings.push(w) });
    try {
      const started = Date.now();
      const points = await collector.scrape();
      expect(Date.now() - started).toBeLessThan(1500);
      expect(points).toEqual([expect.objectContaining({ measurement: 'pg_up', tags: { node: 'mute', role: 'standalone' }, fields: { up: 0 } })]);
      expect(warnings).toEqual(['mute: not answering (no answer within 0.7 s); retrying with backoff']);
    } finally {
      await collector.close();
    }
  });
});

describe('sample and metrics list commands', () => {
  let lab: TempLab;
  beforeAll(async () => {
    lab = tempLab('lab: samplecli\nports: { from: 56770, to: 56779 }\nnodes:\n  one: { role: publisher }\n');
    await labUp(lab.config());
  });
  afterAll(() => lab.cleanup());

  it('sample prints a live summary per interval, or every point as JSON', () => {
    const r = cli(['sample', '--interval', '250ms', '--duration', '1s'], { cwd: lab.dir });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(3);
    // One short line per node and sample (issue 15); --wide puts the lab on one line.
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} one {2}\d+ tps {2}\d+\/100 conn {2}hit [\d.]+% {2}mem [\d.]+M$/);
    expect(lines[2]).toMatch(/ {2}cpu \d+% {2}mem [\d.]+M$/);
    const wide = cli(['sample', '--interval', '250ms', '--duration', '300ms', '--wide'], { cwd: lab.dir });
    expect(wide.stdout.trim().split('\n')[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} {2}one: \d+ tps, \d+\/100 conn, hit [\d.]+%, mem [\d.]+M$/);
    const json = cli(['sample', '--interval', '250ms', '--duration', '300ms', '--json'], { cwd: lab.dir });
    const points = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as Point);
    expect(points.find((p) => p.measurement === 'pg_up')).toMatchObject({ tags: { node: 'one', role: 'publisher' }, fields: { up: 1 } });
    expect(new Set(points.map((p) => p.measurement)).size).toBeGreaterThanOrEqual(10);
  });

  it('samples only the metrics asked for, and names an unknown one', () => {
    const json = cli(['sample', '--interval', '250ms', '--duration', '300ms', '--json', '--metric', 'pg_locks'], { cwd: lab.dir });
    const measurements = new Set(json.stdout.trim().split('\n').map((l) => (JSON.parse(l) as Point).measurement));
    expect([...measurements].sort()).toEqual(['pg_locks', 'pg_up', 'process']);
    const r = cli(['sample', '--metric', 'pg_lock'], { cwd: lab.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--metric pg_lock: no such metric — did you mean "pg_locks"?');
  });

  it('refuses an interval under 250ms', () => {
    const r = cli(['sample', '--interval', '100ms'], { cwd: lab.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--interval 100ms: 250ms is the shortest interval');
  });

  it('metrics list prints the catalog', () => {
    const r = cli(['metrics', 'list', '--json'], { cwd: lab.dir });
    const catalog = JSON.parse(r.stdout) as { name: string }[];
    expect(catalog.map((m) => m.name)).toContain('pg_stat_database');
    expect(cli(['metrics', 'list'], { cwd: lab.dir }).stdout).toMatch(/^pg_stat_database\s+database\s+all\s+10\+\s+scrape\s+datname\s+xact_commit\(c\)/m);
    expect(cli(['metrics', 'list'], { cwd: lab.dir }).stdout).toMatch(/^pg_settings\s+settings\s+all\s+10\+\s+60s\s+name\s+bytes,seconds,value$/m);
  });
});

describe('process stats of local nodes', () => {
  let lab: TempLab;
  beforeAll(async () => {
    lab = tempLab('lab: procs\nports: { from: 56780, to: 56789 }\nnodes:\n  busy: { role: standalone }\n');
    await labUp(lab.config());
  });
  afterAll(() => lab.cleanup());

  it.runIf(process.platform === 'linux')('report the server processes, their memory and the CPU a busy query used', async () => {
    const state = readState(lab.config().stateDir)!.nodes.busy!;
    if (state.runtime !== 'local') throw new Error('expected local');
    const sampler = new ProcessSampler();
    const target = [{ name: 'busy', role: 'standalone' as const, pid: state.pid, cgroupDirs: [] }];
    // The same figures the slow way: every process's parent from /proc/*/stat, memory from status.
    const status = (pid: number | string, key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    const listChildren = () =>
      fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).filter((e) => {
        try {
          const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
          return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === state.pid;
        } catch {
          return false;
        }
      });
    // The postmaster forks and reaps workers (autovacuum…) at any time: compare with a listing
    // taken while the tree stood still around the sample.
    let children = listChildren();
    let t0 = Date.now();
    let first = (await sampler.sample(target, t0))[0]!;
    for (let tries = 0; tries < 10; tries++) {
      const before = children.join();
      children = listChildren();
      if (children.join() === before) break;
      t0 = Date.now();
      first = (await sampler.sample(target, t0))[0]!;
    }
    expect(first.fields.processes).toBeGreaterThanOrEqual(5); // postmaster, checkpointer, walwriter, …
    expect(first.fields.processes).toBe(children.length + 1);
    const expected = [state.pid!, ...children].reduce((sum: number, pid) => sum + status(pid, 'RssAnon'), 0) + status(state.pid!, 'RssShmem');
    expect(first.fields.memory_bytes).toBeGreaterThan(expected * 0.8);
    expect(first.fields.memory_bytes).toBeLessThan(expected * 1.25);
    expect(first.fields.cpu_percent).toBeUndefined();
    // The CPU the backend really got (utime + stime in clock ticks, 100 a second on Linux): on a
    // busy machine that is far less than the query's wall time.
    const cpuMsOf = (pid: number) => {
      const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(fields[11]) + Number(fields[12])) * 10;
    };
    let backendCpuMs = 0;
    const backend = await withConnection(nodeConnection(lab.config(), 'busy'), async (sql) => {
      await sql`select count(*) from generate_series(1, 4000000)`;
      const pid = (await sql<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]!.pid;
      backendCpuMs = cpuMsOf(pid);
      return pid;
    });
    expect(backendCpuMs).toBeGreaterThan(0);
    // Its CPU moves to the postmaster's reaped-children time once the postmaster has waited for
    // the exited backend; sampled in between, the CPU would show up one sample later.
    await waitFor(() => !fs.existsSync(`/proc/${backend}`), 5000, 'the postmaster to reap the backend');
    const t1 = Date.now();
    const second = (await sampler.sample(target, t1))[0]!;
    // All of the backend's CPU shows up in the node's share over the interval (tick rounding aside).
    expect(Number(second.fields.cpu_percent)).toBeGreaterThan((((backendCpuMs - 20) * 0.9) / (t1 - t0)) * 100);
    expect(second.fields.read_bytes_rate).toEqual(expect.any(Number)); // /proc/PID/io is read
  });

  // macOS has no /proc: there the sampler reads `ps`. Linux's procps speaks the same options, so
  // that path runs here against the real server (procps prints CPU time in whole seconds).
  it('from ps: the same processes, their resident memory and the CPU a busy backend used', async () => {
    const state = readState(lab.config().stateDir)!.nodes.busy!;
    if (state.runtime !== 'local') throw new Error('expected local');
    const sampler = new ProcessSampler({ source: 'ps' });
    const target = [{ name: 'busy', role: 'standalone' as const, pid: state.pid, cgroupDirs: [] }];
    const sql = connect(nodeConnection(lab.config(), 'busy'), { max: 1 });
    try {
      const backend = (await sql<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]!.pid;
      // ps runs as a child process the event loop does not wait on: other work goes on meanwhile.
      let loopTurned = false;
      setImmediate(() => (loopTurned = true));
      const listTree = () =>
        parsePsListing(spawnSync('ps', ['-A', '-o', 'pid=,ppid=,rss=,time='], { encoding: 'utf8' }).stdout).filter((p) => p.pid === state.pid || p.ppid === state.pid);
      // The postmaster forks and reaps workers (autovacuum…) at any time: compare with a listing
      // taken while the tree stood still around the sample.
      let first = (await sampler.sample(target))[0]!;
      expect(loopTurned).toBe(true);
      let tree = listTree();
      for (let tries = 0; tries < 10; tries++) {
        const before = tree.map((p) => p.pid).join();
        first = (await sampler.sample(target))[0]!;
        tree = listTree();
        if (tree.map((p) => p.pid).join() === before) break;
      }
      expect(tree.map((p) => p.pid)).toContain(backend);
      expect(first.fields.processes).toBe(tree.length);
      const rss = tree.reduce((sum, p) => sum + p.rssBytes, 0);
      expect(first.fields.memory_bytes).toBeGreaterThan(rss * 0.8);
      expect(first.fields.memory_bytes).toBeLessThan(rss * 1.25);
      expect(first.fields.read_bytes).toBeUndefined(); // ps has no I/O figures
      await sql`select count(*) from generate_series(1, 30000000)`;
      const second = (await sampler.sample(target))[0]!;
      expect(Number(second.fields.cpu_seconds) - Number(first.fields.cpu_seconds)).toBeGreaterThanOrEqual(1);
      expect(second.fields.cpu_percent).toBeGreaterThan(0);
    } finally {
      await sql.end();
    }
  });
});

describe('ps output', () => {
  it.each([
    ['0:01.25', 1.25], // macOS
    ['12:03.50', 723.5],
    ['1:02:03.04', 3723.04],
    ['00:00:01', 1], // procps
    ['2-03:04:05', 2 * 86400 + 3 * 3600 + 4 * 60 + 5],
    ['-', undefined],
    ['1.5', undefined],
    ['', undefined],
  ])('CPU time %j is %j seconds', (text, seconds) => {
    const parsed = parseCpuTime(text);
    if (seconds === undefined) expect(parsed).toBeUndefined();
    else expect(parsed).toBeCloseTo(seconds, 6);
  });

  it('a listing: pid, parent, resident KiB and CPU time, skipping what does not parse', () => {
    expect(parsePsListing('  101     1  20480   0:00.50\n  102   101   1024 00:00:02\n garbage line\n')).toEqual([
      { pid: 101, ppid: 1, rssBytes: 20480 * 1024, cpuSeconds: 0.5 },
      { pid: 102, ppid: 101, rssBytes: 1024 * 1024, cpuSeconds: 2 },
    ]);
  });
});

describe('end-to-end replication latency from the heartbeat', () => {
  let lab: TempLab;
  beforeAll(async () => {
    lab = tempLab(`lab: beat
ports: { from: 56790, to: 56799 }
nodes:
  pub: { role: publisher }
  sub: { role: subscriber }
schema:
  - sql: "create table if not exists t (id int primary key, topic text)"
publications:
  only_a: { node: pub, tables: { t: { where: "topic = 'a'", replicaIdentity: full } } }
subscriptions:
  s: { node: sub, publications: [only_a] }
`);
    await labUp(lab.config());
  });
  afterAll(() => lab.cleanup());

  it('measures commit-to-apply time per subscription, outside the row filter (the heartbeat writer beats, the collector reads)', async () => {
    const config = lab.config();
    const nodes = (['pub', 'sub'] as const).map((name) => ({ name, role: name === 'pub' ? ('publisher' as const) : ('subscriber' as const), connection: nodeConnection(config, name) }));
    const collector = new Collector(nodes);
    const heartbeat = new HeartbeatWriter(nodes, heartbeatPublications(config.replication));
    try {
      const point = await waitFor(async () => {
        await heartbeat.beat();
        const p = find(await collector.scrape(), 'replication_heartbeat', { node: 'sub', subscription: 's' });
        return p && Number(p.fields.age_seconds) < 5 ? p : undefined;
      }, 20_000, 'a heartbeat to arrive');
      expect(point.tags.publication).toBe('only_a');
      expect(point.fields.lag_seconds).toBeGreaterThan(0);
      expect(point.fields.lag_seconds).toBeLessThan(5);
    } finally {
      await Promise.all([collector.close(), heartbeat.close()]);
    }
  });
});
