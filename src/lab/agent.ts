import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { processAlive, processArgv, runningPidCached, sleep, type NodeCondition } from '../runtime/index.js';
import { loadConfig, type LabConfig } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import type { DashboardServer } from '../dashboard/index.js';
import { openAppendSafe, writeFileSafe } from '../fsafe.js';
import type { Sampler, SamplingStatus } from './agent-sampler.js';
import { nodeConnection } from './nodes.js';
import { Supervisor, type AgentService, type ServiceStatus } from './agent-services.js';
import { makeTemplates } from './templates.js';
import { acquireLock } from './lock.js';
import { portHolder } from './port-holder.js';
import { files, readSecrets, readState, type LabState, type PortMove } from './state.js';

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
  /** Each service the agent hosts (sampler, http): running or failed since when, restarts. */
  services?: Record<string, ServiceStatus>;
  /** The web dashboard's address (its token is in secrets.json), or why it is not served. */
  dashboard?: { url?: string; error?: string };
  /** The ports the agent serves on, kept from agent to agent (taken again while free). */
  ports?: Partial<Record<AgentPort, number>>;
  /** A port the last agent had, taken by another program when this one started, so it serves elsewhere. */
  portMoves?: Partial<Record<AgentPort, PortMove>>;
}

/** The agent's two listeners: /metrics (the sampler) and the dashboard with its point API (http). */
export type AgentPort = 'metrics' | 'dashboard';

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
  return { pid: spawnAgent(stateDir), started: true };
}

/**
 * A lab that is up has an agent: a command that finds it dead (killed, crashed, the machine
 * rebooted under a lab left up) starts it again with the settings the last `up` gave it, and
 * returns its pid. Nothing for a lab that is down or gone, or while another command holds the
 * lab's lock (`up`, `down` and `destroy` see to the agent themselves).
 */
export function reviveAgent(stateDir: string, command: string): number | undefined {
  const state = readState(stateDir);
  if (!state || !meantUp(state) || !readOr(settingsFile(stateDir)) || agentPid(stateDir)) return undefined;
  let release: () => void;
  try {
    release = acquireLock(files(stateDir).lock, state.lab, command);
  } catch {
    return undefined;
  }
  try {
    // Under the lock: another command may have revived it meanwhile.
    return agentPid(stateDir) || !fs.existsSync(files(stateDir).state) ? undefined : spawnAgent(stateDir);
  } finally {
    release();
  }
}

/** Whether the lab is meant to be up: not taken down by `down`, and not every local node stopped on purpose. */
function meantUp(state: LabState): boolean {
  if (state.downAt) return false;
  const local = Object.values(state.nodes).filter((n) => n.runtime === 'local');
  return local.length === 0 || local.some((n) => n.desired === 'running');
}

/** Starts the agent process, detached, logging to agent.log; records and returns its pid. */
function spawnAgent(stateDir: string): number {
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
  return child.pid!;
}

/**
 * Stops the agent (SIGTERM, then SIGKILL after 10 s). Returns whether one was running. An agent
 * whose sinks are healthy stops in well under a second; the time is for sinks whose store is
 * away, which try to deliver their buffers for a few seconds and count what they could not.
 */
