import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_YAML } from '../src/config/index.js';
import { nodeConnection, readSecrets } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { maintainStore } from '../src/sinks/index.js';
import { cli, portRange, tempLab, waitFor, type TempLab } from './helpers.js';

/**
 * The dashboard's JSON API against a real lab (the default topology: a publisher, two filtered
 * subscribers, the metrics node), served by the real agent: the token, bad input, the
 * read-only role, and downsampled series checked against the same aggregate written by hand.
 */

const YAML = DEFAULT_CONFIG_YAML.replace('lab: prodhome', 'lab: dashapi').replace(/ports:\n  from: \d+\n  to: \d+\n/, portRange(58800));

let lab: TempLab;
let url: string; // with the token
let base: string; // without it
let token: string;

const get = async (p: string, withToken = true) => {
  const res = await fetch(`${base}${p}${withToken ? `${p.includes('?') ? '&' : '?'}token=${token}` : ''}`);
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') ?? '' };
};

beforeAll(async () => {
  lab = tempLab(YAML);
  const up = cli(['up'], { cwd: lab.dir });
  expect(up.code, up.stderr).toBe(0);
  // `up` ends by printing the dashboard's URL, token included.
  const printed = /Dashboard: (http:\/\/127\.0\.0\.1:\d+\/\?token=\S+)/.exec(up.stdout)?.[1];
  expect(printed, up.stdout).toBeDefined();
  const r = cli(['dashboard', '--print-url'], { cwd: lab.dir });
  expect(r.code, r.stderr).toBe(0);
  url = r.stdout.trim();
  expect(url).toBe(printed);
  base = url.slice(0, url.indexOf('/?'));
  token = new URL(url).searchParams.get('token')!;
  // Wait until the store holds a few seconds of samples.
  await waitFor(async () => {
    const s = JSON.parse((await get(`/api/series?panel=transactions&from=${Date.now() - 60_000}`)).text) as { times: number[] };
    return s.times.length >= 12;
  }, 60_000, 'samples in the store');
}, 180_000);

afterAll(async () => {
  await lab?.cleanup();
});

