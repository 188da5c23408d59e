import type { Point } from '../sinks/index.js';
import type { NodeRole } from '../config/index.js';
import { connect, serverVersion, type ConnectionInfo, type Sql } from '../pg/index.js';
import { appliesTo, loadCatalog, sqlFor, type MetricDefinition } from './catalog.js';

/**
 * The sampler's collector, which only reads: one persistent connection per node (application_name
 * prodhome-sampler, a statement timeout), every catalog metric that applies to the node's role
 * and version, nodes scraped in parallel. Counters become per-second rates (`<field>_rate`)
 * from the previous scrape, skipping a scrape after a counter reset. A node that does not answer
 * is reported `pg_up up=0` and reconnected with backoff; it never stops the others. A metric
 * whose SQL fails on a node is disabled for that node with one warning.
 */

export interface CollectorNode {
  name: string;
  role: NodeRole;
  connection: ConnectionInfo;
}

interface NodeState {
  node: CollectorNode;
  sql?: Sql;
  major?: number;
  disabled: Set<string>;
  /** Each series' counter values at its last sample (by metric name and tag values), for rates. */
  counters: Map<string, Map<string, { value: number; time: number }>>;
  failures: number;
  retryAt: number;
  /** When each metric with an `every` was last sampled on this node. */
  sampledAt: Map<string, number>;
  /** Which `requires` relations exist (pg_stat_statements…), and when that was last asked. */
  present?: { names: Set<string>; at: number };
}

const CONNECT_TIMEOUT_S = 2;

/** How long the answer to "does pg_stat_statements exist?" is trusted: one round trip less per scrape. */
const PRESENCE_TTL_MS = 10_000;

export interface CollectorOptions {
  statementTimeoutMs?: number;
  /**
   * A node's whole scrape (connecting included) gives up after this long: the node counts as
   * away and its connection is dropped. Default: the connect timeout plus the statement
   * timeout, and a second. (The server ends slow statements itself; this catches a connection
   * that never answers, as when a server is killed in the middle of a scrape.)
   */
  scrapeTimeoutMs?: number;
  metrics?: MetricDefinition[];
  warn?: (message: string) => void;
}

export class Collector {
  private readonly nodes: NodeState[];
  private readonly metrics: MetricDefinition[];
  private readonly warn: (message: string) => void;

  constructor(nodes: CollectorNode[], private readonly options: CollectorOptions = {}) {
    this.nodes = nodes.map((node) => ({ node, disabled: new Set(), counters: new Map(), sampledAt: new Map(), failures: 0, retryAt: 0 }));
    this.metrics = options.metrics ?? loadCatalog();
    this.warn = options.warn ?? (() => {});
  }

  /** Scrapes every node once, in parallel. Never throws: failures become points. */
  async scrape(now = Date.now()): Promise<Point[]> {
    const perNode = await Promise.all(
      this.nodes.map(async (n) => {
        this.scraping.add(n.node.name);
        try {
          return await this.scrapeNode(n, now);
        } finally {
          this.scraping.delete(n.node.name);
        }
      }),
    );
    return perNode.flat();
  }

