import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import type { NodeRole, ReplicationConfig } from '../config/index.js';
import { connect, type ConnectionInfo, type Sql } from '../pg/index.js';
import { chooseTier, storedColumns, type Point, type Tier } from '../sinks/index.js';
import { liveView, type LivePoint } from './live.js';
import { chooseStep, loadPanels, panelFields, seriesSql, type Panel } from './panels.js';

/**
 * The dashboard's HTTP server, hosted by the lab's agent on 127.0.0.1: the page (static files,
 * no build at run time), and a JSON API that reads the metrics store through the read-only
 * role, downsampled in SQL. Every request carries the lab's token (in the URL once; the page
 * then sends it as a header). Errors are JSON naming what was wrong — never a stack trace.
 */

export interface DashboardOptions {
  host?: string;
  port?: number;
  /** The port the lab's previous agent served on, tried first when `port` is not set. */
  previousPort?: number;
  token: string;
  lab: string;
  nodes: { name: string; role: NodeRole }[];
  replication: ReplicationConfig;
  /** The metrics store as the read-only role sees it; undefined: the lab has no store. */
  store?: ConnectionInfo;
  intervalMs: number;
  /** The agent's latest sample, for the topology and overview. */
  latest: () => readonly LivePoint[];
  /** Points other prodhome processes hand the agent (POST /api/points): a load run's seconds. */
  ingest?: (points: HandedPoint[]) => void;
  log: (line: string) => void;
}

export interface DashboardServer {
  /** http://127.0.0.1:PORT/ (without the token) */
  url: string;
  port: number;
  close(): Promise<void>;
  /** Why the server stopped working by itself, or undefined while it serves. */
  failure(): string | undefined;
}

const STATIC_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'dashboard', 'static');
const require = createRequire(import.meta.url);
const UPLOT_DIR = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));

