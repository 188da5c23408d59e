import fs from 'node:fs';
import os from 'node:os';
import { loadConfig, type LabConfig } from '../config/index.js';
import { isProdhomeError, messageOf } from '../errors.js';
import {
  cgroupSupport, findPsql, isRoot, lookupUser, npmBinDir, platformPackage, portFree, resolveBinaries, runningPid,
} from '../runtime/index.js';
import { readAgentStatus } from './agent.js';
import { findLab } from './find.js';
import { portHolder } from './port-holder.js';
import { readState, type LabState, type PortMove } from './state.js';

export interface DoctorCheck {
  check: string;
  result: 'ok' | 'WARN' | 'FAIL';
  detail: string;
}

export async function doctor(file?: string): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  const add = (check: string, result: DoctorCheck['result'], detail: string) => checks.push({ check, result, detail });
  add('node.js', Number(process.versions.node.split('.')[0]) >= 20 ? 'ok' : 'FAIL', `v${process.versions.node} on ${process.platform}-${process.arch}`);
  let config: LabConfig | undefined;
  try {
    config = loadConfig({ file });
    add('config', 'ok', config.configFile ?? 'no prodhome.yaml here: the default lab');
  } catch (e) {
    add('config', 'FAIL', messageOf(e));
  }
  const npm = npmBinDir();
  add('npm binaries', npm ? 'ok' : 'WARN', npm ? `${platformPackage} in ${npm}` : `${platformPackage} is not installed (npm install brings it)`);
  if (config) {
    for (const spec of config.nodes.filter((n) => n.runtime === 'local')) {
      try {
        const b = resolveBinaries({ nodeBinDir: spec.postgres.binDir, labBinDir: config.postgres.binDir, version: spec.postgres.version ?? config.postgres.version }, spec.name);
        add(`binaries: ${spec.name}`, 'ok', `Postgres ${b.version} from ${b.source} (${b.binDir})${b.hasPgStatStatements ? '' : '; no pg_stat_statements'}`);
      } catch (e) {
        add(`binaries: ${spec.name}`, 'FAIL', isProdhomeError(e) ? `${e.message}. ${e.hint ?? ''}` : messageOf(e));
      }
    }
  }
  if (isRoot()) {
    const name = config?.runAs ?? 'prodhome';
    const user = lookupUser(name);
    add('os user', 'ok', user ? `running as root: servers run as "${name}" (uid ${user.uid})` : `running as root: servers will run as "${name}", created on first up`);
  } else {
    add('os user', 'ok', `servers run as ${os.userInfo().username}`);
  }
  const cg = cgroupSupport();
  add('cgroups', cg.usable ? 'ok' : 'WARN', cg.usable ? `${cg.reason}: memory and cpu caps are enforced` : `caps not enforced: ${cg.reason}`);
  if (config) {
    const state = readState(config.stateDir);
    for (const spec of config.nodes.filter((n) => n.runtime === 'local' && n.port)) {
      const prev = state?.nodes[spec.name];
      const ours = prev?.runtime === 'local' && prev.port === spec.port && runningPid(prev.dataDir) !== undefined;
      const free = ours || (await portFree(spec.port!));
      add(`port ${spec.port}`, free ? 'ok' : 'FAIL', ours ? `held by this lab's ${spec.name}` : free ? `free for ${spec.name}` : `in use by another program; ${spec.name} cannot start`);
    }
    try {
      const dir = fs.existsSync(config.stateDir) ? config.stateDir : config.baseDir;
      fs.accessSync(dir, fs.constants.W_OK);
      add('state dir', 'ok', `${config.stateDir} (writable)`);
    } catch {
      add('state dir', 'FAIL', `${config.stateDir} is not writable`);
    }
  }
  // The lab's moved ports, from its state — found as status finds it when the config is broken or renamed.
  const lab = labOf(file);
  if (lab) for (const move of portMoves(lab.stateDir, readState(lab.stateDir))) add(`port moved: ${move.what}`, 'WARN', move.detail);
  const psql = findPsql();
  add('psql', psql ? 'ok' : 'WARN', psql ?? 'not installed: `prodhome psql` prints URLs instead');
  return checks;
}

/**
 * Ports that moved: a node's or the agent's port was held by another program when it started, so
 * it took another — a bookmark, a Prometheus target or a client's port is now wrong. Each says
 * what held the port then and what holds it now.
 */
function portMoves(stateDir: string, state: LabState | undefined): { what: string; detail: string }[] {
  const agent = readAgentStatus(stateDir)?.portMoves ?? {};
  const moves: [string, PortMove, string][] = [
    ...Object.entries(state?.portMoves ?? {}).map(([node, m]): [string, PortMove, string] => [node, m, `give ${node} port: ${m.wanted} in the config to insist on it`]),
    ...Object.entries(agent).map(([which, m]): [string, PortMove, string] => [
      `agent ${which}`,
      m!,
      `set ${which === 'metrics' ? 'metrics.prometheus' : 'dashboard'}: { port: ${m!.wanted} } to insist on it`,
    ]),
  ];
  return moves.map(([what, m, fix]) => {
    const now = portHolder(m.wanted);
    const then = m.heldBy ? `held by ${m.heldBy}` : 'held by another program';
    return {
      what,
      detail: `${m.wanted} was ${then} at ${m.at.slice(0, 19).replace('T', ' ')}, so it uses ${m.got} since; ${m.wanted} is ${now ? `still held by ${now}` : 'free now'} (the lab keeps ${m.got}: ${fix})`,
    };
  });
}

function labOf(file: string | undefined): LabConfig | undefined {
  try {
    return findLab({ file }).config;
  } catch {
    return undefined;
  }
}
