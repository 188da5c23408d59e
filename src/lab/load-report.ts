import type { LabConfig } from '../config/index.js';
import { forStores } from '../metrics/index.js';
import type { Point } from '../sinks/index.js';
import type { SecondStats } from '../workload/index.js';
import { agentPid } from './agent.js';
import { openSinks } from './agent-sampler.js';
import { LivePointsWriter } from './live-points.js';
import { nodeConnection } from './nodes.js';
import { withConnection } from '../pg/index.js';
import { writeAnnotation, type Annotation } from '../sinks/index.js';

/**
 * Where a load run's seconds go while the lab's agent runs: the lab's sinks (metrics store,
 * `metrics.sinks`) and, through the state dir, the agent's /metrics, so the dashboard shows the
 * load beside the database's own metrics. Without an agent the run reports nowhere but its
 * summary, as a lab that is down samples nothing either.
 */
export interface LoadReporter {
  /** For LoadOptions.onSecond; undefined when there is nowhere to report. */
  onSecond?: (stats: SecondStats) => void;
  /** Waits for the writes, closes the sinks, takes the run off /metrics. */
  close(): Promise<void>;
}

export async function loadReporter(config: LabConfig, node: string, workload: string, warn: (line: string) => void, command = `prodhome load ${workload}`): Promise<LoadReporter> {
  if (agentPid(config.stateDir) === undefined) return { close: async () => undefined };
  const startedAt = Date.now();
  const sinks = await openSinks(config, warn);
  const live = new LivePointsWriter(config.stateDir);
  let writes = Promise.resolve();
  let closed: Promise<void> | undefined;
  return {
    onSecond: (s) => {
      const points = workloadPoints(workload, node, s);
      live.write(points);
      const stored = forStores(points);
      writes = writes.then(() => Promise.all(sinks.map((sink) => sink.write(stored).catch(() => {})))).then(() => {});
    },
    close: () =>
      (closed ??= (async () => {
        live.close();
        await writes;
        for (const sink of sinks) {
          await sink.close().catch(() => {});
          const st = sink.stats;
          if (st.dropped + st.rejected > 0) warn(`${sink.name}: ${st.dropped} of this run's points dropped, ${st.rejected} refused, of ${st.offered}${st.lastError ? ` (last error: ${st.lastError})` : ''}`);
        }
        await annotateRun(config, { time: startedAt, end: Date.now(), kind: 'load', node, text: command, tags: { workload } }).catch((e: Error) =>
          warn(`could not record the run as an annotation in the metrics store: ${e.message}`),
        );
      })()),
  };
}

/**
 * One second of a load run, as points: `workload` has the figures; `workload_errors` the
 * second's errors, one point per SQLSTATE. Both carry the run (this process's pid), as /metrics
 * labels them, so two runs of one workload on one node stay apart in every store.
 */
export function workloadPoints(workload: string, node: string, s: SecondStats, run = String(process.pid)): Point[] {
  const fields: Point['fields'] = {
    tps: s.tps,
    transactions: s.transactions,
    failed: s.failed,
    latency_avg_ms: s.latencyMs.avg,
    latency_p50_ms: s.latencyMs.p50,
    latency_p95_ms: s.latencyMs.p95,
    latency_p99_ms: s.latencyMs.p99,
    latency_max_ms: s.latencyMs.max,
  };
  if (s.lagMs) fields.schedule_lag_avg_ms = s.lagMs.avg;
  const time = s.at ?? Date.now();
  const errors = Object.entries(s.errors).map(([sqlstate, count]): Point => ({ measurement: 'workload_errors', tags: { workload, node, run, sqlstate }, fields: { count }, time }));
  return [{ measurement: 'workload', tags: { workload, node, run }, fields, time }, ...errors];
}

/** The run as one row of metrics.annotations (start, end, command): a band on every dashboard chart. */
async function annotateRun(config: LabConfig, a: Annotation): Promise<void> {
  if (!config.metrics.store) return;
  await withConnection(nodeConnection(config, config.metrics.store), (sql) => writeAnnotation(sql, a));
}