/** The files the page is made of; nothing else is served. */
const ASSETS: Record<string, { file: string; type: string }> = {
  'app.js': { file: path.join(STATIC_DIR, 'app.js'), type: 'text/javascript; charset=utf-8' },
  'app.css': { file: path.join(STATIC_DIR, 'app.css'), type: 'text/css; charset=utf-8' },
  'uPlot.iife.min.js': { file: path.join(UPLOT_DIR, 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uPlot.min.css': { file: path.join(UPLOT_DIR, 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

class BadRequest extends Error {
  constructor(
    readonly parameter: string,
    message: string,
  ) {
    super(message);
  }
}

const MAX_RANGE_MS = 31 * 86_400_000;
const MAX_POINTS_BODY = 4 * 1024 * 1024;
const MAX_POINTS = 20_000;

/** A point as another process hands it over (JSON: numbers and strings as field values). */
export type HandedPoint = Point;

/** The posted body as points, or a 400 naming what is wrong: nothing malformed reaches a sink. */
export function handedPoints(body: unknown): HandedPoint[] {
  if (!Array.isArray(body)) throw new BadRequest('body', 'expected a JSON array of points');
  if (body.length > MAX_POINTS) throw new BadRequest('body', `at most ${MAX_POINTS} points a request`);
  const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  return body.map((p, i) => {
    const ok =
      isRecord(p) &&
      typeof p.measurement === 'string' && /^[a-z_][a-z0-9_]{0,62}$/.test(p.measurement) &&
      isRecord(p.tags) && Object.values(p.tags).every((v) => typeof v === 'string') &&
      isRecord(p.fields) && Object.values(p.fields).every((v) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) &&
      typeof p.time === 'number' && Number.isFinite(p.time);
    if (!ok) throw new BadRequest(`body[${i}]`, 'expected {measurement, tags: {name: string}, fields: {name: number|string}, time: ms since the epoch}');
    return p as unknown as HandedPoint;
  });
}
const MAX_BUCKETS = 5000;

export async function startDashboard(o: DashboardOptions): Promise<DashboardServer> {
  const panels = loadPanels();
  const byId = new Map(panels.map((p) => [p.id, p]));
  const store = o.store ? new StorePool(o.store) : undefined;
  const app = Fastify({
    logger: false,
    bodyLimit: 1024,
    connectionTimeout: 30_000,
    requestTimeout: 15_000,
    keepAliveTimeout: 5_000,
    routerOptions: { maxParamLength: 100 },
  });
  app.server.maxConnections = 64;
  let cookieName = 'prodhome_token'; // + the port, once listening
  const expected = Buffer.from(o.token);
  const tokenOk = (given: string | undefined) => {
    if (!given) return false;
    const b = Buffer.from(given);
    return b.length === expected.length && crypto.timingSafeEqual(b, expected);
  };

  app.addHook('onRequest', async (req, reply) => {
    const query = req.query as Record<string, string | undefined>;
    const header = req.headers['x-prodhome-token'];
    // Cookies are shared by every port of 127.0.0.1: each lab's dashboard has its own name.
    const cookie = new RegExp(`(?:^|;\\s*)${cookieName}=([A-Za-z0-9_-]+)`).exec(req.headers.cookie ?? '')?.[1];
    if (tokenOk(query.token) || tokenOk(typeof header === 'string' ? header : undefined) || tokenOk(cookie)) return;
    if (req.url.startsWith('/api/')) return reply.code(401).send({ error: 'unauthorized: this dashboard needs its token', hint: 'run `prodhome dashboard` to print the URL with the token' });
    return reply.code(401).type('text/html; charset=utf-8').send(unauthorizedPage(o.lab));
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('cache-control', 'no-store');
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('content-security-policy', "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'");
    return payload;
  });
  app.setErrorHandler((e: Error & { statusCode?: number }, _req, reply) => {
    if (e instanceof BadRequest) return reply.code(400).send({ error: e.message, parameter: e.parameter });
    if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return reply.code(e.statusCode).send({ error: e.message.split('\n')[0] });
    // A store error: the page shows a banner and keeps its last data. No details that could carry a credential.
    const code = (e as { code?: string }).code;
    o.log(`dashboard: ${code ?? ''} ${e.message.split('\n')[0]}`);
    return reply.code(503).send({ error: 'the metrics store did not answer', code: typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined });
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).send({ error: 'not found', hint: 'the page is at /, the API under /api/' }));

  app.get('/', async (req, reply) => {
    const query = req.query as Record<string, string | undefined>;
    // The token moves from the URL into a cookie the page's own requests carry (as Jupyter does).
    if (query.token && tokenOk(query.token)) reply.header('set-cookie', `${cookieName}=${o.token}; HttpOnly; SameSite=Strict; Path=/`);
    return reply.type('text/html; charset=utf-8').send(fs.readFileSync(path.join(STATIC_DIR, 'index.html')));
  });
  app.get('/static/:file', async (req, reply) => {
    const asset = ASSETS[(req.params as { file: string }).file];
    if (!asset) return reply.code(404).send({ error: 'not found' });
    return reply.type(asset.type).send(fs.readFileSync(asset.file));
  });

  app.get('/api/panels', async () => ({
    lab: o.lab,
    intervalMs: o.intervalMs,
    nodes: o.nodes,
    store: store !== undefined,
    panels: panels.map((p) => ({ ...p, sql: seriesSql(p) })),
  }));

  app.get('/api/live', async () => liveView(o.nodes, o.replication, o.latest()));

  // Columns of a measurement's raw table now (a field not yet sampled is left out, not an error).
  const columnsCache = new Map<string, { at: number; columns: Map<string, string> }>();
  const columnsOf = async (measurement: string): Promise<Map<string, string>> => {
    const hit = columnsCache.get(measurement);
    if (hit && Date.now() - hit.at < 10_000) return hit.columns;
    const columns = await store!.run((sql) => storedColumns(sql, measurement));
    columnsCache.set(measurement, { at: Date.now(), columns });
    return columns;
  };
  const sqlCache = new Map<string, string>();

  /** One panel's series over a range: the tier that fits the bucket, downsampled in SQL. */
  const series = async (panel: Panel, from: number, to: number, step: number, nodes: string[] | undefined) => {
    if (!store) return { panel: panel.id, from, to, step, times: [], series: [], note: 'this lab has no metrics store' };
    const stored = await columnsOf(panel.measurement);
    const fields = panelFields(panel, stored);
    if (!fields.length) return { panel: panel.id, from, to, step, times: [], series: [] };
    const tier = chooseTier(step, from, Date.now());
    const key = `${panel.id}/${tier}/${fields.join(',')}`;
    let text = sqlCache.get(key);
    if (!text) sqlCache.set(key, (text = seriesSql(panel, stored, tier)));
    const rows = await store.run((sql) => sql.unsafe<Record<string, unknown>[]>(text, [new Date(from), new Date(to), `${step} seconds`, nodes ?? null] as never[]));
    return { panel: panel.id, from, to, step, tier, ...columnar(panel, fields, rows) };
  };

  /** from, to, step (from `step`, else from `buckets`: the chart's width in pixels) and nodes of a series request. */
  const seriesRange = (q: Record<string, string | undefined>) => {
    const { from, to } = range(q);
    const buckets = q.buckets === undefined ? 400 : int(q.buckets, 'buckets', 10, 1000);
    const step = q.step === undefined ? chooseStep(to - from, o.intervalMs, buckets) : int(q.step, 'step', 1, 86_400);
    if ((to - from) / (step * 1000) > MAX_BUCKETS) throw new BadRequest('step', `step ${step} s makes more than ${MAX_BUCKETS} buckets over this range: use a larger step`);
    return { from, to, step, nodes: nodeFilter(q.nodes) };
  };

  app.get('/api/series', async (req) => {
    const q = req.query as Record<string, string | undefined>;
    const panel = byId.get(q.panel ?? '');
    if (!panel) throw new BadRequest('panel', `unknown panel ${JSON.stringify(q.panel ?? '')}: expected one of ${[...byId.keys()].join(', ')}`);
    const r = seriesRange(q);
    return series(panel, r.from, r.to, r.step, r.nodes);
  });

  // Several panels over one range in one request: what the page asks for on each live tick (only
  // what is new since its last bucket), so a tick is one request, not one per panel.
  app.get('/api/batch', async (req) => {
    const q = req.query as Record<string, string | undefined>;
    // panels=ID or ID:SINCE (epoch ms: only buckets from there on, for a page that has the rest)
    const asked = (q.panels ?? '').split(',').filter(Boolean).map((p) => p.split(':'));
    if (!asked.length) throw new BadRequest('panels', 'panels is required: panel ids (each optionally :SINCE in epoch ms) separated by commas');
    if (asked.length > 100) throw new BadRequest('panels', 'at most 100 panels a request');
    const unknown = asked.filter(([id]) => !byId.has(id!)).map(([id]) => id!);
    if (unknown.length) throw new BadRequest('panels', `unknown panel ${unknown.map((u) => JSON.stringify(u)).join(', ')}: expected some of ${[...byId.keys()].join(', ')}`);
    const r = seriesRange(q);
    const sinceOf = (since: string | undefined) => (since === undefined ? r.from : Math.min(Math.max(r.from, int(since, 'panels', 0, 8_640_000_000_000)), r.to - 1));
    // One panel the store could not answer in time costs that panel, not the others (the page keeps its last data).
    let failure: unknown;
    const results = await Promise.all(
      asked.map(([id, since]) =>
        series(byId.get(id!)!, sinceOf(since), r.to, r.step, r.nodes).catch((e: unknown) => {
          failure ??= e;
          o.log(`dashboard: panel ${id}: ${(e as { code?: string }).code ?? ''} ${(e as Error).message.split('\n')[0]}`);
          return { panel: id!, error: 'the metrics store did not answer' };
        }),
      ),
    );
    if (failure && results.every((x) => 'error' in x)) throw failure;
    return { results };
  });

  app.get('/api/annotations', async (req) => {
    const { from, to } = range(req.query as Record<string, string | undefined>);
    if (!store) return { annotations: [] };
    const exists = await store.run((sql) => sql`select to_regclass('metrics.annotations') is not null as ok`);
    if (!exists[0]!.ok) return { annotations: [] };
    const rows = await store.run((sql) => sql<{ time: number; end: number | null; kind: string; node: string | null; text: string; tags: unknown }[]>`
      select (extract(epoch from time) * 1000)::float8 as time, (extract(epoch from "end") * 1000)::float8 as "end", kind, node, text, tags
      from metrics.annotations where time < ${new Date(to)} and coalesce("end", time) >= ${new Date(from)} order by time limit 500`);
    return { annotations: rows.map((r) => ({ ...r })) };
  });

  app.get('/api/statements', async (req) => {
    const q = req.query as Record<string, string | undefined>;
    const { from, to } = range(q);
    const nodes = nodeFilter(q.nodes);
    if (!store || !(await columnsOf('pg_statements')).has('calls')) return { statements: [] };
    const tier = chooseTier(0, from, Date.now());
    const rows = await store.run((sql) => sql.unsafe<Record<string, unknown>[]>(statementsSql(tier), [new Date(from), new Date(to), nodes ?? null] as never[]));
    return { statements: rows.map((r) => ({ ...r })) };
  });

  // The agent's point bus: a load run (or any prodhome process of this lab) posts its points here
  // instead of opening the sinks itself. Same token as every route; loopback only.
  app.post('/api/points', { bodyLimit: MAX_POINTS_BODY }, async (req, reply) => {
    if (!o.ingest) return reply.code(404).send({ error: 'this agent takes no points' });
    o.ingest(handedPoints(req.body));
    return reply.code(204).send();
  });

  app.get('/api/health', async () => {
    if (!store) return { store: 'none' };
    await store.run((sql) => sql`select 1`);
    return { store: 'ok' };
  });

  function nodeFilter(list: string | undefined): string[] | undefined {
    if (list === undefined || list === '') return undefined;
    const names = list.split(',');
    const unknown = names.filter((n) => !o.nodes.some((x) => x.name === n));
    if (unknown.length) throw new BadRequest('nodes', `unknown node ${unknown.map((n) => JSON.stringify(n)).join(', ')}: this lab has ${o.nodes.map((n) => n.name).join(', ')}`);
    return names;
  }

  // With no port configured, the last one this lab used if it is free (bookmarks keep working), else any.
  if (o.port === undefined && o.previousPort) await app.listen({ host: o.host ?? '127.0.0.1', port: o.previousPort }).catch(() => app.listen({ host: o.host ?? '127.0.0.1', port: 0 }));
  else await app.listen({ host: o.host ?? '127.0.0.1', port: o.port ?? 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : (o.port ?? 0);
  cookieName = `prodhome_token_${port}`;
  const host = o.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    port,
    failure: () => (app.server.listening ? undefined : 'its HTTP server stopped listening'),
    close: async () => {
      await app.close();
      await store?.close();
    },
  };
}

/**
 * The read-only pool, with every query bounded: the postgres driver can wait for ever on a
 * server that went away (and 3.4.9 can leave a pool hanging after a failed connect), so a query
 * that fails to reach the server or takes too long drops the pool for a fresh one.
 */
class StorePool {
  private sql: Sql;

  constructor(private readonly info: ConnectionInfo) {
    this.sql = this.open();
  }

  private open(): Sql {
    return connect(this.info, { max: 4, applicationName: 'prodhome-dashboard', connectTimeoutSeconds: 3, statementTimeoutMs: 5000 });
  }

  async run<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    const sql = this.sql;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error('timed out'), { code: 'TIMEOUT' })), 6000);
    });
    try {
      return await Promise.race([fn(sql), timeout]);
    } catch (e) {
      const code = String((e as { code?: string }).code ?? '');
      if (this.sql === sql && (code === 'TIMEOUT' || code.startsWith('E') || code === 'CONNECT_TIMEOUT' || code === 'CONNECTION_CLOSED' || code === '57P01')) {
        this.sql = this.open();
        void sql.end({ timeout: 0 }).catch(() => {});
      }
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    return this.sql.end({ timeout: 1 });
  }
}

