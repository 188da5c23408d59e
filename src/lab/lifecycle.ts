import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { LabConfig, NodeRole, NodeSpec } from '../config/index.js';
import { CONFIG_CACHE_FILE, DEFAULT_CONFIG_YAML, readReplicationFiles } from '../config/index.js';
import { ProdhomeError, messageOf } from '../errors.js';
import { assertRealDir, writeFileSafe } from '../fsafe.js';
import { connectionUrl, serverVersion, withConnection } from '../pg/index.js';
import {
  pickAnotherPort, pickFreePort, portFree, reachableBinDir, resolveBinaries, runningPid, runtimes, serverUser, userCan,
  type NodeDown, type NodeState, type OsUser, type PgBinaries, type UpContext, type UpOutcome,
} from '../runtime/index.js';
import { createSink } from '../sinks/index.js';
import { applyReplication, pools, readApplied, revertReplication, type ApplyResult, type OperationReport } from '../replication/index.js';
import { planNodes, replicationFile, replicationPasswords } from './replication.js';
import { agentPid, ensureAgent, stopAgent, type AgentSettings } from './agent.js';
import { templateRoot } from './templates.js';
import { releaseFaults, settleNodeFaults, thawFrozenNodes } from './faults.js';
import { acquireLock } from './lock.js';
import { files, labIdFor, newPassword, readSecrets, readState, writeSecrets, writeState, type LabState, type PortMove, type Secrets } from './state.js';
import { portHolder } from './port-holder.js';

/** Root-owned home for what a root-run lab keeps outside an unreachable state dir. */
export { SYSTEM_ROOT } from './paths.js';
import { SYSTEM_ROOT } from './paths.js';

export type Log = (line: string) => void;

export interface NodeUpReport {
  name: string;
  role: NodeRole;
  runtime: NodeState['runtime'];
  action: string;
  version?: string;
  address: string;
  /** postgres:// URL without the password. */
  url: string;
}

export interface UpResult {
  lab: string;
  stateDir: string;
  nodes: NodeUpReport[];
  agent: { pid: number; started: boolean };
  /** False when the lab was already up exactly as configured. */
  changed: boolean;
  /** Replication steps this run applied (none when it was already in place). */
  replication?: ApplyResult;
}

