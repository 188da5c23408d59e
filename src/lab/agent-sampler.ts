import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LabConfig } from '../config/index.js';
import { describeField, forStores, loadCatalog, startSamplingLoop, type Point } from '../metrics/index.js';
import { heartbeatPublications } from '../replication/index.js';
import { PostgresSink } from '../sinks/index.js';
import { createSink, pointsToFamilies, toPrometheusText, type FieldDescription, type Point as SinkPoint, type Sink, type SinkStats } from '../sinks/index.js';
import { labNodes, nodeConnection, processTargets } from './nodes.js';
import { readState } from './state.js';

/**
 * The agent's sampler: every `metrics.interval` it scrapes every node (catalog metrics, process
 * and cgroup stats, the replication heartbeat), writes the points to the configured sinks and
 * keeps the latest for /metrics on 127.0.0.1. A sink that fails is logged and the loop goes
 * on; a node that is away is `pg_up 0` until it returns.
 */

export interface SamplingStatus {
  intervalMs: number;
  sinks: string[];
  /** What each sink did with its points so far, and whether it is healthy (see SinkStats). */
  sinkStats?: SinkReport[];
  /** http://127.0.0.1:PORT/metrics, when Prometheus exposition is on */
  prometheus?: string;
  lastSampleAt?: string;
  lastSampleMs?: number;
  points: number;
}

export type SinkReport = { name: string } & SinkStats;

export interface Sampler {
  status: SamplingStatus;
  /**
   * Points another prodhome process hands the agent (a load run's seconds, through the
   * dashboard server's POST /api/points): written to every sink with the next sample, and on
   * /metrics while they are fresh.
   */
  ingest(points: Point[]): void;
  /** Why the sampling loop stopped by itself, or undefined while it runs. */
  failure(): string | undefined;
  /** The latest sample (and the last points of slower families), for the dashboard. */
  latest(): Point[];
  stop(): Promise<void>;
}

/** Help, type, unit and name of each exported field; rates and text are left out (PromQL's rate() makes rates). */
function describeExported(measurement: string, field: string): FieldDescription | undefined {
  const info = describeField(measurement, field);
  return info?.exported ? info : undefined;
}

/** The Prometheus text of the latest points: declared fields only, raw counters (no _rate). */
export function prometheusText(points: readonly SinkPoint[]): string {
  const exported = points.map((p) => ({ ...p, fields: Object.fromEntries(Object.entries(p.fields).filter(([f]) => describeExported(p.measurement, f) !== undefined)) }));
  return toPrometheusText(pointsToFamilies(exported, describeExported));
}

/**
 * What /metrics shows: the last sample, plus the last points of the families sampled less often
 * than every scrape (`every:` in the catalog, such as pg_settings) on nodes that are still up,
 * so those series do not blink out between their samples. Updating costs one pass over the
 * sample's slow points; the merge happens only when /metrics is read.
 */
export class LatestPoints {
  private sample: readonly Point[] = [];
  private fresh = new Set<string>();
  /** measurement|node → the last points of a slow family on that node. */
  private readonly slow = new Map<string, Point[]>();

  constructor(private readonly sampledLessOften: (measurement: string) => boolean) {}

  update(sample: readonly Point[]): void {
    this.sample = sample;
    const groups = new Map<string, Point[]>();
    for (const p of sample) {
      if (!this.sampledLessOften(p.measurement)) continue;
      const key = `${p.measurement}|${p.tags.node ?? ''}`;
      const group = groups.get(key);
      if (group) group.push(p);
      else groups.set(key, [p]);
    }
    for (const [key, points] of groups) this.slow.set(key, points);
    this.fresh = new Set(groups.keys());
    const up = new Set(sample.filter((p) => p.measurement === 'pg_up' && p.fields.up === 1).map((p) => p.tags.node ?? ''));
    for (const [key, points] of this.slow) if (!up.has(points[0]?.tags.node ?? '')) this.slow.delete(key);
  }

  points(): Point[] {
    const out = [...this.sample];
    for (const [key, points] of this.slow) if (!this.fresh.has(key)) out.push(...points);
    return out;
  }
}

/** Older than this, a handed-over point is left off /metrics (a run that stalled or ended). */
export const HANDED_MAX_AGE_MS = 5000;

/**
 * Points other processes handed over: queued for the sinks until the next sample takes them,
 * and the latest per run (its `run` tag) kept for /metrics while fresh.
 */
export class HandedPoints {
  private queue: Point[] = [];
  private readonly latest = new Map<string, Point[]>();
  /** A bound on the queue (a run posting while the sinks stall): the oldest go first, counted. */
  dropped = 0;

  constructor(private readonly maxQueued = 100_000) {}

