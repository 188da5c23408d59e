import type { LabConfig, NodeRole, NodeSpec } from '../config/index.js';
import { runtimes, type NodeCondition, type NodeState } from '../runtime/index.js';
import { agentPid, readAgentStatus } from './agent.js';
import type { ServiceStatus } from './agent-services.js';
import type { SamplingStatus, SinkReport } from './agent-sampler.js';
import { labNodes } from './nodes.js';
import { readState } from './state.js';

/** Read-only views of a lab: status, how to reach a node, where its log is. Take no lock. */

export interface NodeStatusRow {
  name: string;
  role: NodeRole;
  runtime: NodeState['runtime'] | NodeSpec['runtime'];
  version?: string;
  address?: string;
  condition: NodeCondition | 'absent';
  pid?: number;
  caps: string;
  dataBytes?: number;
  /** When the agent saw a node die. */
  diedNoticedAt?: string;
}

export interface StatusResult {
  lab: string;
  stateDir: string;
  exists: boolean;
  agent: { running: boolean; pid?: number; checkedAt?: string; sampling?: SamplingStatus; services?: Record<string, ServiceStatus> };
  nodes: NodeStatusRow[];
  /**
   * Each sink of the running agent: healthy or failing since when, the last error, and what
   * happened to its points (offered = written + buffered + dropped + rejected). Empty when the
   * agent is not running.
   */
  sinks: SinkReport[];
}

/** `prodhome status`: what runs, where, and in what shape. Read-only; takes no lock. */
export async function labStatus(config: LabConfig): Promise<StatusResult> {
  const state = readState(config.stateDir);
  const handles = labNodes(config, state);
  const agentStatus = readAgentStatus(config.stateDir);
  const pid = agentPid(config.stateDir);
  const names = [...new Set([...config.nodes.map((n) => n.name), ...Object.keys(state?.nodes ?? {})])];
  const nodes = await Promise.all(
    names.map(async (name): Promise<NodeStatusRow> => {
      const spec = config.nodes.find((n) => n.name === name);
      const node = state?.nodes[name];
      if (!node) return { name, role: spec?.role ?? 'standalone', runtime: spec?.runtime ?? 'local', condition: 'absent', caps: '-' };
      const seen = await runtimes[node.runtime].inspect(name, node, handles.get(name)?.connection.password);
      const agentSaw = agentStatus?.nodes[name];
      return {
        name,
        role: spec?.role ?? 'standalone',
        runtime: node.runtime,
        version: seen.version,
        address: seen.address,
        condition: seen.condition,
        pid: seen.pid,
        caps: seen.caps,
        dataBytes: seen.dataBytes,
        diedNoticedAt: seen.condition === 'died' && agentSaw?.condition === 'died' ? agentSaw.since : undefined,
      };
    }),
  );
  return {
    lab: config.lab,
    stateDir: config.stateDir,
    exists: state !== undefined,
    agent: { running: pid !== undefined, pid, checkedAt: pid ? agentStatus?.checkedAt : undefined, sampling: pid ? agentStatus?.sampling : undefined, services: pid ? agentStatus?.services : undefined },
    nodes,
    sinks: (pid ? agentStatus?.sampling?.sinkStats : undefined) ?? [],
  };
}
