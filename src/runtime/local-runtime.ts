import fs from 'node:fs';
import path from 'node:path';
import type { NodeSpec } from '../config/index.js';
import { formatBytes } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { assertRealDir, readFileSafe } from '../fsafe.js';
import { removeCgroups } from './cgroups.js';
import { changedSettings, reloadSettings } from './reload.js';
import { findPostmaster } from './postmaster.js';
import {
  SUPERUSER, clusterMajor, dirSize, initCluster, isInitialised, nodePaths, renderConf, runningPid, startServer, stopServer, writeServerConfig, type StartResult,
} from './local.js';
import type { LocalNodeState, NodeDown, NodeInspection, NodeRuntime, NodeState, UpContext, UpOutcome } from './types.js';

/** Starts tried for a node whose picked port others keep taking (each a different port). */
const PORT_ATTEMPTS = 5;

export const localRuntime: NodeRuntime = {
  kind: 'local',

  async up(spec: NodeSpec, ctx: UpContext): Promise<UpOutcome> {
    const bins = ctx.binaries!;
    let port = ctx.port!;
    const previous = ctx.previous?.runtime === 'local' ? ctx.previous : undefined;
    const paths = nodePaths(previous?.nodeDir ?? path.join(ctx.dataRoot, spec.name));
    const undo: (() => Promise<void>)[] = [];
    try {
      let created = false;
      if (!isInitialised(paths.dataDir)) {
        const nodeDirExisted = fs.existsSync(paths.nodeDir);
        ctx.log(`${spec.name}: initdb (Postgres ${bins.version}, ${bins.source})`);
        undo.push(async () => {
          if (nodeDirExisted) fs.rmSync(paths.dataDir, { recursive: true, force: true });
          else fs.rmSync(paths.nodeDir, { recursive: true, force: true });
        });
        await initCluster(paths, bins, ctx.password!, ctx.user, spec.name, { templateRoot: ctx.templateRoot, log: ctx.log });
        created = true;
      } else if (clusterMajor(paths.dataDir) !== bins.major) {
        throw new ProdhomeError(
          'BINARIES_MISSING',
          `${spec.name}: its data directory was made by Postgres ${clusterMajor(paths.dataDir)}, but the binaries found are Postgres ${bins.version} (${bins.binDir})`,
          { hint: `Set postgres.version: ${clusterMajor(paths.dataDir)} for ${spec.name}, or \`prodhome destroy\` to start afresh.` },
        );
      }
      const confBefore = readFileSafe(path.join(paths.dataDir, 'prodhome.conf'));
      let confHash = writeServerConfig(paths, renderConf(spec, port, bins), ctx.user);
      const uid = ctx.user?.uid ?? process.getuid?.();
      const found = findPostmaster(paths.dataDir, previous && { pid: previous.pid, startTime: previous.pidStartTime }, uid);
      if (found.note) ctx.log(`${spec.name}: ${found.note}`);
      let pid = found.postmaster?.pid;
      let pidStartTime = found.postmaster?.startTime;
      let action: string;
      let caps = previous?.caps;
      // Changed settings a reload can take are reloaded; only postmaster-context ones restart.
      const reload = pid && previous && previous.binDir === bins.binDir && previous.port === port && previous.confHash !== confHash && confBefore !== undefined
        ? await reloadSettings({ host: '127.0.0.1', port, user: SUPERUSER, password: ctx.password, database: 'postgres' }, changedSettings(confBefore, renderConf(spec, port, bins))).catch(() => undefined)
        : undefined;
      if (pid && previous && previous.confHash === confHash && previous.binDir === bins.binDir) {
        action = 'unchanged';
      } else if (reload && 'reloaded' in reload) {
        const what = reload.reloaded.join(', ') || 'pg_hba.conf'; // no setting changed: the access rules did
        ctx.log(`${spec.name}: reloaded its configuration (${what}); no restart needed`);
        action = `reloaded (${what})`;
      } else {
        if (pid) {
          const why = reload && 'restartFor' in reload ? ` (${reload.restartFor.join(', ')} ${reload.restartFor.length > 1 ? 'need' : 'needs'} a restart)` : '';
          ctx.log(`${spec.name}: its settings changed${why}; restarting it`);
          await stopServer(paths.dataDir, { recorded: found.postmaster, uid, nodeName: spec.name });
          if (previous) await removeCgroups(previous.caps.cgroupDirs);
          action = reload && 'restartFor' in reload ? `restarted (${reload.restartFor.join(', ')})` : 'restarted (settings changed)';
        } else if (created) action = 'created';
        else if (previous?.desired === 'running') action = 'restarted (it had died)';
        else action = 'started';
        if (previous?.caps.cgroupDirs.length && !pid) await removeCgroups(previous.caps.cgroupDirs);
        let started: StartResult | undefined;
        for (let attempt = 1; !started; attempt++) {
          try {
            started = await startServer(paths, bins, {
              user: ctx.user,
              cgroupName: `${ctx.labId}-${spec.name}`,
              memoryBytes: spec.memoryBytes,
              cpus: spec.cpus,
              nodeName: spec.name,
            });
          } catch (e) {
            // A port picked free can be bound by someone else (another lab's `up`) before this
            // server binds it: pick another and try again, a few times.
            const next = e instanceof ProdhomeError && e.code === 'PORT_IN_USE' && ctx.anotherPort && attempt < PORT_ATTEMPTS ? await ctx.anotherPort(port) : undefined;
            if (next === undefined) throw e;
            ctx.log(`${spec.name}: port ${port} was taken as the server started; trying port ${next}`);
            port = next;
            confHash = writeServerConfig(paths, renderConf(spec, port, bins), ctx.user);
          }
        }
        pid = started.pid;
        pidStartTime = started.startTime;
        undo.push(async () => {
          await stopServer(paths.dataDir, { recorded: { pid: started.pid, startTime: started.startTime }, uid, nodeName: spec.name });
          if (started.caps.enforced) await removeCgroups(started.caps.placement.dirs);
        });
        caps = {
          memoryBytes: spec.memoryBytes,
          cpus: spec.cpus,
          enforced: started.caps.enforced,
          ...(started.caps.enforced ? { how: started.caps.how } : { reason: started.caps.reason }),
          cgroupDirs: started.caps.enforced ? started.caps.placement.dirs : [],
        };
      }
      const state: LocalNodeState = {
        runtime: 'local',
        ...paths,
        port,
        binDir: bins.binDir,
        binSource: bins.source,
        version: bins.version,
        major: bins.major,
        confHash,
        caps: caps!,
        desired: 'running',
        pid,
        pidStartTime,
        serverUid: uid,
        startedAt: action === 'unchanged' ? previous?.startedAt : new Date().toISOString(),
      };
      const connection = { host: '127.0.0.1', port, user: SUPERUSER, password: ctx.password, database: 'postgres' };
      return { state, action, connection, undo: () => runAll(undo) };
    } catch (e) {
      await runAll(undo);
      throw e;
    }
  },

  async down(name: string, state: NodeState): Promise<NodeDown> {
    if (state.runtime !== 'local') return { result: 'left alone' };
    const { stopped, note } = await stopServer(state.dataDir, { recorded: { pid: state.pid, startTime: state.pidStartTime }, uid: state.serverUid, nodeName: name });
    await removeCgroups(state.caps.cgroupDirs);
    return { result: stopped ? 'stopped' : 'not running', ...(note ? { note } : {}) };
  },

  async inspect(_name: string, state: NodeState): Promise<NodeInspection> {
    if (state.runtime !== 'local') throw new Error('localRuntime.inspect given an external node');
    const pid = runningPid(state.dataDir);
    const condition = pid ? 'running' : state.desired === 'running' ? 'died' : 'stopped';
    return {
      condition,
      pid,
      version: state.version,
      address: `127.0.0.1:${state.port}`,
      caps: describeCaps(state),
      dataBytes: dirSize(state.dataDir),
    };
  },

  async remove(state: NodeState) {
    if (state.runtime !== 'local' || !fs.existsSync(state.nodeDir)) return;
    // rm -r never follows a link inside; the node dir itself must not be one either.
    assertRealDir(state.nodeDir, 'the node directory');
    fs.rmSync(state.nodeDir, { recursive: true, force: true });
  },
};

export function describeCaps(state: LocalNodeState): string {
  const { memoryBytes, cpus, enforced, reason } = state.caps;
  const parts = [memoryBytes !== undefined ? `mem ${formatBytes(memoryBytes)}` : '', cpus !== undefined ? `cpu ${cpus}` : ''].filter(Boolean);
  if (parts.length === 0) return '-';
  return enforced ? parts.join(', ') : `${parts.join(', ')} (not enforced: ${reason})`;
}

async function runAll(steps: (() => Promise<void>)[]): Promise<void> {
  for (const step of steps.reverse()) {
    try {
      await step();
    } catch {
      // Best effort: a failed undo must not hide the error that caused it.
    }
  }
}