  add(points: Point[]): void {
    this.queue.push(...points);
    if (this.queue.length > this.maxQueued) this.dropped += this.queue.splice(0, this.queue.length - this.maxQueued).length;
    const byRun = new Map<string, Point[]>();
    for (const p of points) {
      const run = p.tags.run ?? '';
      const list = byRun.get(run);
      if (list) list.push(p);
      else byRun.set(run, [p]);
    }
    for (const [run, ps] of byRun) this.latest.set(run, ps);
  }

  /** What the sinks have not had yet. */
  take(): Point[] {
    return this.queue.splice(0);
  }

  /** The fresh latest points of each run, for /metrics. */
  fresh(now = Date.now()): Point[] {
    const out: Point[] = [];
    for (const [run, ps] of this.latest) {
      const live = ps.filter((p) => now - p.time <= HANDED_MAX_AGE_MS);
      if (live.length) out.push(...live);
      else this.latest.delete(run);
    }
    return out;
  }
}

/**
 * The lab's sinks, opened: the metrics store (the lab's metrics node) and `metrics.sinks`. One
 * that cannot open is logged and left out, so sampling (or a load run) goes on without it.
 */
export async function openSinks(config: LabConfig, log: (line: string) => void): Promise<Sink[]> {
  const state = readState(config.stateDir);
  const sinks: Sink[] = [];
  for (const uri of config.metrics.sinks) {
    try {
      const sink = createSink(uri, { warn: log });
      await sink.open?.();
      sinks.push(sink);
    } catch (e) {
      log(`sink ${uri}: ${(e as Error).message}; going on without it`);
    }
  }
  if (config.metrics.store && state?.nodes[config.metrics.store]) {
    try {
      const store = new PostgresSink(nodeConnection(config, config.metrics.store), { retentionDays: config.metrics.retentionDays, warn: log });
      await store.open();
      sinks.push(store);
    } catch (e) {
      log(`metrics store ${config.metrics.store}: ${(e as Error).message}; going on without it`);
    }
  }
  return sinks;
}

/**
 * /metrics is scraped by a Prometheus or two, every few seconds: a handful of connections, each
 * sending a small GET at once. Anything else — thousands of idle or trickling connections — must
 * not take the agent's file descriptors (it needs them to read state.json and reach the nodes).
 */
const METRICS_SERVER_LIMITS: http.ServerOptions = {
  headersTimeout: 5_000, // a request's headers must arrive within 5 s of its start
  requestTimeout: 10_000, // and the whole request within 10 s
  keepAliveTimeout: 5_000, // an idle keep-alive connection is closed after 5 s
  connectionsCheckingInterval: 1_000, // how often those two timeouts are checked
};

/** Connections served at once; more are closed as soon as they are accepted. */
export const METRICS_MAX_CONNECTIONS = 64;

function limitConnections(server: http.Server): void {
  server.maxConnections = METRICS_MAX_CONNECTIONS;
  // A connection that never sends a request is not covered by headersTimeout: idle sockets close after 10 s.
  server.timeout = 10_000;
}

/**
 * Starts sampling. `previousPort`: where the last agent of this lab served /metrics; when the
 * config names no port, that one is taken again if it is free (a Prometheus scrape config or a
 * bookmark keeps working across agent restarts), else any free port.
 */
