import type { LabConfig } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { forStores, startSamplingLoop, type MetricDefinition, type SamplingLoop } from '../metrics/index.js';
import { heartbeatPublications } from '../replication/index.js';
import { PointBus, type Point, type Sink } from '../sinks/index.js';
import { labNodes, processTargets } from './nodes.js';
import { readState } from './state.js';

/**
 * `prodhome sample`: the agent's sampling loop run in the foreground, each sample published on
 * a point bus to the sinks asked for and handed to `onSample` (the CLI prints it). `done`
 * resolves once the last sample reached the sinks; closing them is the caller's.
 */
export function labSample(
  config: LabConfig,
  opts: { intervalMs: number; durationMs?: number; metrics?: MetricDefinition[]; sinks: Sink[]; warn: (line: string) => void; onSample: (points: Point[], nodes: string[]) => void },
): SamplingLoop {
  const state = readState(config.stateDir);
  if (!state) throw new ProdhomeError('LAB_NOT_UP', `lab "${config.lab}" has not been brought up here`, { hint: 'Run `prodhome up` first.' });
  const nodes = [...labNodes(config, state).values()];
  const names = nodes.map((n) => n.name);
  const bus = new PointBus(opts.sinks, { warn: opts.warn });
  const loop = startSamplingLoop({
    nodes,
    processTargets: () => processTargets(config),
    intervalMs: opts.intervalMs,
    durationMs: opts.durationMs,
    heartbeats: heartbeatPublications(config.replication),
    metrics: opts.metrics,
    warn: opts.warn,
    onSample: (points) => {
      if (opts.sinks.length) bus.publish(forStores(points));
      opts.onSample(points, names);
    },
  });
  return { done: loop.done.finally(() => bus.flush()), stop: () => loop.stop().finally(() => bus.flush()) };
}