describe('dashboard API', () => {
  it('answers 401 without the token: a page saying how to get the URL, JSON under /api', async () => {
    const page = await get('/', false);
    expect(page.status).toBe(401);
    expect(page.type).toContain('text/html');
    expect(page.text).toContain('prodhome dashboard --print-url');
    const api = await get(`/api/series?panel=transactions&from=${Date.now() - 60_000}`, false);
    expect(api.status).toBe(401);
    expect(JSON.parse(api.text).error).toMatch(/token/);
    const wrong = await fetch(`${base}/api/panels?token=${token.slice(0, -1)}x`);
    expect(wrong.status).toBe(401);
  });

  it('answers bad input with 400 and the parameter, never a stack trace or a 500', async () => {
    const now = Date.now();
    const cases: [string, string][] = [
      [`/api/series?panel=nope&from=${now - 60_000}`, 'panel'],
      ['/api/series?panel=transactions&from=yesterday', 'from'],
      ['/api/series?panel=transactions', 'from'],
      [`/api/series?panel=transactions&from=${now}&to=${now - 1000}`, 'to'],
      [`/api/series?panel=transactions&from=${now - 60_000}&step=0`, 'step'],
      [`/api/series?panel=transactions&from=${now - 86_400_000}&step=1`, 'step'],
      [`/api/series?panel=transactions&from=${now - 60_000}&nodes=publisher,ghost`, 'nodes'],
      [`/api/statements?from=${now - 40 * 86_400_000}`, 'from'],
      [`/api/annotations?from=1e3`, 'from'],
    ];
    for (const [p, parameter] of cases) {
      const r = await get(p);
      expect(r.status, p).toBe(400);
      const body = JSON.parse(r.text) as { error: string; parameter: string };
      expect(body.parameter, p).toBe(parameter);
      expect(body.error, p).toContain(parameter === 'nodes' ? 'ghost' : parameter);
      expect(r.text).not.toMatch(/\n\s+at |node_modules|\.ts:\d+/);
    }
    expect((await get('/api/nothing')).status).toBe(404);
    expect((await get('/static/../../package.json')).status).toBe(404);
  });

  it('downsamples in SQL: each bucket equals the same aggregate computed by hand on the same rows', async () => {
    const to = Date.now() - 2000;
    const from = to - 60_000;
    const api = JSON.parse((await get(`/api/series?panel=transactions&from=${from}&to=${to}&step=5`)).text) as {
      step: number;
      times: number[];
      series: { node: string; field: string; values: (number | null)[] }[];
    };
    expect(api.step).toBe(5);
    expect(new Set(api.series.map((s) => s.node))).toEqual(new Set(['publisher', 'subscriber1', 'subscriber2', 'metrics']));
    // By hand, from the view of the raw rows: each database's commits per second from its counter
    // (none across a reset), their mean per 5 s bucket (floor, not date_bin), summed over the
    // node's databases.
    const hand = await withConnection(nodeConnection(lab.config(), 'metrics'), (sql) => sql<{ t: number; node: string; v: number }[]>`
      select t, node, sum(m)::float8 as v from (
        select (floor(extract(epoch from time) / 5) * 5000)::float8 as t, node, datname, avg(r) as m from (
          select time, node, datname, case when xact_commit >= lag(xact_commit) over w
            then (xact_commit - lag(xact_commit) over w) / extract(epoch from time - lag(time) over w) end as r
          from metrics.pg_stat_database where time >= ${new Date(from - 60_000)} and time < ${new Date(to)}
          window w as (partition by node, datname order by time)) d
        where time >= ${new Date(from)} group by 1, 2, 3) b
      group by 1, 2 order by 1, 2`);
    expect(hand.length).toBeGreaterThanOrEqual(8); // at least two buckets for each of the four nodes
    let compared = 0;
    for (const row of hand) {
      if (row.v === null) continue;
      const s = api.series.find((x) => x.node === row.node && x.field === 'xact_commit_rate')!;
      const i = api.times.indexOf(row.t);
      expect(i, `bucket ${row.t}`).toBeGreaterThanOrEqual(0);
      expect(s.values[i]).toBeCloseTo(row.v, 9);
      compared++;
    }
    expect(compared).toBe(hand.filter((r) => r.v !== null).length);
    // The node filter keeps only the nodes asked for.
    const one = JSON.parse((await get(`/api/series?panel=transactions&from=${from}&to=${to}&nodes=subscriber2`)).text) as { series: { node: string }[] };
    expect(one.series.length).toBeGreaterThan(0);
    expect(new Set(one.series.map((s) => s.node))).toEqual(new Set(['subscriber2']));
  });

  it('answers several panels in one request, each only from the bucket it asks since (live mode)', async () => {
    const to = Date.now();
    const from = to - 120_000;
    const since = to - 20_000;
    const r = JSON.parse((await get(`/api/batch?panels=transactions:${since},cpu&from=${from}&to=${to}&step=5`)).text) as { results: { panel: string; step: number; times: number[] }[] };
    expect(r.results.map((x) => [x.panel, x.step])).toEqual([['transactions', 5], ['cpu', 5]]);
    expect(r.results[0]!.times.length).toBeGreaterThan(0);
    expect(Math.min(...r.results[0]!.times)).toBeGreaterThanOrEqual(Math.floor(since / 5000) * 5000);
    // Without a since: the whole range, as /api/series answers it.
    const whole = JSON.parse((await get(`/api/series?panel=cpu&from=${from}&to=${to}&step=5`)).text) as { times: number[] };
    expect(r.results[1]!.times).toEqual(whole.times);
    const bad = await get(`/api/batch?panels=transactions,nope&from=${from}`);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text)).toMatchObject({ parameter: 'panels' });
  });

  it('reads a long range from the 1-minute rollups (as the store job made them), then the raw rows past them', { timeout: 120_000 }, async () => {
    const owner = nodeConnection(lab.config(), 'metrics');
    // The agent's sink runs the job every minute; run it now, as it would.
    const job = { schema: 'metrics', rawKeepMs: 6 * 3_600_000, oneMinuteKeepMs: 2 * 86_400_000, retentionMs: 7 * 86_400_000, settleMs: 0 };
    const rolled = () => withConnection(owner, (sql) => sql<{ t: number; node: string; datname: string; v: number }[]>`
      select (extract(epoch from r.time) * 1000)::float8 as t, s.tags->>'node' as node, s.tags->>'datname' as datname, r.bytes_avg::float8 as v
      from metrics.pg_database_size_1m r join metrics._series s on s.id = r.sid
      where r.time < (select done_until from metrics._rollup where measurement = 'pg_database_size' and tier = '1m') order by 1`);
    // Until a whole minute of samples is rolled up (the lab may be younger than that).
    const hand = await waitFor(async () => {
      const r = await withConnection(owner, (sql) => maintainStore(sql, { ...job, now: Date.now() }));
      const rows = r.unfinished ? [] : await rolled().catch(() => []);
      return rows.length ? rows : undefined;
    }, 90_000, 'a minute rolled up');
    type Answer = { step: number; tier: string; times: number[]; series: { tags: { node: string; datname: string }; values: (number | null)[] }[] };
    const last = Math.max(...hand.map((h) => h.t));
    // Once the store has a sample past the rolled minutes (they are written every second).
    const api = await waitFor(async () => {
      const to = Date.now();
      const a = JSON.parse((await get(`/api/series?panel=database_size&from=${to - 6 * 3_600_000}&to=${to}&buckets=400`)).text) as Answer;
      return a.times[a.times.length - 1]! > last ? a : undefined;
    }, 10_000, 'the raw rows past the rollups');
    expect([api.step, api.tier]).toEqual([60, '1m']);
    expect(hand.length).toBeGreaterThan(0);
    for (const row of hand) {
      const s = api.series.find((x) => x.tags.node === row.node && x.tags.datname === row.datname)!;
      expect(s.values[api.times.indexOf(row.t)]).toBeCloseTo(row.v, 0);
    }
  });

  it('a busiest-tables panel returns only the top 10 tables by its measure (dead rows: the range\'s max), checked by hand', { timeout: 60_000 }, async () => {
    // Twelve tables with known dead rows (i × 100, autovacuum off), so the ranking has no ties.
    await withConnection(nodeConnection(lab.config(), 'publisher'), async (sql) => {
      for (let i = 1; i <= 12; i++) {
        await sql.unsafe(`create table top_dead_${i} (x int) with (autovacuum_enabled = false)`);
        await sql.unsafe(`insert into top_dead_${i} select generate_series(1, ${i * 100})`);
        await sql.unsafe(`delete from top_dead_${i}`);
      }
    });
    type Answer = { series: { tags: { node: string; table: string } }[] };
    const owner = nodeConnection(lab.config(), 'metrics');
    const hand = async (from: number, to: number) => withConnection(owner, (sql) => sql<{ node: string; table: string; m: number }[]>`
      select node, "table", max(n_dead_tup)::float8 as m from metrics.pg_table
      where time >= ${new Date(from)} and time < ${new Date(to)} group by 1, 2`);
    // Once the store has sampled them (pg_table every 5 s).
    await waitFor(async () => (await hand(Date.now() - 60_000, Date.now())).some((r) => r.table === 'top_dead_12' && r.m === 1200), 30_000, 'dead rows sampled');
    const to = Date.now();
    const from = to - 3_600_000;
    const api = JSON.parse((await get(`/api/series?panel=dead_tuples&from=${from}&to=${to}`)).text) as Answer;
    const rows = await hand(from, to);
    const key = (node: string, table: string) => `${node}/${table}`;
    const chosen = new Set(api.series.map((s) => key(s.tags.node, s.tags.table)));
    expect(rows.length).toBeGreaterThan(10);
    expect(chosen.size).toBe(10);
    // By hand: the ten largest maxima are 1200 … 300, the tables top_dead_12 … top_dead_3.
    const sorted = [...rows].sort((a, b) => b.m - a.m);
    expect(sorted.slice(0, 10).map((r) => r.m)).toEqual([1200, 1100, 1000, 900, 800, 700, 600, 500, 400, 300]);
    expect([...chosen].sort()).toEqual(sorted.slice(0, 10).map((r) => key(r.node, r.table)).sort());
  });

  it('reads through a role that can only SELECT schema metrics, in read-only sessions', async () => {
    const secret = readSecrets(lab.config().stateDir).dashboard!;
    expect(secret.password.length).toBeGreaterThan(16);
    const owner = nodeConnection(lab.config(), 'metrics');
    await withConnection(owner, (sql) => sql`create table if not exists public.not_for_dashboard (x int)`);
    await withConnection({ ...owner, user: secret.user, password: secret.password }, async (sql) => {
      const [row] = await sql<{ n: number }[]>`select count(*)::int as n from metrics.pg_up`;
      expect(row!.n).toBeGreaterThan(0);
      await expect(sql`select * from public.not_for_dashboard`).rejects.toMatchObject({ code: '42501' });
      await expect(sql`insert into metrics.annotations (time, kind, text) values (now(), 'x', 'y')`).rejects.toMatchObject({ code: '25006' });
      await expect(sql`create table metrics.mine (x int)`).rejects.toMatchObject({ code: '25006' });
      const [priv] = await sql<{ w: boolean }[]>`select has_table_privilege('metrics.annotations', 'INSERT') as w`;
      expect(priv!.w).toBe(false);
    });
  });

  it('records a load run as an annotation (start, end, command) the API returns', async () => {
    const before = Date.now();
    const load = cli(['load', 'read', '-T', '2', '-c', '1'], { cwd: lab.dir });
    expect(load.code, load.stderr).toBe(0);
    const r = JSON.parse((await get(`/api/annotations?from=${before - 1000}`)).text) as { annotations: { time: number; end: number; kind: string; node: string; text: string }[] };
    const run = r.annotations.find((a) => a.kind === 'load');
    expect(run, JSON.stringify(r)).toBeDefined();
    expect(run!.text).toBe('prodhome load read -T 2 -c 1');
    expect(run!.node).toBe('publisher');
    expect(run!.end - run!.time).toBeGreaterThanOrEqual(2000);
    expect(run!.time).toBeGreaterThanOrEqual(before);
    // Its seconds reach the load panels (handed to the agent, which stores them with its next sample).
    await waitFor(async () => {
      const tps = JSON.parse((await get(`/api/series?panel=load_tps&from=${before - 1000}`)).text) as { series: { node: string; values: (number | null)[] }[] };
      return tps.series.find((s) => s.node === 'publisher')?.values.some((v) => v !== null && v > 0);
    }, 10_000, "the run's seconds on the load panel");
  }, 60_000);

  it('serves topology and overview from the latest sample: both subscriptions with their filters', async () => {
    const live = JSON.parse((await get('/api/live')).text) as {
      nodes: { name: string; up: boolean; maxConnections: number }[];
      links: { subscription: string; publisher: string; subscriber: string; state: string; publications: { tables: { where: string }[] }[] }[];
    };
    expect(live.nodes.map((n) => [n.name, n.up])).toEqual([['publisher', true], ['subscriber1', true], ['subscriber2', true], ['metrics', true]]);
    expect(live.nodes[0]!.maxConnections).toBe(100);
    expect(live.links.map((l) => [l.subscription, l.publisher, l.subscriber, l.state, l.publications[0]!.tables[0]!.where])).toEqual([
      ['leadership_sub', 'publisher', 'subscriber1', 'streaming', "topic = 'leadership'"],
      ['technical_sub', 'publisher', 'subscriber2', 'streaming', "topic = 'technical'"],
    ]);
  });

  it('takes points other processes hand the agent (POST /api/points): only with the token, only well-formed, then into the store', async () => {
    const post = (body: unknown, withToken = true) =>
      fetch(`${base}/api/points`, { method: 'POST', headers: { 'content-type': 'application/json', ...(withToken ? { 'x-prodhome-token': token } : {}) }, body: JSON.stringify(body) });
    const point = { measurement: 'workload', tags: { workload: 'apitest', node: 'publisher', run: '424242' }, fields: { tps: 12.5, transactions: 12, failed: 0 }, time: Date.now() };
    expect((await post([point], false)).status).toBe(401);
    const bad = await post([{ ...point, fields: { tps: 'x', nested: { a: 1 } } }]);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ parameter: 'body[0]' });
    expect((await post({ not: 'an array' })).status).toBe(400);
    expect((await post([point])).status).toBe(204);
    const rows = await waitFor(
      () => withConnection(nodeConnection(lab.config(), 'metrics'), (sql) => sql`select tps, transactions from metrics.workload where workload = 'apitest' and run = '424242'`).catch(() => []).then((r) => (r.length ? r : undefined)),
      10_000,
      'the handed point in the store',
    );
    expect(rows).toEqual([{ tps: 12.5, transactions: '12' }]); // a count: bigint, which the driver returns as text
  });

  it('never puts a password in a response', async () => {
    const secrets = readSecrets(lab.config().stateDir);
    const passwords = [...Object.values(secrets.nodes).map((n) => n.password), ...Object.values(secrets.replication ?? {}), secrets.dashboard!.password];
    expect(passwords.length).toBeGreaterThanOrEqual(5);
    const now = Date.now();
    const panels = (JSON.parse((await get('/api/panels')).text) as { panels: { id: string }[] }).panels;
    const paths = ['/', '/static/app.js', '/api/panels', '/api/live', '/api/health', `/api/annotations?from=${now - 600_000}`, `/api/statements?from=${now - 600_000}`, `/api/statements?from=${now - 86_400_000}`, ...panels.map((p) => `/api/series?panel=${p.id}&from=${now - 600_000}`)];
    for (const p of paths) {
      const r = await get(p);
      expect(r.status, p).toBe(200);
      for (const pw of passwords) expect(r.text.includes(pw), `${p} contains a password`).toBe(false);
    }
  });

  it('`prodhome dashboard` without a running agent says so and exits 2', async () => {
    const down = cli(['down'], { cwd: lab.dir });
    expect(down.code, down.stderr).toBe(0);
    const r = cli(['dashboard'], { cwd: lab.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no running agent');
    expect(r.stderr).toContain('prodhome up');
    expect(fs.existsSync(path.join(lab.dir, '.prodhome', 'dashapi', 'secrets.json'))).toBe(true);
  }, 60_000);
});
