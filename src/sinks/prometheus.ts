import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SinkLedger } from './ledger.js';
import { LatestPoints } from './latest.js';
import type { Point } from './point.js';
import { pointsToFamilies, toPrometheusText, type FieldDescription } from './prometheus-text.js';
import type { Sink, SinkStats } from './types.js';

export interface PrometheusSinkOptions {
  /** The port to serve on; 0 or absent: `previousPort` when it is free, else any free port. */
  port?: number;
  previousPort?: number;
  /** Help, type, unit and name of each exported field; a field it does not describe is left off. */
  describe: (measurement: string, field: string) => FieldDescription | undefined;
  /** Families sampled less often than every sample: kept between their samples (see LatestPoints). */
  sampledLessOften: (measurement: string) => boolean;
  /** The measurement every sample carries once, stamped with the sample's time (the sampler's own health). */
  sampleMarker: string;
}

/** Older than this, a handed-over point is left off /metrics (a run that stalled or ended). */
export const HANDED_MAX_AGE_MS = 5000;

/** Connections served at once; more are closed as soon as they are accepted. */
export const METRICS_MAX_CONNECTIONS = 64;

/**
 * /metrics is scraped by a Prometheus or two, every few seconds: a handful of connections, each
 * sending a small GET at once. Anything else — thousands of idle or trickling connections — must
 * not take the agent's file descriptors (it needs them to read state.json and reach the nodes).
 */
const SERVER_LIMITS: http.ServerOptions = {
  headersTimeout: 5_000, // a request's headers must arrive within 5 s of its start
  requestTimeout: 10_000, // and the whole request within 10 s
  keepAliveTimeout: 5_000, // an idle keep-alive connection is closed after 5 s
  connectionsCheckingInterval: 1_000, // how often those two timeouts are checked
};

/**
 * The Prometheus endpoint as a sink: what it is written is served as text exposition on
 * http://127.0.0.1:PORT/metrics, declared fields only (rates are left to PromQL's rate()).
 *
 * It shows current values, not history, so it keeps the latest of two kinds of points, which a
 * write may carry in any mix (the point bus merges what queued):
 * - samples: a sample is every point without a `run` tag stamped with the time of a
 *   `sampleMarker` point; the newest replaces the last (families sampled less often stay, see
 *   LatestPoints);
 * - points other processes handed over, tagged with their `run`: the newest second of each run,
 *   while younger than HANDED_MAX_AGE_MS.
 * Nothing is lost by design (the page is the latest), so every point offered counts as written.
 * `open()` listens (throws when the port is taken); `close()` stops serving.
 */
export class PrometheusSink implements Sink {
  private readonly ledger = new SinkLedger();
  private readonly latest: LatestPoints;
  /** run → its newest second's points */
  private readonly runs = new Map<string, Point[]>();
  private server?: http.Server;
  private address?: string;

  constructor(private readonly o: PrometheusSinkOptions) {
    this.latest = new LatestPoints(o.sampledLessOften);
  }

  /** http://127.0.0.1:PORT/metrics once open. */
  get name(): string {
    return this.address ?? 'prometheus /metrics';
  }

  get url(): string | undefined {
    return this.address;
  }

  get stats(): SinkStats {
    return this.ledger.stats(0);
  }

  async open(): Promise<void> {
    if (this.server) return;
    const server = http.createServer(SERVER_LIMITS, (req, res) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end('method not allowed: /metrics answers GET and HEAD\n');
        return;
      }
      if (req.url !== '/metrics') {
        res.writeHead(404).end('not found: try /metrics\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(this.text());
    });
    server.maxConnections = METRICS_MAX_CONNECTIONS;
    // A connection that never sends a request is not covered by headersTimeout: idle sockets close after 10 s.
    server.timeout = 10_000;
    const listen = (p: number) =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(p, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
    const port = this.o.port ?? 0;
    try {
      if (port === 0 && this.o.previousPort) await listen(this.o.previousPort).catch(() => listen(0));
      else await listen(port);
    } catch (e) {
      throw new Error(`cannot serve /metrics on 127.0.0.1:${port}: ${(e as Error).message}; give metrics.prometheus another port`);
    }
    this.server = server;
    this.address = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  }

  async write(points: Point[]): Promise<void> {
    this.ledger.offer(points.length);
    const sampleTimes = new Set<number>();
    for (const p of points) if (p.measurement === this.o.sampleMarker) sampleTimes.add(p.time);
    const samples = new Map<number, Point[]>();
    const runs = new Map<string, Point[]>();
    for (const p of points) {
      if (p.tags.run === undefined && sampleTimes.has(p.time)) add(samples, p.time, p);
      else add(runs, p.tags.run ?? '', p);
    }
    // Several samples in one write (they queued): in order, so slow families of the older stay.
    for (const time of [...samples.keys()].sort((a, b) => a - b)) this.latest.update(samples.get(time)!);
    for (const [run, ps] of runs) {
      let newest = -Infinity;
      for (const p of ps) newest = Math.max(newest, p.time);
      if ((this.runs.get(run)?.[0]?.time ?? -Infinity) <= newest) this.runs.set(run, ps.filter((p) => p.time === newest));
    }
    this.ledger.wrote(points.length);
  }

  /** The exposition text of what is current now. */
  text(now = Date.now()): string {
    const points = this.latest.points();
    for (const [run, ps] of this.runs) {
      if (now - ps[0]!.time <= HANDED_MAX_AGE_MS) points.push(...ps);
      else this.runs.delete(run);
    }
    const exported = points.map((p) => ({ ...p, fields: Object.fromEntries(Object.entries(p.fields).filter(([f]) => this.o.describe(p.measurement, f) !== undefined)) }));
    return toPrometheusText(pointsToFamilies(exported, this.o.describe));
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function add<K>(groups: Map<K, Point[]>, key: K, p: Point): void {
  const group = groups.get(key);
  if (group) group.push(p);
  else groups.set(key, [p]);
}
