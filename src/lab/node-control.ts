import type { LabConfig } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { runningPid, runtimes } from '../runtime/index.js';
import { thawFrozenNodes } from './faults.js';
import { acquireLock } from './lock.js';
import { restartLocal } from './replication.js';
import { files, readSecrets, readState, writeState, type LabState } from './state.js';

/**
 * `prodhome stop|start|restart NODE…`: one node at a time, as `docker stop subscriber2` did —
 * the rest of the lab goes on. A stopped node is *stopped*, not *died*: the agent and `status`
 * know the difference, and `up` starts it again. Each report says what the node's absence does
 * to replication, so a learner knows what to watch.
 */

export type NodeAction = 'stop' | 'start' | 'restart';

export interface NodeControlReport {
  node: string;
  /** What happened: stopped, started, restarted, already stopped, already running. */
  done: string;
  /** What it means for replication and sampling while the node is away. */
  consequences: string[];
}

export async function labNodeControl(config: LabConfig, action: NodeAction, names: string[], log: (line: string) => void = () => {}): Promise<NodeControlReport[]> {
  const state = readState(config.stateDir);
  if (!state) throw new ProdhomeError('LAB_NOT_UP', `lab "${config.lab}" has not been brought up here`, { hint: 'Run `prodhome up` first.' });
  const known = [...new Set([...config.nodes.map((n) => n.name), ...Object.keys(state.nodes)])];
  for (const name of names) {
    if (!known.includes(name)) {
      throw new ProdhomeError('UNKNOWN_NODE', `there is no node "${name}" in lab "${config.lab}" (nodes: ${known.join(', ')})`, { hint: 'Use one of the node names from `prodhome status`.' });
    }
    const node = state.nodes[name];
    if (!node) throw new ProdhomeError('LAB_NOT_UP', `node "${name}" has not been created yet`, { hint: 'Run `prodhome up` first.' });
    if (node.runtime !== 'local') {
      throw new ProdhomeError('USAGE', `${name} is an external server (${node.url}): prodhome does not ${action} servers it did not start`, { hint: 'Stop or start it where it runs.' });
    }
  }
  const release = acquireLock(files(config.stateDir).lock, config.lab, action);
  try {
    const reports: NodeControlReport[] = [];
    for (const name of names) {
      const fresh = readState(config.stateDir)!;
      const node = fresh.nodes[name];
      if (node?.runtime !== 'local') continue;
      const running = runningPid(node.dataDir) !== undefined;
      let done: string;
      if (action === 'stop') {
        thawFrozenNodes({ ...fresh, nodes: { [name]: node } }, log); // a frozen server would never take the signal
        const down = await runtimes.local.down(name, node);
        if (down.result === 'left alone') throw new ProdhomeError('STOP_FAILED', `${name}: ${down.note ?? 'its process could not be verified'}`);
        node.desired = 'stopped';
        node.pid = undefined;
        node.pidStartTime = undefined;
        done = down.result === 'stopped' ? 'stopped' : 'already stopped';
      } else if (action === 'start' && running) {
        done = 'already running';
      } else {
        fresh.nodes[name] = await restartLocal(config, fresh, name, readSecrets(config.stateDir).nodes[name]?.password, log);
        done = action === 'start' || !running ? 'started' : 'restarted';
      }
      writeState(config.stateDir, fresh);
      reports.push({ node: name, done, consequences: action === 'stop' ? consequencesOfStopping(config, fresh, name) : [] });
    }
    return reports;
  } finally {
    release();
  }
}

/** What stops working, and what piles up, while `name` is down. */
function consequencesOfStopping(config: LabConfig, state: LabState, name: string): string[] {
  const out: string[] = [];
  const subs = config.replication.subscriptions;
  for (const sub of subs.filter((s) => s.node === name)) {
    out.push(`${sub.name} stops applying; ${sub.publisher} keeps the WAL for its slot until ${name} is back (\`prodhome replication status\` shows the slot's retained WAL growing)`);
  }
  const fed = subs.filter((s) => s.publisher === name);
  if (fed.length) out.push(`${fed.map((s) => s.name).join(', ')} ${fed.length > 1 ? 'wait' : 'waits'} for ${name}: ${fed.length > 1 ? 'their workers retry' : 'its worker retries'} until it is back, then catch${fed.length > 1 ? '' : 'es'} up`);
  if (config.metrics.store === name) out.push(`the agent's samples wait in its sinks' buffers until the metrics store ${name} is back`);
  if (state.nodes[name]?.runtime === 'local') out.push(`\`prodhome start ${name}\` (or \`prodhome up\`) starts it again`);
  return out;
}