export async function stopAgent(stateDir: string): Promise<boolean> {
  const pid = agentPid(stateDir);
  fs.rmSync(files(stateDir).agentPid, { force: true });
  if (!pid) return false;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
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
  // The ports the previous agent served on: taken again when free, so URLs stay the same.
  const previous = readAgentStatus(stateDir);
  const portOf = (url: string | undefined) => (url ? Number(new URL(url).port) || undefined : undefined);
  const status: AgentStatus = { pid: process.pid, startedAt: new Date().toISOString(), checkedAt: '', nodes: {}, ports: { ...previous?.ports }, portMoves: { ...previous?.portMoves } };
  const portBefore = (which: AgentPort, url: string | undefined) => status.ports?.[which] ?? portOf(url);
  /** Records the port a listener got: kept for the next agent, and a move when the one wanted was taken. */
  const served = (which: AgentPort, wanted: number | undefined, url: string | undefined) => {
    const got = portOf(url);
    if (!got) return;
    status.ports![which] = got;
    if (wanted && got !== wanted) {
      status.portMoves![which] = { wanted, got, at: new Date().toISOString(), heldBy: portHolder(wanted) };
      log(`${which}: port ${wanted}, which this lab's agent served on before, is taken${status.portMoves![which]!.heldBy ? ` by ${status.portMoves![which]!.heldBy}` : ''}; serving on ${got}`);
    } else if (status.portMoves![which]?.got !== got) delete status.portMoves![which];
  };
  log(`agent started (pid ${process.pid}) for ${path.dirname(f.state)}`);
  let config: LabConfig | undefined;
  try {
    const settings = JSON.parse(readOr(settingsFile(stateDir))) as AgentSettings;
    config = loadConfig({ file: settings.configFile, cwd: settings.baseDir });
  } catch (e) {
    log(`cannot read the lab's config: ${(e as Error).message}; supervising nodes only`);
  }
  let sampler: Sampler | undefined;
  let dashboard: DashboardServer | undefined;
  const services: AgentService[] = [];
  if (config) {
    const lab = config;
    services.push({
      name: 'sampler',
      start: async () => {
        // Loaded here, not at the top: CLI commands that only read the agent's files stay light.
        const { startSampling } = await import('./agent-sampler.js');
        const wanted = lab.metrics.prometheus === false || lab.metrics.prometheus.port ? undefined : portBefore('metrics', status.sampling?.prometheus ?? previous?.sampling?.prometheus);
        sampler = await startSampling(lab, log, wanted);
        status.sampling = sampler.status;
        served('metrics', wanted, sampler.status.prometheus);
        log(`sampling every ${sampler.status.intervalMs} ms${sampler.status.sinks.length ? ` into ${sampler.status.sinks.join(', ')}` : ''}`);
      },
      stop: async () => {
        await sampler?.stop().catch((e: Error) => log(`sampler: stopping: ${e.message}`));
        sampler = undefined;
      },
      failure: () => sampler?.failure(),
    });
    if (lab.dashboard !== false) {
      const port = lab.dashboard.port;
      // First: `up` ends by printing the dashboard's URL, so it waits for this service.
      services.unshift({
        name: 'http',
        start: async () => {
          const secret = readSecrets(stateDir).dashboard;
          if (!secret) throw new Error('no dashboard token in secrets.json: run `prodhome up`');
          const store = lab.metrics.store ? { ...nodeConnection(lab, lab.metrics.store), user: secret.user, password: secret.password } : undefined;
          const { startDashboard } = await import('../dashboard/index.js');
          const wanted = port ? undefined : portBefore('dashboard', status.dashboard?.url ?? previous?.dashboard?.url);
          dashboard = await startDashboard({
            port,
            previousPort: wanted,
            token: secret.token,
            lab: lab.lab,
            nodes: lab.nodes.map((n) => ({ name: n.name, role: n.role })),
            replication: lab.replication,
            store,
            intervalMs: lab.metrics.intervalMs,
            latest: () => sampler?.latest() ?? [],
            ingest: (points) => sampler?.ingest(points),
            log,
          });
          status.dashboard = { url: dashboard.url };
          served('dashboard', wanted, dashboard.url);
          writeStatus(f.agentStatus, status); // now, not after the other services: `up` waits for it
          log(`serving the dashboard and the point API on ${dashboard.url} (\`prodhome dashboard\` prints it with its token)`);
        },
        stop: async () => {
          await dashboard?.close().catch(() => {});
          dashboard = undefined;
        },
        failure: () => dashboard?.failure(),
      });
    }
  }
  const supervisor = new Supervisor(services, log);
  // `up` starts a new agent before its nodes, so this process's start-up overlaps theirs; it
  // samples and serves once that `up` is done (the lab's lock released).
  // The dashboard's web server is loaded before that, not after: its start is what `up` waits for.
  if (config && config.dashboard !== false) await import('../dashboard/index.js').catch(() => undefined);
  await whileLocked(f.lock, () => stopping);
  if (!stopping) await supervisor.check();
  // The template cluster for this lab's binaries if there is none yet, and spare copies of it for
  // the next lab: made here in the background (after the services, which `up` waits for).
  const initial = readLabState(f.state);
  const templates = new AbortController();
  if (initial && initial !== 'gone' && !(initial instanceof Error)) void makeTemplates(initial, log, templates.signal);
  status.services = supervisor.status();
  if (status.services.http?.state === 'failed') status.dashboard = { error: status.services.http.error };
  const pause = () =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, intervalMs);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    }).then(() => (wake = undefined));
  let readFailure: string | undefined;
  while (!stopping) {
    const state = readLabState(f.state);
    if (state === 'gone') {
      log('the lab state is gone (destroyed); agent exits');
      break;
    }
    // Any other failure (EMFILE when out of descriptors, EIO…) is not destruction: log it once, retry.
    if (state instanceof Error) {
      if (readFailure !== state.message) log(`cannot read ${f.state}: ${state.message}; retrying every ${intervalMs} ms`);
      readFailure = state.message;
      await pause();
      continue;
    }
    if (readFailure) log(`${f.state} is readable again`);
    readFailure = undefined;
    const now = new Date().toISOString();
    for (const [name, node] of Object.entries(state.nodes)) {
      if (node.runtime !== 'local') continue;
      const pid = runningPidCached(node.dataDir);
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
    await supervisor.check();
    status.services = supervisor.status();
    status.checkedAt = now;
    writeStatus(f.agentStatus, status);
    if (!stopping) await pause();
  }
  templates.abort(); // a spare copy under way is killed: the agent exits now, not when it is done
  await supervisor.stopAll();
  status.services = supervisor.status();
  writeStatus(f.agentStatus, status); // the sinks' final counts
  log('agent stopped');
  if (Number(readOr(f.agentPid).trim()) === process.pid) fs.rmSync(f.agentPid, { force: true });
}

