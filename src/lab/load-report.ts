import type { LabConfig } from '../config/index.js';
import { forStores } from '../metrics/index.js';
import { PointBus, type Point } from '../sinks/index.js';
import type { SecondStats } from '../workload/index.js';
import { agentPid, readAgentStatus } from './agent.js';
import { openSinks } from './agent-sampler.js';
import { nodeConnection } from './nodes.js';
import { readSecrets } from './state.js';
import { withConnection } from '../pg/index.js';
import { writeAnnotation, type Annotation } from '../sinks/index.js';

/**
 * Where a load run's seconds go. While the lab's agent runs, they are handed to it over its
 * loopback API (the dashboard server's POST /api/points, with the lab's token): the agent
 * publishes them on its point bus, which feeds every sink and /metrics, so no second process
 * writes the store. With no agent (or one that serves no API) the run opens the lab's stores
 * itself, behind a bus of its own. Either way the run ends as an annotation on every dashboard
 * chart.
 */
export interface LoadReporter {
  /** For LoadOptions.onSecond. */
  onSecond?: (stats: SecondStats) => void;
  /** Waits for the hand-overs or writes, closes what it opened, records the annotation. */
  close(): Promise<void>;
}

export async function loadReporter(config: LabConfig, node: string, workload: string, warn: (line: string) => void, command = `prodhome load ${workload}`): Promise<LoadReporter> {
  const startedAt = Date.now();
  const annotate = () =>
    annotateRun(config, { time: startedAt, end: Date.now(), kind: 'load', node, text: command, tags: { workload } }).catch((e: Error) =>
      warn(`could not record the run as an annotation in the metrics store: ${e.message}`),
    );
  const agent = agentPointApi(config);
  if (agent) {
    let sending = Promise.resolve();
    let lost = 0;
    return {
      onSecond: (s) => {
        const points = workloadPoints(workload, node, s);
        sending = sending.then(() => agent.send(points)).catch(() => void (lost += points.length));
      },
      close: async () => {
        await sending;
        if (lost) warn(`${lost} of this run's points did not reach the agent (it stopped answering); they are not in the metrics store`);
        await annotate();
      },
    };
  }
  // No agent: the run writes the lab's stores itself, through a bus of its own.
  const bus = new PointBus(await openSinks(config, warn), { warn });
  let closed: Promise<void> | undefined;
  return {
    onSecond: (s) => bus.publish(forStores(workloadPoints(workload, node, s))),
    close: () =>
      (closed ??= (async () => {
        await bus.close();
        for (const sink of bus.sinks) {
          const st = sink.stats;
          if (st.dropped + st.rejected > 0) warn(`${sink.name}: ${st.dropped} of this run's points dropped, ${st.rejected} refused, of ${st.offered}${st.lastError ? ` (last error: ${st.lastError})` : ''}`);
        }
        await annotate();
      })()),
  };
}

/** The running agent's point API, when there is one: its address from agent-status.json, its token from secrets.json. */
function agentPointApi(config: LabConfig): { send(points: Point[]): Promise<void> } | undefined {
  if (agentPid(config.stateDir) === undefined) return undefined;
  const url = readAgentStatus(config.stateDir)?.dashboard?.url;
  const token = readSecrets(config.stateDir).dashboard?.token;
  if (!url || !token) return undefined;
  return {
    send: async (points) => {
      const r = await fetch(new URL('api/points', url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-prodhome-token': token },
        body: JSON.stringify(points),
        signal: AbortSignal.timeout(5000),
      });
      if (r.status !== 204) throw new Error(`the agent answered ${r.status}`);
    },
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