/** `prodhome up`: make every node exist and run as configured. Idempotent; all-or-nothing per run. */
export async function labUp(config: LabConfig, log: Log = () => {}, signal?: AbortSignal): Promise<UpResult> {
  // An interrupt (Ctrl-C) is honoured between phases, so the rollback below still runs.
  const checkpoint = () => {
    if (signal?.aborted) throw new ProdhomeError('INTERRUPTED', 'interrupted; what this run created has been removed', { exitCode: 130 });
  };
  assertLabDirs(config.stateDir);
  const madeDirs = makeStateDir(config.stateDir);
  let release: (() => void) | undefined;
  const outcomes: UpOutcome[] = [];
  let secretsBefore: Secrets | undefined;
  let earlyAgent: { pid: number; started: boolean } | undefined;
  try {
    release = acquireLock(files(config.stateDir).lock, config.lab, 'up');
    const previous = readState(config.stateDir);
    // A frozen node (fault freeze) looks running but would never answer: continue it first.
    thawFrozenNodes(previous, log);
    const local = config.nodes.filter((n) => n.runtime === 'local');
    const user = local.length ? serverUser(config.runAs) : undefined;
    if (user && !previous) log(`running as root: servers run as the OS user "${user.name}" (uid ${user.uid})`);

    // Everything that can be wrong is checked before anything is created.
    const binaries = new Map<string, PgBinaries>();
    for (const spec of local) {
      const bins = resolveBinaries({ nodeBinDir: spec.postgres.binDir, labBinDir: config.postgres.binDir, version: spec.postgres.version ?? config.postgres.version }, spec.name);
      binaries.set(spec.name, { ...bins, binDir: reachableBinDir(bins.binDir, user, SYSTEM_ROOT) });
    }
    readReplicationFiles(config.replication);
    // A sink URI the agent could not use is a config mistake: say so now, not in the agent's log.
    for (const uri of config.metrics.sinks) createSink(uri);
    const { ports, moved } = await assignPorts(config, previous);
    const labId = previous?.labId ?? labIdFor(config.lab, config.stateDir);
    const dataRoot = previous?.dataRoot ?? chooseDataRoot(config.stateDir, labId, user);
    if (!previous && !dataRoot.startsWith(config.stateDir)) madeDirs.push(dataRoot);

    secretsBefore = readSecrets(config.stateDir);
    const secrets: Secrets = { ...secretsBefore, nodes: { ...secretsBefore.nodes }, replication: { ...secretsBefore.replication } };
    for (const spec of local) secrets.nodes[spec.name] ??= { user: 'postgres', password: newPassword() };
    secrets.dashboard ??= { user: 'prodhome_dashboard', password: newPassword(), token: newPassword() };
    writeSecrets(config.stateDir, secrets);

    // With no agent running (a new lab, or one brought down), the agent starts now: its start-up
    // (a Node process loading its modules) overlaps the nodes'. It waits for this `up` to end
    // before it samples or serves anything; a failed `up` stops it again.
    const agentSettings: AgentSettings = {
      configFile: config.configFile,
      baseDir: config.baseDir,
      configHash: crypto.createHash('sha1').update(config.configFile ? fs.readFileSync(config.configFile) : 'default lab').digest('hex').slice(0, 16),
    };
    earlyAgent = agentPid(config.stateDir) ? undefined : await ensureAgent(config.stateDir, agentSettings);

    // A port lost to a race is never tried again in this run; the new one is the node's from now on.
    const lost = new Set<number>();
    const anotherPort = async (name: string, failed: number) => {
      lost.add(failed);
      const port = await pickAnotherPort(config.ports.from, config.ports.to, new Set([...lost, ...ports.values(), ...config.nodes.flatMap((n) => (n.port ? [n.port] : []))]));
      if (port !== undefined) {
        ports.set(name, port);
        moved.set(name, { wanted: moved.get(name)?.wanted ?? failed, got: port, at: new Date().toISOString(), heldBy: portHolder(failed) });
      }
      return port;
    };
    const contextFor = (spec: NodeSpec, prev: NodeState | undefined): UpContext => ({
      labId,
      user,
      dataRoot,
      templateRoot: templateRoot(user),
      password: secrets.nodes[spec.name]?.password,
      binaries: binaries.get(spec.name),
      port: ports.get(spec.name),
      anotherPort: spec.port ? undefined : (failed) => anotherPort(spec.name, failed),
      previous: prev,
      log,
    });
    // The dashboard's module (its web server too) is loaded while the nodes come up, not before.
    const dashboardModule = import('../dashboard/index.js');
    dashboardModule.catch(() => {}); // a failure is met where it is awaited
    const settled = await Promise.allSettled(config.nodes.map((spec) => runtimes[spec.runtime].up(spec, contextFor(spec, previous?.nodes[spec.name]))));
    for (const s of settled) if (s.status === 'fulfilled') outcomes.push(s.value);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    checkpoint();

    // Prove each server takes a password login over TCP, and learn its real version.
    const versions = await Promise.all(
      outcomes.map(async (o, i) => {
        try {
          return await withConnection(o.connection, async (sql) => {
            // Lab nodes preload pg_stat_statements; its view needs the extension in the database.
            if (o.state.runtime === 'local' && o.action !== 'unchanged' && binaries.get(config.nodes[i]!.name)?.hasPgStatStatements) {
              await sql`create extension if not exists pg_stat_statements`;
            }
            return (await serverVersion(sql)).version;
          });
        } catch (e) {
          throw new ProdhomeError('START_FAILED', `${config.nodes[i]!.name}: started, but a password login over TCP failed: ${messageOf(e)}`);
        }
      }),
    );

    // The dashboard reads the metrics store through a role that can only SELECT schema metrics.
    const storeAt = config.nodes.findIndex((n) => n.name === config.metrics.store && n.runtime === 'local');
    if (storeAt >= 0 && secrets.dashboard) {
      const reader = secrets.dashboard;
      const { ensureReader } = await dashboardModule;
      await withConnection(outcomes[storeAt]!.connection, (sql) => ensureReader(sql, reader));
    }

    checkpoint();
    let replication: ApplyResult | undefined;
    const r = config.replication;
    if (r.schema.length || r.seed.length || r.publications.length || r.subscriptions.length) {
      replication = await applyReplication({
        config: r,
        nodes: new Map(outcomes.map((o, i) => [config.nodes[i]!.name, { connection: o.connection, runtime: o.state.runtime }])),
        stateFile: replicationFile(config.stateDir),
        replicationPassword: replicationPasswords(secrets),
        hasReplicationPassword: (p) => !!secrets.replication?.[p],
        restart: async (name) => {
          const i = config.nodes.findIndex((n) => n.name === name);
          const current = outcomes[i]!;
          if (current.state.runtime !== 'local') throw new ProdhomeError('USAGE', `${name} is external; prodhome cannot restart it`);
          log(`${name}: restarting`);
          await runtimes.local.down(name, current.state);
          const again = await runtimes.local.up(config.nodes[i]!, contextFor(config.nodes[i]!, { ...current.state, desired: 'stopped' }));
          outcomes[i] = { ...again, undo: current.undo };
        },
        log,
      });
      writeSecrets(config.stateDir, secrets);
    }

    checkpoint();
    const state: LabState = {
      format: 1,
      lab: config.lab,
      labId,
      createdAt: previous?.createdAt ?? new Date().toISOString(),
      runAs: user,
      dataRoot,
      nodes: { ...previous?.nodes },
      configFile: config.configFile,
      portMoves: portMoves(previous?.portMoves, config, ports, moved),
    };
    config.nodes.forEach((spec, i) => (state.nodes[spec.name] = outcomes[i]!.state));
    writeState(config.stateDir, state);
    // What status, down and destroy read when the config file is broken or gone (find.ts).
    writeFileSafe(files(config.stateDir).configCopy, config.configFile ? fs.readFileSync(config.configFile) : DEFAULT_CONFIG_YAML, { mode: 0o600 });
    for (const name of Object.keys(state.nodes)) {
      if (!config.nodes.some((n) => n.name === name)) log(`${name}: in this lab's state but no longer in the config; left as it is (\`prodhome destroy\` removes it)`);
    }
    const again = await ensureAgent(config.stateDir, agentSettings);
    const agent = !again.started && earlyAgent?.pid === again.pid ? earlyAgent : again;
    const nodes = config.nodes.map((spec, i) => ({
      name: spec.name,
      role: spec.role,
      runtime: spec.runtime,
      action: outcomes[i]!.action,
      version: versions[i],
      address: `${outcomes[i]!.connection.host}:${outcomes[i]!.connection.port}`,
      url: connectionUrl(outcomes[i]!.connection),
    }));
    await settleNodeFaults(config).catch((e: unknown) => log(`faults: ${messageOf(e)}`));
    const changed = agent.started || nodes.some((n) => n.action !== 'unchanged' && n.runtime === 'local') || !!replication?.steps.length;
    return { lab: config.lab, stateDir: config.stateDir, nodes, agent, changed, replication };
  } catch (e) {
    if (earlyAgent?.started) await stopAgent(config.stateDir).catch(() => {});
    for (const o of outcomes.reverse()) await o.undo();
    if (secretsBefore && !madeDirs.length) writeSecrets(config.stateDir, secretsBefore);
    for (const dir of madeDirs.reverse()) fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  } finally {
    if (release && fs.existsSync(config.stateDir)) release();
  }
}

