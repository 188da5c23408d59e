import type { LabConfig } from '../config/index.js';
import { describeField, forStores, loadCatalog, startSamplingLoop } from '../metrics/index.js';
import { heartbeatPublications } from '../replication/index.js';
import { createSink, LatestPoints, PointBus, PostgresSink, PrometheusSink, type FieldDescription, type Point, type Sink, type SinkStats } from '../sinks/index.js';
import { labNodes, nodeConnection, processTargets } from './nodes.js';
import { readState } from './state.js';

/**
 * The agent's sampler: every `metrics.interval` it scrapes every node (catalog metrics, process
 * and cgroup stats, the replication heartbeat) and publishes the points on the agent's one point
 * bus, with the points other processes hand over; the bus feeds every sink the config chooses
 * — the metrics store, `metrics.sinks` and the Prometheus endpoint (/metrics on 127.0.0.1). A
 * sink that fails is logged and the loop goes on; a node that is away is `pg_up 0` until it
 * returns.
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
   * dashboard server's POST /api/points): published on the bus like a sample, so they reach
   * every sink and /metrics.
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

/** The measurement the sampler adds to each sample: its own health, and the sample's marker on the bus. */
const SAMPLER_MEASUREMENT = 'prodhome_sampler';

/**
 * The lab's stores, opened: `metrics.sinks` and the metrics store (the lab's metrics node). One
 * that cannot open is logged and left out, so sampling (or a load run) goes on without it.
 */
export async function openSinks(config: LabConfig, log: (line: string) => void): Promise<Sink[]> {
  const state = readState(config.stateDir);
  const sinks: Sink[] = [];
  const open = async (what: string, make: () => Sink) => {
    try {
      const sink = make();
      await sink.open?.();
      sinks.push(sink);
    } catch (e) {
      log(`${what}: ${(e as Error).message}; going on without it`);
    }
  };
  for (const uri of config.metrics.sinks) await open(`sink ${uri}`, () => createSink(uri, { warn: log }));
  const store = config.metrics.store;
  if (store && state?.nodes[store]) {
    await open(`metrics store ${store}`, () => new PostgresSink(nodeConnection(config, store), { retentionDays: config.metrics.retentionDays, warn: log }));
  }
  return sinks;
}

/**
 * The Prometheus endpoint the config asks for, serving; undefined when it is off or cannot
 * listen (logged). `previousPort`: where the last agent of this lab served /metrics; when the
 * config names no port, that one is taken again if it is free (a Prometheus scrape config or a
 * bookmark keeps working across agent restarts), else any free port.
 */
async function openExposition(config: LabConfig, sampledLessOften: (measurement: string) => boolean, log: (line: string) => void, previousPort?: number): Promise<PrometheusSink | undefined> {
  if (config.metrics.prometheus === false) return undefined;
  const sink = new PrometheusSink({
    port: config.metrics.prometheus.port,
    previousPort,
    describe: describeExported,
    sampledLessOften,
    sampleMarker: SAMPLER_MEASUREMENT,
  });
  try {
    await sink.open();
    log(`serving Prometheus metrics on ${sink.url}`);
    return sink;
  } catch (e) {
    log((e as Error).message);
    return undefined;
  }
}

/** Starts sampling, with the bus and every sink; `previousPort` as for openExposition. */
export async function startSampling(config: LabConfig, log: (line: string) => void, previousPort?: number): Promise<Sampler> {
  const state = readState(config.stateDir);
  const lessOften = new Set(loadCatalog().filter((m) => m.everyMs).map((m) => m.name));
  const sampledLessOften = (measurement: string) => lessOften.has(measurement);
  const stores = await openSinks(config, log);
  const exposition = await openExposition(config, sampledLessOften, log, previousPort);
  // /metrics first: it answers at once, the stores buffer.
  const bus = new PointBus(exposition ? [exposition, ...stores] : stores, { warn: log });
  const status: SamplingStatus = { intervalMs: config.metrics.intervalMs, sinks: stores.map((s) => s.name), points: 0, ...(exposition ? { prometheus: exposition.url } : {}) };
  const latest = new LatestPoints(sampledLessOften);

  const sinkLog = new SinkLog(log);
  const loop = startSamplingLoop({
    nodes: [...labNodes(config, state).values()],
    processTargets: () => processTargets(config),
    intervalMs: config.metrics.intervalMs,
    heartbeats: heartbeatPublications(config.replication),
    statementTimeoutMs: Math.max(1000, config.metrics.intervalMs),
    warn: log,
    onSample: (points, started) => {
      // The sampler's own health, as metrics beside what it samples.
      points.push({ measurement: SAMPLER_MEASUREMENT, tags: {}, fields: { points: points.length, scrape_seconds: (Date.now() - started) / 1000 }, time: started });
      // The stores' accounting (the /metrics page keeps only the latest, and loses nothing).
      const reports = stores.map((sink) => ({ name: sink.name, ...sink.stats }));
      for (const report of reports) points.push(...sinkPoints(report, started));
      status.sinkStats = reports;
      sinkLog.report(reports);
      latest.update(points);
      bus.publish(forStores(points));
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
    ingest: (points) => bus.publish(forStores(points)),
    latest: () => latest.points(),
    stop: async () => {
      await loop.stop().catch(() => {}); // a loop that failed has said why already
      // What was published (samples, handed-over points) still goes out; then every sink closes.
      await bus.close();
      if (bus.dropped) log(`${bus.dropped} points dropped: the queue for the sinks was full`);
      const reports = stores.map((sink) => ({ name: sink.name, ...sink.stats }));
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