  /** Nodes whose scrape is under way: what a slow sample waits on. */
  readonly scraping = new Set<string>();

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.sql?.end({ timeout: 1 })));
  }

  private async scrapeNode(n: NodeState, now: number): Promise<Point[]> {
    const base = { node: n.node.name, role: n.node.role };
    if (now < n.retryAt) return [{ measurement: 'pg_up', tags: base, fields: { up: 0 }, time: now }];
    const timeoutMs = this.options.scrapeTimeoutMs ?? CONNECT_TIMEOUT_S * 1000 + (this.options.statementTimeoutMs ?? 2000) + 1000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    try {
      return await Promise.race([this.scrapeConnected(n, base, now), timedOut]);
    } catch (e) {
      // Reconnect next time, after a backoff that grows to 30 s while the node stays away.
      const sql = n.sql;
      n.sql = undefined;
      n.present = undefined;
      n.sampledAt.clear(); // it may come back restarted with other settings: read every family then
      void sql?.end({ timeout: 0 }).catch(() => {});
      n.failures++;
      n.retryAt = now + Math.min(30_000, 500 * 2 ** Math.min(n.failures - 1, 6));
      if (n.failures === 1) this.warn(`${n.node.name}: not answering (${(e as Error).message}); retrying with backoff`);
      return [{ measurement: 'pg_up', tags: base, fields: { up: 0 }, time: now }];
    } finally {
      clearTimeout(timer);
    }
  }

  /** One node's scrape; throws when the node cannot be reached (scrapeNode turns that into pg_up 0). */
  private async scrapeConnected(n: NodeState, base: Record<string, string>, now: number): Promise<Point[]> {
    const started = performance.now();
    if (!n.sql) {
      // statement_timeout as a connection parameter: it holds for every connection the
      // driver opens, also after one was closed for idling.
      n.sql = connect(n.node.connection, {
        max: 1,
        connectTimeoutSeconds: CONNECT_TIMEOUT_S,
        applicationName: 'prodhome-sampler',
        statementTimeoutMs: this.options.statementTimeoutMs ?? 2000,
      });
      n.major = (await serverVersion(n.sql)).major;
    }
    const points = await this.readMetrics(n, base, now);
    n.failures = 0;
    points.push({ measurement: 'pg_up', tags: base, fields: { up: 1, scrape_seconds: (performance.now() - started) / 1000 }, time: now });
    return points;
  }

  /**
   * Every applicable metric in one read-only transaction: a consistent snapshot and one commit
   * in the counters the sampler reports. BEGIN, the metrics and COMMIT are written at once and
   * answered in one round trip (the driver pipelines them on the node's single connection, each
   * with its own Sync). A metric that fails aborts the transaction, so the ones after it fail
   * too: the first failure names the culprit, which is disabled for this node with one warning,
   * and the scrape is read again without it.
   */
  private async readMetrics(n: NodeState, base: Record<string, string>, now: number, presenceAskedAgain = false): Promise<Point[]> {
    const sql = n.sql!;
    const due = (m: MetricDefinition) => {
      const last = n.sampledAt.get(m.name);
      return !m.everyMs || last === undefined || now < last || now - last >= m.everyMs;
    };
    const candidates = this.metrics.filter((m) => !n.disabled.has(m.name) && appliesTo(m, n.node.role) && due(m) && sqlFor(m, n.major!));
    const required = [...new Set(candidates.flatMap((m) => (m.requires ? [m.requires] : [])))];
    if (required.length && !(n.present && now - n.present.at < PRESENCE_TTL_MS && now >= n.present.at)) {
      const names = (await sql<{ r: string }[]>`select r from unnest(${required}::text[]) r where to_regclass(r) is not null`).map((x) => x.r);
      n.present = { names: new Set(names), at: now };
    }
    const present = n.present?.names ?? new Set<string>();
    const metrics = candidates.filter((m) => !m.requires || present.has(m.requires));

    // On a reserved connection: the pipeline is written only once the connection is up. (Queued
    // on a pool whose connection is gone, the driver would retry the queries one reconnect and
    // backoff at a time; reserving fails once, at once.)
    const conn = await sql.reserve();
    let settled: PromiseSettledResult<readonly Record<string, unknown>[]>[];
    try {
      // Prepared (the extended protocol): each statement is parsed once per connection, and each
      // scrape sends its name instead of its text — less to write and less for the server to plan.
      const prepared = { prepare: true, simple: false };
      settled = await Promise.allSettled([conn.unsafe('BEGIN READ ONLY', [], prepared), ...metrics.map((m) => conn.unsafe(sqlFor(m, n.major!)!, [], prepared)), conn.unsafe('COMMIT', [], prepared)]);
    } finally {
      conn.release();
    }
    const lost = settled.find((r) => r.status === 'rejected' && isConnectionError(r.reason));
    if (lost) throw (lost as PromiseRejectedResult).reason;
    if (settled[0]!.status === 'rejected') throw settled[0]!.reason;
    const results = settled.slice(1, -1);
    const failed = results.findIndex((r) => r.status === 'rejected');
    if (failed < 0) {
      const points: Point[] = [];
      metrics.forEach((metric, i) => {
        if (metric.everyMs) n.sampledAt.set(metric.name, now);
        for (const row of (results[i] as PromiseFulfilledResult<readonly Record<string, unknown>[]>).value) {
          const point = this.toPoint(n, metric, row, base, now);
          if (Object.keys(point.fields).length) points.push(point);
        }
      });
      return points;
    }
    const metric = metrics[failed]!;
    const error = (results[failed] as PromiseRejectedResult).reason as Error & { code?: string };
    if (metric.requires && error.code === '42P01' && !presenceAskedAgain) {
      n.present = undefined; // the extension went away since it was last asked: ask again, once
      return this.readMetrics(n, base, now, true);
    }
    n.disabled.add(metric.name);
    this.warn(`${n.node.name}: metric ${metric.name} disabled on this node: ${error.message}`);
    return this.readMetrics(n, base, now, presenceAskedAgain);
  }

  private toPoint(n: NodeState, metric: MetricDefinition, row: Record<string, unknown>, base: Record<string, string>, now: number): Point {
    const tags: Record<string, string> = { ...base };
    let seriesKey = metric.name;
    for (const t of metric.tags) {
      const v = String(row[t] ?? '');
      tags[t] = v;
      seriesKey += `\0${v}`;
    }
    const fields: Point['fields'] = {}; // numbers (forStores types them for the stores), text as strings
    let series: Map<string, { value: number; time: number }> | undefined;
    for (const name in metric.fields) {
      const raw = row[name];
      if (raw === null || raw === undefined) continue; // SQL NULL: no value, not a zero
      if (metric.fields[name]!.kind === 'text') {
        fields[name] = String(raw).replace(/[\r\n]+/g, ' '); // line protocol has no escape for a newline
        continue;
      }
      const value = Number(raw);
      if (!Number.isFinite(value)) continue;
      fields[name] = value;
      if (metric.fields[name]!.kind !== 'counter') continue;
      series ??= n.counters.get(seriesKey);
      if (!series) n.counters.set(seriesKey, (series = new Map()));
      const prev = series.get(name);
      if (!prev) {
        series.set(name, { value, time: now });
        continue;
      }
      // A counter that went down was reset (stats reset, server restart): no rate this time.
      if (value >= prev.value && now > prev.time) fields[`${name}_rate`] = ((value - prev.value) * 1000) / (now - prev.time);
      prev.value = value;
      prev.time = now;
    }
    return { measurement: metric.name, tags, fields, time: now };
  }
}

function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? '';
  return /^(ECONNREFUSED|ECONNRESET|CONNECTION_|EPIPE|ETIMEDOUT)/.test(code) || code.startsWith('08') || code === '57P01';
}