/** Creates the state dir (and .prodhome), returning the directories this call created. */
function makeStateDir(stateDir: string): string[] {
  const made: string[] = [];
  const parent = path.dirname(stateDir);
  for (const dir of [parent, stateDir]) {
    if (fs.existsSync(dir)) continue;
    try {
      fs.mkdirSync(dir, { mode: 0o755 });
      made.push(dir);
    } catch (e) {
      for (const d of made.reverse()) fs.rmSync(d, { recursive: true, force: true });
      throw new ProdhomeError('STATE_DIR_UNWRITABLE', `cannot create the lab's state directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? messageOf(e)}`, {
        hint: `prodhome keeps state beside its config; make ${path.dirname(dir)} writable, or run from (or -f a config in) a writable directory.`,
      });
    }
  }
  try {
    fs.accessSync(stateDir, fs.constants.W_OK);
  } catch {
    throw new ProdhomeError('STATE_DIR_UNWRITABLE', `the lab's state directory ${stateDir} is not writable`, {
      hint: `Fix its permissions (it must be writable by ${process.env.USER ?? 'you'}), or run from a writable directory.`,
    });
  }
  return made;
}

/**
 * Node data lives in the state dir when the server user can reach it. A root-run lab under a
 * 0700 home (say /root/project) cannot be reached by the unprivileged server user, so its data
 * goes to /var/lib/prodhome/labs/<labId> instead; state.json records where, destroy removes it.
 */
