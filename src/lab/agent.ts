import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { processAlive, processArgv, runningPid, sleep, type NodeCondition } from '../runtime/index.js';
import { loadConfig } from '../config/index.js';
import { openAppendSafe, writeFileSafe } from '../fsafe.js';
import { startSampling, type Sampler, type SamplingStatus } from './agent-sampler.js';
import { files, readState } from './state.js';

/**
 * The lab's agent: one background process per lab, started by `up`, stopped by `down`. It
 * supervises — notices a node that died, logs it, and records what it saw in agent-status.json
 * for `status` — and samples every node into the configured sinks and /metrics
 * (agent-sampler.ts). The dashboard and fault proxy will live here too.
 */

export interface AgentStatus {
  pid: number;
  startedAt: string;
  checkedAt: string;
  nodes: Record<string, { condition: NodeCondition; pid?: number; since: string }>;
  sampling?: SamplingStatus;
}

/** What the agent needs to find its lab's config; a change restarts it on the next `up`. */
export interface AgentSettings {
  configFile?: string;
  baseDir: string;
  /** A hash of the config text, so an edited config restarts the agent. */
  configHash: string;
}

const settingsFile = (stateDir: string) => path.join(stateDir, 'agent.json');

const CLI_ENTRY = fileURLToPath(new URL('../../bin/prodhome.js', import.meta.url));

/** The running agent's pid: the one agent.pid names, if that process is this lab's agent (it gets signalled). */
export function agentPid(stateDir: string): number | undefined {
  const pid = Number(readOr(files(stateDir).agentPid).trim());
  return pid > 0 && processAlive(pid) && isAgentOf(pid, stateDir) ? pid : undefined;
}

function isAgentOf(pid: number, stateDir: string): boolean {
  const args = processArgv(pid);
  const i = args.indexOf('--state-dir');
  return i > 0 && args[i - 1] === 'agent' && args[i + 1] === stateDir;
}

/** Starts the agent unless one runs with the same settings; returns its pid and whether it (re)started. */
export async function ensureAgent(stateDir: string, settings: AgentSettings): Promise<{ pid: number; started: boolean }> {
  const text = `${JSON.stringify(settings, null, 2)}\n`;
  const running = agentPid(stateDir);
  if (running && readOr(settingsFile(stateDir)) === text) return { pid: running, started: false };
  if (running) await stopAgent(stateDir);
  writeFileSafe(settingsFile(stateDir), text);
  const f = files(stateDir);
  const logFd = openAppendSafe(f.agentLog, { mode: 0o644 });
  const child = spawn(process.execPath, [CLI_ENTRY, 'agent', '--state-dir', stateDir], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: { ...process.env, PRODHOME_AGENT: '1' },
  });
  fs.closeSync(logFd);
  child.unref();
  writeFileSafe(f.agentPid, `${child.pid}\n`);
  return { pid: child.pid!, started: true };
}

/** Stops the agent (SIGTERM, then SIGKILL after 2 s). Returns whether one was running. */
export async function stopAgent(stateDir: string): Promise<boolean> {
  const pid = agentPid(stateDir);
  fs.rmSync(files(stateDir).agentPid, { force: true });
  if (!pid) return false;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 2000;
  while (processAlive(pid)) {
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      break;
    }
    await sleep(10);
  }
  return true;
}

export function readAgentStatus(stateDir: string): AgentStatus | undefined {
  try {
    return JSON.parse(fs.readFileSync(files(stateDir).agentStatus, 'utf8')) as AgentStatus;
  } catch {
    return undefined;
  }
}

/** The agent's main loop (runs in the background process). */
export async function runAgent(stateDir: string, intervalMs = Number(process.env.PRODHOME_AGENT_INTERVAL_MS) || 1000): Promise<void> {
  const f = files(stateDir);
  let stopping = false;
  let wake: (() => void) | undefined;
  const stop = () => {
    stopping = true;
    wake?.(); // end the pause between checks now, not at its end
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  // The agent outlives any one failure: a stray rejection is logged, never fatal.
  process.on('unhandledRejection', (e) => log(`unexpected error (the agent goes on): ${(e as Error)?.stack ?? String(e)}`));
  const status: AgentStatus = { pid: process.pid, startedAt: new Date().toISOString(), checkedAt: '', nodes: {} };
  log(`agent started (pid ${process.pid}) for ${path.dirname(f.state)}`);
  let sampler: Sampler | undefined;
  try {
    const settings = JSON.parse(readOr(settingsFile(stateDir))) as AgentSettings;
    sampler = await startSampling(loadConfig({ file: settings.configFile, cwd: settings.baseDir }), log);
    status.sampling = sampler.status;
    log(`sampling every ${sampler.status.intervalMs} ms${sampler.status.sinks.length ? ` into ${sampler.status.sinks.join(', ')}` : ''}`);
  } catch (e) {
    log(`not sampling: ${(e as Error).message}`);
  }
  while (!stopping) {
    const state = readState(stateDir);
    if (!state) {
      log('the lab state is gone (destroyed); agent exits');
      break;
    }
    const now = new Date().toISOString();
    for (const [name, node] of Object.entries(state.nodes)) {
      if (node.runtime !== 'local') continue;
      const pid = runningPid(node.dataDir);
      const condition: NodeCondition = pid ? 'running' : node.desired === 'running' ? 'died' : 'stopped';
      const before = status.nodes[name];
      if (!before || before.condition !== condition) {
        if (condition === 'died') log(`${name}: postmaster${node.pid ? ` (pid ${node.pid})` : ''} is gone — the node died; \`prodhome up\` restarts it`);
        else if (before) log(`${name}: ${before.condition} → ${condition}${pid ? ` (pid ${pid})` : ''}`);
        else log(`${name}: ${condition}${pid ? ` (pid ${pid})` : ''}`);
        status.nodes[name] = { condition, pid, since: now };
      } else {
        status.nodes[name]!.pid = pid;
      }
    }
    for (const name of Object.keys(status.nodes)) if (!state.nodes[name]) delete status.nodes[name];
    status.checkedAt = now;
    writeStatus(f.agentStatus, status);
    if (!stopping) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  }
  await sampler?.stop();
  log('agent stopped');
  if (Number(readOr(f.agentPid).trim()) === process.pid) fs.rmSync(f.agentPid, { force: true });
}

function writeStatus(file: string, status: AgentStatus): void {
  try {
    writeFileSafe(file, JSON.stringify(status));
  } catch {
    // The state dir is being destroyed; the loop notices on its next turn.
  }
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