export async function startSampling(config: LabConfig, log: (line: string) => void, previousPort?: number): Promise<Sampler> {
  const state = readState(config.stateDir);
  const sinks = await openSinks(config, log);
  const status: SamplingStatus = { intervalMs: config.metrics.intervalMs, sinks: sinks.map((s) => s.name), points: 0 };
  const lessOften = new Set(loadCatalog().filter((m) => m.everyMs).map((m) => m.name));
  const latest = new LatestPoints((measurement) => lessOften.has(measurement));
  const handed = new HandedPoints();

  let server: http.Server | undefined;
  if (config.metrics.prometheus !== false) {
    server = http.createServer(METRICS_SERVER_LIMITS, (req, res) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end('method not allowed: /metrics answers GET and HEAD\n');
        return;
      }
      if (req.url !== '/metrics') {
        res.writeHead(404).end('not found: try /metrics\n');
        return;
      }
      // Beside the samples, what load runs handed over (their per-second figures).
      const points: SinkPoint[] = [...latest.points(), ...handed.fresh()];
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(prometheusText(points));
    });
    limitConnections(server);
    const port = config.metrics.prometheus.port ?? 0;
    const listen = (p: number) =>
      new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(p, '127.0.0.1', () => resolve());
      });
    try {
      if (port === 0 && previousPort) await listen(previousPort).catch(() => listen(0));
      else await listen(port);
      status.prometheus = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
      log(`serving Prometheus metrics on ${status.prometheus}`);
    } catch (e) {
      log(`cannot serve /metrics on 127.0.0.1:${port}: ${(e as Error).message}; give metrics.prometheus another port`);
      server = undefined;
    }
  }

  const sinkLog = new SinkLog(log);
  const loop = startSamplingLoop({
    nodes: [...labNodes(config, state).values()],
    processTargets: () => processTargets(config),
    intervalMs: config.metrics.intervalMs,
    heartbeats: heartbeatPublications(config.replication),
    statementTimeoutMs: Math.max(1000, config.metrics.intervalMs),
    warn: log,
    onSample: async (points, started, doing) => {
      // The sampler's own health, as metrics beside what it samples.
      points.push({ measurement: 'prodhome_sampler', tags: {}, fields: { points: points.length, scrape_seconds: (Date.now() - started) / 1000 }, time: started });
      const reports = sinks.map((sink) => ({ name: sink.name, ...sink.stats }));
      for (const report of reports) points.push(...sinkPoints(report, started));
      status.sinkStats = reports;
      sinkLog.report(reports);
      latest.update(points);
      const stored = forStores([...points, ...handed.take()]);
      for (const sink of sinks) {
        try {
          doing(`the sink ${sink.name}`);
          await sink.write(stored);
        } catch (e) {
          log(`${sink.name}: ${(e as Error).message}`);
        }
      }
      status.points += points.length;
      status.lastSampleAt = new Date(started).toISOString();
      status.lastSampleMs = Date.now() - started;
    },
  });

  let failed: string | undefined;
  loop.done.catch((e: Error) => (failed = e.message));
  return {
    status,
    failure: () => failed,
    ingest: (points) => handed.add(points),
    latest: () => latest.points(),
    stop: async () => {
      await loop.stop().catch(() => {}); // a loop that failed has said why already
      await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
      // What was handed over since the last sample still goes out.
      const last = forStores(handed.take());
      if (last.length) for (const sink of sinks) await sink.write(last).catch((e: Error) => log(`${sink.name}: ${e.message}`));
      if (handed.dropped) log(`${handed.dropped} handed-over points dropped: the queue for the sinks was full`);
      for (const sink of sinks) await sink.close();
      const reports = sinks.map((sink) => ({ name: sink.name, ...sink.stats }));
      status.sinkStats = reports;
      for (const r of reports) log(`sink ${r.name} at close: ${accounting(r)}`);
    },
  };
}

/** A sink's figures as points: totals in prodhome_sink, losses by reason in prodhome_sink_loss. */
export function sinkPoints(r: SinkReport, time: number): Point[] {
  const { offered, written, buffered, dropped, rejected, retries } = r;
  const points: Point[] = [{ measurement: 'prodhome_sink', tags: { sink: r.name }, fields: { offered, written, buffered, dropped, rejected, retries, healthy: r.healthy ? 1 : 0 }, time }];
  for (const [outcome, by] of [['dropped', r.droppedBy], ['rejected', r.rejectedBy]] as const) {
    for (const [reason, n] of Object.entries(by)) points.push({ measurement: 'prodhome_sink_loss', tags: { sink: r.name, outcome, reason }, fields: { points: n }, time });
  }
  return points;
}

/** `offered 10 = written 7 + buffered 1 + dropped 0 + rejected 2 (sqlstate_22P02 2)`: where every point went. */
export function accounting(r: SinkStats): string {
  const by = (m: Record<string, number>) => {
    const parts = Object.entries(m).map(([reason, n]) => `${reason} ${n}`);
    return parts.length ? ` (${parts.join(', ')})` : '';
  };
  return `offered ${r.offered} = written ${r.written} + buffered ${r.buffered} + dropped ${r.dropped}${by(r.droppedBy)} + rejected ${r.rejected}${by(r.rejectedBy)}; ${r.retries} retries`;
}

/**
 * The agent log's account of its sinks: a line when one starts failing or recovers, and while
 * points are being lost, one a minute with the counts (not one per sample).
 */
class SinkLog {
  private readonly last = new Map<string, { healthy: boolean; lost: number; loggedAt: number }>();

  constructor(private readonly log: (line: string) => void) {}

  report(reports: SinkReport[], now = Date.now()): void {
    for (const r of reports) {
      const lost = r.dropped + r.rejected;
      const before = this.last.get(r.name) ?? { healthy: true, lost: 0, loggedAt: now };
      if (before.healthy !== r.healthy) {
        this.log(r.healthy ? `sink ${r.name}: healthy again; ${accounting(r)}` : `sink ${r.name}: failing since ${r.since}: ${r.lastError ?? 'unknown error'}; ${accounting(r)}`);
        this.last.set(r.name, { healthy: r.healthy, lost, loggedAt: now });
      } else if (lost !== before.lost && now - before.loggedAt >= 60_000) {
        this.log(`sink ${r.name}: ${lost - before.lost} more points lost in the last minute (last error: ${r.lastError ?? 'none'}); ${accounting(r)}`);
        this.last.set(r.name, { healthy: r.healthy, lost, loggedAt: now });
      } else if (!this.last.has(r.name)) {
        this.last.set(r.name, before);
      }
    }
  }
}