function chooseDataRoot(stateDir: string, labId: string, user: OsUser | undefined): string {
  const inside = files(stateDir).nodes;
  fs.mkdirSync(inside, { recursive: true, mode: 0o755 });
  if (!user || userCan(user, '-x', inside)) return inside;
  fs.rmdirSync(inside);
  const outside = path.join(SYSTEM_ROOT, 'labs', labId);
  fs.mkdirSync(outside, { recursive: true, mode: 0o755 });
  return outside;
}

/**
 * Ports: configured ones must be free (unless our own server holds them); others keep the port
 * state.json recorded while it is free, else are picked. `moved`: each node whose recorded port
 * (or, for a new node, the first of the range left to it) was held by another program.
 */
async function assignPorts(config: LabConfig, previous: LabState | undefined): Promise<{ ports: Map<string, number>; moved: Map<string, PortMove> }> {
  const ports = new Map<string, number>();
  const moved = new Map<string, PortMove>();
  const taken = new Set<number>();
  for (const spec of config.nodes) if (spec.port) taken.add(spec.port);
  const ownRunning = (name: string, port: number) => {
    const prev = previous?.nodes[name];
    return prev?.runtime === 'local' && prev.port === port && runningPid(prev.dataDir) !== undefined;
  };
  for (const spec of config.nodes.filter((n) => n.runtime === 'local')) {
    const prev = previous?.nodes[spec.name];
    const prevPort = prev?.runtime === 'local' ? prev.port : undefined;
    if (spec.port) {
      if (!ownRunning(spec.name, spec.port) && !(await portFree(spec.port))) {
        throw new ProdhomeError('PORT_IN_USE', `${spec.name}: port ${spec.port} on 127.0.0.1 is already in use by another program`, {
          hint: `Give ${spec.name} another port: in ${config.configFile ?? 'prodhome.yaml'}, or stop what listens there (ss -ltnp 'sport = :${spec.port}').`,
        });
      }
      ports.set(spec.name, spec.port);
    } else if (prevPort && !taken.has(prevPort) && (ownRunning(spec.name, prevPort) || (await portFree(prevPort)))) {
      ports.set(spec.name, prevPort);
      taken.add(prevPort);
    } else {
      const port = await pickFreePort(config.ports.from, config.ports.to, taken);
      if (!port) {
        throw new ProdhomeError('NO_FREE_PORT', `${spec.name}: no free port between ${config.ports.from} and ${config.ports.to}`, {
          hint: 'Widen ports: from/to in the config, or give the node a port:.',
        });
      }
      const wanted = prevPort && !taken.has(prevPort) ? prevPort : firstUntaken(config.ports.from, config.ports.to, taken);
      if (wanted !== undefined && wanted !== port) moved.set(spec.name, { wanted, got: port, at: new Date().toISOString(), heldBy: portHolder(wanted) });
      ports.set(spec.name, port);
      taken.add(port);
    }
  }
  return { ports, moved };
}

