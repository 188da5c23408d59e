import type { LabConfig } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { forStores, startSamplingLoop, type MetricDefinition, type Point, type SamplingLoop } from '../metrics/index.js';
import { heartbeatPublications } from '../replication/index.js';
import type { Sink } from '../sinks/index.js';
import { labNodes, processTargets } from './nodes.js';
import { readState } from './state.js';

/**
 * `prodhome sample`: the agent's sampling loop run in the foreground, each sample written to
 * the sinks asked for and handed to `onSample` (the CLI prints it).
 */
export function labSample(
  config: LabConfig,
  opts: { intervalMs: number; until?: number; metrics?: MetricDefinition[]; sinks: Sink[]; warn: (line: string) => void; onSample: (points: Point[], nodes: string[]) => void },
): SamplingLoop {
  const state = readState(config.stateDir);
  if (!state) throw new ProdhomeError('LAB_NOT_UP', `lab "${config.lab}" has not been brought up here`, { hint: 'Run `prodhome up` first.' });
  const nodes = [...labNodes(config, state).values()];
  const names = nodes.map((n) => n.name);
  return startSamplingLoop({
    nodes,
    processTargets: () => processTargets(config),
    intervalMs: opts.intervalMs,
    until: opts.until,
    heartbeats: heartbeatPublications(config.replication),
    metrics: opts.metrics,
    warn: opts.warn,
    onSample: async (points) => {
      const stored = opts.sinks.length ? forStores(points) : [];
      for (const sink of opts.sinks) await sink.write(stored);
      opts.onSample(points, names);
    },
  });
}
