import type { Point } from '../sinks/index.js';
import { Collector, type CollectorNode } from './collector.js';
import type { MetricDefinition } from './catalog.js';
import { HeartbeatWriter } from './heartbeat.js';
import { ProcessSampler, type ProcessTarget } from './process.js';

/**
 * The one sampling loop, used by the agent and by `prodhome sample`: every interval it beats the
 * replication heartbeat (the only write), scrapes every node and reads the local nodes'
 * process stats at the same time, and hands the points to `onSample` — which decides where they
 * go (sinks, /metrics, a summary line). A slow sample skips ahead rather than bursting to catch
 * up; one that waits far longer than its interval is logged once, naming what it waits on.
 */
export interface SamplingOptions {
  nodes: readonly CollectorNode[];
  /** The local nodes' processes, asked afresh each sample (a restarted node has a new pid). */
  processTargets: () => ProcessTarget[];
  intervalMs: number;
  /** Publications whose heartbeat to beat, by publisher node. */
  heartbeats?: ReadonlyMap<string, string[]>;
  metrics?: MetricDefinition[];
  statementTimeoutMs?: number;
  /**
   * Stop by itself this long after the first sample started (counted from there, not from the
   * call: on a loaded machine, loading the catalog and connecting can take a good part of it).
   */
  durationMs?: number;
  warn: (line: string) => void;
  /** Each sample's points and when it started; awaited before the next sample. */
  onSample: (points: Point[], startedAt: number) => Promise<void> | void;
}

export interface SamplingLoop {
  /** Resolves when the loop has stopped (asked to, or its duration passed). */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

export function startSamplingLoop(o: SamplingOptions): SamplingLoop {
  const collector = new Collector([...o.nodes], { metrics: o.metrics, warn: o.warn, statementTimeoutMs: o.statementTimeoutMs });
  const heartbeat = new HeartbeatWriter(o.nodes, o.heartbeats ?? new Map(), { warn: o.warn, timeoutMs: o.statementTimeoutMs });
  const processes = new ProcessSampler();
  let stopping = false;
  let wake: (() => void) | undefined;

  let doing: { what: string; since: number; reported?: boolean } | undefined;
  const step = (what: string) => (doing = { what, since: doing?.since ?? Date.now(), reported: doing?.reported });
  const watchdog = setInterval(() => {
    if (!doing || doing.reported || Date.now() - doing.since < Math.max(5000, 4 * o.intervalMs)) return;
    doing.reported = true;
    const nodes = doing.what.startsWith('the scrape') && collector.scraping.size ? ` (${[...collector.scraping].join(', ')})` : '';
    o.warn(`a sample has been waiting ${((Date.now() - doing.since) / 1000).toFixed(1)} s, on ${doing.what}${nodes}`);
  }, 1000);
  watchdog.unref();

  const done = (async () => {
    try {
      let next = Date.now();
      const until = next + (o.durationMs ?? Infinity);
      while (!stopping && Date.now() < until) {
        const started = Date.now();
        doing = undefined;
        step('the heartbeat');
        await heartbeat.beat();
        step('the scrape of every node');
        // Process stats are read while the scrape's queries are in flight.
        const points = (await Promise.all([collector.scrape(started), processes.sample(o.processTargets(), started)])).flat();
        step('the handling of the sample');
        await o.onSample(points, started);
        doing = undefined;
        next += o.intervalMs;
        if (next < Date.now()) next = Date.now(); // a slow sample skips ahead, never bursts to catch up
        const wait = Math.min(next, until) - Date.now();
        if (!stopping && wait > 0) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, wait);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
        }
        wake = undefined;
      }
    } finally {
      clearInterval(watchdog);
      processes.close();
      await Promise.all([collector.close(), heartbeat.close()]);
    }
  })();

  return {
    done,
    stop: async () => {
      stopping = true;
      wake?.();
      await done;
    },
  };
}