function firstUntaken(from: number, to: number, taken: Set<number>): number | undefined {
  for (let p = from; p <= to; p++) if (!taken.has(p)) return p;
  return undefined;
}

/** The moves state.json keeps: this run's, and earlier ones while the node still has the port it moved to. */
function portMoves(before: Record<string, PortMove> | undefined, config: LabConfig, ports: Map<string, number>, moved: Map<string, PortMove>): Record<string, PortMove> | undefined {
  const kept: Record<string, PortMove> = {};
  for (const spec of config.nodes) {
    const move = moved.get(spec.name) ?? before?.[spec.name];
    if (move && move.got === ports.get(spec.name)) kept[spec.name] = move;
  }
  return Object.keys(kept).length ? kept : undefined;
}

export interface DownResult {
  lab: string;
  nodes: ({ name: string } & NodeDown)[];
  agentStopped: boolean;
  existed: boolean;
}

/** `prodhome down`: stop the agent and every local node; keep all data. */
export async function labDown(config: LabConfig): Promise<DownResult> {
  const state = readState(config.stateDir);
  if (!state) return { lab: config.lab, nodes: [], agentStopped: false, existed: false };
  assertLabDirs(config.stateDir);
  const release = acquireLock(files(config.stateDir).lock, config.lab, 'down');
  try {
    thawFrozenNodes(state, () => {}); // a stopped process would never take the shutdown signal
    const agentStopped = await stopAgent(config.stateDir);
    const nodes = await Promise.all(
      Object.entries(state.nodes).map(async ([name, node]) => ({ name, ...(await runtimes[node.runtime].down(name, node)) })),
    );
    for (const node of Object.values(state.nodes)) {
      if (node.runtime === 'local') {
        node.desired = 'stopped';
        node.pid = undefined;
        node.pidStartTime = undefined;
        node.caps.cgroupDirs = [];
      }
    }
    state.downAt = new Date().toISOString(); // no command revives the agent of a lab taken down
    writeState(config.stateDir, state);
    return { lab: config.lab, nodes, agentStopped, existed: true };
  } finally {
    release();
  }
}

export interface DestroyResult {
  lab: string;
  existed: boolean;
  removed: string[];
}

/** `prodhome destroy`: stop everything and delete what this lab created — nothing else. */
export async function labDestroy(config: LabConfig): Promise<DestroyResult> {
  // Checked before anything is stopped or deleted: a link or an edited state.json refuses it all.
  assertLabDirs(config.stateDir);
  if (!fs.existsSync(config.stateDir)) return { lab: config.lab, existed: false, removed: [] };
  const state = readState(config.stateDir);
  if (state) assertRecordedDirs(config.stateDir, state);
  const release = acquireLock(files(config.stateDir).lock, config.lab, 'destroy');
  const removed: string[] = [];
  try {
    await stopAgent(config.stateDir);
    // No fault outlives the lab: holders end, frozen nodes continue (so they can stop).
    if (state) await releaseFaults(config, state);
    if (state) {
      // What replication made on external servers (slots, publications, role) is the lab's too.
      if (Object.values(state.nodes).some((n) => n.runtime === 'external')) await undoReplicationOnExternal(config, state, removed);
      await Promise.all(Object.entries(state.nodes).map(([name, node]) => runtimes[node.runtime].down(name, node)));
      for (const node of Object.values(state.nodes)) await runtimes[node.runtime].remove(node);
      // Data kept outside the state dir is removed only at the exact path this lab recorded.
      if (state.dataRoot === path.join(SYSTEM_ROOT, 'labs', state.labId) && fs.existsSync(state.dataRoot)) {
        assertRealDir(state.dataRoot, "the lab's data directory");
        fs.rmSync(state.dataRoot, { recursive: true, force: true });
        removed.push(state.dataRoot);
      }
    }
    fs.rmSync(config.stateDir, { recursive: true, force: true });
    removed.push(config.stateDir);
    const parent = path.dirname(config.stateDir);
    if (path.basename(parent) === '.prodhome' && fs.existsSync(parent)) {
      // The last lab gone: the validated-config cache beside it goes too, then .prodhome.
      const left = fs.readdirSync(parent);
      if (left.length === 1 && left[0] === CONFIG_CACHE_FILE) fs.rmSync(path.join(parent, CONFIG_CACHE_FILE), { force: true });
      if (fs.readdirSync(parent).length === 0) fs.rmdirSync(parent);
    }
    return { lab: config.lab, existed: true, removed };
  } finally {
    release();
  }
}