/** Waits while a live process holds the lab's lock (at most `maxMs`), or until `stop()`. */
async function whileLocked(lockFile: string, stop: () => boolean, maxMs = 600_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (!stop() && Date.now() < deadline) {
    const pid = Number(readOr(lockFile).split(' ')[0]);
    if (!(pid > 0 && pid !== process.pid && processAlive(pid))) return;
    await sleep(20);
  }
}

/** The lab's state; 'gone' only when state.json (or its directory) no longer exists. */
function readLabState(file: string): LabState | 'gone' | Error {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'gone' : (e as Error);
  }
  try {
    return JSON.parse(text) as LabState;
  } catch (e) {
    return new Error(`not valid JSON (${(e as Error).message})`);
  }
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

/**
 * The dashboard's URL with its token, from the running agent (waiting up to `waitMs` for one
 * that is just starting). Exit 2 with what to do when there is no agent or no dashboard.
 */
export async function dashboardUrl(config: LabConfig, waitMs = 5000): Promise<string> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const pid = agentPid(config.stateDir);
    if (!pid) {
      throw new ProdhomeError('NO_AGENT', `lab "${config.lab}" has no running agent, so no dashboard is served`, {
        hint: 'Run `prodhome up` (it starts the agent, which serves the dashboard), then `prodhome dashboard` again.',
      });
    }
    if (config.dashboard === false) {
      throw new ProdhomeError('DASHBOARD_OFF', `the dashboard of lab "${config.lab}" is turned off (dashboard: false in the config)`, {
        hint: 'Remove `dashboard: false` (or set `dashboard: { port: N }`) and run `prodhome up`.',
      });
    }
    const status = readAgentStatus(config.stateDir);
    const token = readSecrets(config.stateDir).dashboard?.token;
    if (status?.pid === pid && status.dashboard?.url && token) return `${status.dashboard.url}?token=${token}`;
    if (status?.pid === pid && status.dashboard?.error) {
      throw new ProdhomeError('DASHBOARD_FAILED', `the agent could not serve the dashboard: ${status.dashboard.error}`, {
        hint: `See ${files(config.stateDir).agentLog}; a port already taken is fixed with dashboard: { port: N } in the config.`,
      });
    }
    if (Date.now() > deadline) {
      throw new ProdhomeError('DASHBOARD_PENDING', `the agent (pid ${pid}) has not reported a dashboard address yet`, { hint: `See ${files(config.stateDir).agentLog}, or try again in a moment.` });
    }
    await sleep(100);
  }
}
