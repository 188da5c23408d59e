import type { LabConfig, NodeRole, NodeSpec } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { parseConnectionUrl, type ConnectionInfo } from '../pg/index.js';
import { runtimes, type NodeCondition, type NodeState } from '../runtime/index.js';
import { agentPid, readAgentStatus } from './agent.js';
import type { SamplingStatus, SinkReport } from './agent-sampler.js';
import { files, readSecrets, readState } from './state.js';

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
  agent: { running: boolean; pid?: number; checkedAt?: string; sampling?: SamplingStatus };
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
  const secrets = readSecrets(config.stateDir);
  const agentStatus = readAgentStatus(config.stateDir);
  const pid = agentPid(config.stateDir);
  const names = [...new Set([...config.nodes.map((n) => n.name), ...Object.keys(state?.nodes ?? {})])];
  const nodes = await Promise.all(
    names.map(async (name): Promise<NodeStatusRow> => {
      const spec = config.nodes.find((n) => n.name === name);
      const node = state?.nodes[name];
      if (!node) return { name, role: spec?.role ?? 'standalone', runtime: spec?.runtime ?? 'local', condition: 'absent', caps: '-' };
      const password = node.runtime === 'external' ? (spec?.url ? parseConnectionUrl(spec.url).password : undefined) : secrets.nodes[name]?.password;
      const seen = await runtimes[node.runtime].inspect(name, node, password);
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
    agent: { running: pid !== undefined, pid, checkedAt: pid ? agentStatus?.checkedAt : undefined, sampling: pid ? agentStatus?.sampling : undefined },
    nodes,
    sinks: (pid ? agentStatus?.sampling?.sinkStats : undefined) ?? [],
  };
}

/** How to connect to a node (with its password), for `env` and `psql`. */
export function nodeConnection(config: LabConfig, name: string): ConnectionInfo {
  const state = readState(config.stateDir);
  const node = state?.nodes[name];
  if (!node) {
    const known = [...new Set([...config.nodes.map((n) => n.name), ...Object.keys(state?.nodes ?? {})])];
    if (!known.includes(name)) {
      throw new ProdhomeError('UNKNOWN_NODE', `there is no node "${name}" in lab "${config.lab}" (nodes: ${known.join(', ')})`, {
        hint: 'Use one of the node names from `prodhome status`.',
      });
    }
    throw new ProdhomeError('LAB_NOT_UP', `node "${name}" of lab "${config.lab}" has not been created yet`, { hint: 'Run `prodhome up` first.' });
  }
  if (node.runtime === 'external') {
    const spec = config.nodes.find((n) => n.name === name);
    return parseConnectionUrl(spec?.url ?? node.url);
  }
  const secret = readSecrets(config.stateDir).nodes[name];
  return { host: '127.0.0.1', port: node.port, user: secret?.user ?? 'postgres', password: secret?.password, database: 'postgres' };
}

/** The log file of a node, or of the agent. */
export function logFileOf(config: LabConfig, name: string): string {
  if (name === 'agent') return files(config.stateDir).agentLog;
  const node = readState(config.stateDir)?.nodes[name];
  if (node?.runtime === 'local') return node.logFile;
  if (node?.runtime === 'external') {
    throw new ProdhomeError('USAGE', `${name} is an external server; its logs are wherever that server keeps them`);
  }
  nodeConnection(config, name); // throws the right "unknown node" / "not up" error
  throw new ProdhomeError('LAB_NOT_UP', `node "${name}" has no log yet`, { hint: 'Run `prodhome up` first.' });
}