/** The lab's own directories (.prodhome and .prodhome/<lab>) must be real ones, never links. */
function assertLabDirs(stateDir: string): void {
  const parent = path.dirname(stateDir);
  // (Something else in the way, a plain file, is makeStateDir's to report.)
  if (path.basename(parent) === '.prodhome' && isLink(parent)) assertRealDir(parent, "the labs' directory");
  if (isLink(stateDir)) assertRealDir(stateDir, "the lab's state directory");
}

/** Whether anything (a dangling link included) is at `p`. */
function lexists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * What state.json records may be deleted only where this lab puts it: its data root is the
 * state dir's nodes/ or /var/lib/prodhome/labs/<labId>, each node dir is <data root>/<node>,
 * and none of them (nor the system dirs above) is a link.
 */
function assertRecordedDirs(stateDir: string, state: LabState): void {
  const refuse = (what: string) =>
    new ProdhomeError('UNSAFE_PATH', `refusing to destroy lab "${state.lab}": ${what}; destroy deletes only what the lab created`, {
      hint: `${files(stateDir).state} was edited or comes from elsewhere: restore it, or delete what you mean to by hand.`,
    });
  const system = path.join(SYSTEM_ROOT, 'labs', state.labId);
  const roots = [files(stateDir).nodes, system];
  if (!roots.includes(state.dataRoot)) throw refuse(`state.json names ${state.dataRoot} as its data root, which is neither ${roots.join(' nor ')}`);
  if (state.dataRoot === system) for (const dir of [SYSTEM_ROOT, path.dirname(system)]) if (lexists(dir)) assertRealDir(dir, 'the system data directory');
  if (lexists(state.dataRoot)) assertRealDir(state.dataRoot, "the lab's data directory");
  for (const [name, node] of Object.entries(state.nodes)) {
    if (node.runtime !== 'local') continue;
    const nodeDir = path.join(state.dataRoot, name);
    if (node.nodeDir !== nodeDir) throw refuse(`${name}: state.json names ${node.nodeDir} as its directory, which is not ${nodeDir} (inside this lab)`);
    if (node.dataDir !== path.join(nodeDir, 'data')) throw refuse(`${name}: state.json names ${node.dataDir} as its data directory, which is not ${path.join(nodeDir, 'data')}`);
    if (lexists(nodeDir)) assertRealDir(nodeDir, `${name}: the node directory`);
  }
}

/** Best effort before destroy: revert replication so external servers keep no slot of ours. */
async function undoReplicationOnExternal(config: LabConfig, state: LabState, removed: string[]): Promise<void> {
  const applied = readApplied(replicationFile(config.stateDir));
  const db = pools(planNodes(config, state, readSecrets(config.stateDir)));
  try {
    const report: OperationReport = { ran: [], notes: [] };
    await revertReplication(applied, db.sql, report);
    for (const r of report.ran) if (state.nodes[r.node]?.runtime === 'external') removed.push(`${r.node}: ${r.sql}`);
  } catch {
    // A node that is down keeps what it has; destroy goes on.
  } finally {
    await db.end();
  }
}