function int(v: string, name: string, min: number, max: number): number {
  if (!/^\d{1,15}$/.test(v)) throw new BadRequest(name, `${name} ${JSON.stringify(v)}: expected a whole number`);
  const n = Number(v);
  if (n < min || n > max) throw new BadRequest(name, `${name} ${n}: expected ${min} to ${max}`);
  return n;
}

/** from/to: epoch milliseconds; to defaults to now. */
function range(q: Record<string, string | undefined>): { from: number; to: number } {
  if (q.from === undefined) throw new BadRequest('from', 'from is required: the start of the range in epoch milliseconds');
  const from = int(q.from, 'from', 0, 8_640_000_000_000);
  const to = q.to === undefined ? Date.now() : int(q.to, 'to', 0, 8_640_000_000_000);
  if (to <= from) throw new BadRequest('to', 'to must be after from');
  if (to - from > MAX_RANGE_MS) throw new BadRequest('from', 'from is more than 31 days before to: the longest range is 31 days');
  return { from, to };
}

/**
 * Top statements over a range: deltas of pg_stat_statements' cumulative counters — what ran in
 * the range, not since the server started — from the raw rows, or for a range that starts before
 * them, from the rollups (their min and max) and the raw rows past the rollups' watermark.
 */
function statementsSql(tier: Tier): string {
  const counters = ['calls', 'total_seconds', 'rows'];
  const raw = `select sid, query, ${counters.map((c) => `${c} as ${c}_lo, ${c} as ${c}_hi`).join(', ')} from metrics.pg_statements_raw where sid = any(array(select id from s))`;
  const watermark = `(select done_until from metrics._rollup where measurement = 'pg_statements' and tier = '${tier}')`;
  const src =
    tier === 'raw'
      ? `${raw} and time >= $1 and time < $2`
      : `select sid, query, ${counters.map((c) => `${c}_min as ${c}_lo, ${c}_max as ${c}_hi`).join(', ')} from metrics.pg_statements_${tier} where sid = any(array(select id from s)) and time >= $1 and time < ${watermark}
         union all ${raw} and time >= greatest(coalesce(${watermark}, '-infinity'), $1) and time < $2`;
  return `with s as (select id, tags->>'node' as node, tags->>'queryid' as queryid from metrics._series
      where measurement = 'pg_statements' and ($3::text[] is null or tags->>'node' = any($3::text[]))),
    src as (${src}),
    d as (
      select s.node, s.queryid, max(src.query) as query, ${counters.map((c) => `max(${c}_hi) - min(${c}_lo) as ${c}`).join(', ')}
      from src join s on s.id = src.sid group by s.node, s.queryid
    )
    select node, queryid, t.value as query, calls::float8 as calls, total_seconds::float8 as total_seconds, rows::float8 as rows,
           (total_seconds / nullif(calls, 0))::float8 as mean_seconds
    from d left join metrics._text t on t.id = d.query where calls > 0 order by total_seconds desc limit 20`;
}

/** Rows (time, by…, fields…) into one array of times and one array of values per series. */
function columnar(panel: Panel, fields: string[], rows: Record<string, unknown>[]) {
  const times: number[] = [];
  const index = new Map<number, number>();
  for (const r of rows) {
    const t = r.t as number;
    if (!index.has(t)) {
      index.set(t, times.length);
      times.push(t);
    }
  }
  const series = new Map<string, { name: string; node: string; tags: Record<string, string>; field: string; label: string; values: (number | null)[] }>();
  for (const r of rows) {
    const tags = Object.fromEntries(panel.by.map((b) => [b, String(r[b] ?? '')]));
    for (const f of fields) {
      const label = panel.labels?.[panel.fields.indexOf(f)] ?? f;
      const key = `${panel.by.map((b) => tags[b]).join('\0')}\0${f}`;
      let s = series.get(key);
      if (!s) {
        const name = [...panel.by.map((b) => tags[b]), ...(panel.fields.length > 1 ? [label] : [])].join(' · ');
        s = { name, node: tags.node ?? '', tags, field: f, label, values: new Array<number | null>(times.length).fill(null) };
        series.set(key, s);
      }
      const v = r[f];
      s.values[index.get(r.t as number)!] = typeof v === 'number' && Number.isFinite(v) ? v : null;
    }
  }
  return { times, series: [...series.values()].sort((a, b) => a.name.localeCompare(b.name)) };
}

function unauthorizedPage(lab: string): string {
  const esc = lab.replace(/[^a-z0-9_-]/g, '');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>prodhome dashboard — token needed</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}code{background:#8882;padding:.1em .3em;border-radius:3px}</style></head>
<body><h1>This dashboard needs its token</h1>
<p>The dashboard of lab <b>${esc}</b> only answers URLs that carry the lab's token, so no other page or user on this machine can read it.</p>
<p>Get the full URL with:</p><pre><code>prodhome dashboard --print-url</code></pre>
<p>or open it in your browser with <code>prodhome dashboard --open</code> (run from the lab's directory, or with <code>-f CONFIG</code>).</p></body></html>`;
}
