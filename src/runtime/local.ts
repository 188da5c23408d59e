import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { NodeSpec } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { assertRealDir, openAppendSafe, readFileSafe, readFileSafeOr, writeFileSafe } from '../fsafe.js';
import type { PgBinaries } from './binaries.js';
import { prepareCgroups, removeCgroups, type CapsEnforcement } from './cgroups.js';
import { findPostmaster, notPostmasterOf, pidFileEntry, processStartTime, stopPostmaster, type Postmaster } from './postmaster.js';
import { lastLines, processAlive, sleep, type OsUser } from './process.js';
import { SUPERUSER, cloneTemplate, ensureTemplate, initdb, templateReady } from './template.js';

/**
 * The local runtime: a Postgres server in a data directory on this machine, initialised with
 * initdb, configured from prodhome.yaml, listening on 127.0.0.1 only with scram-sha-256
 * passwords, run as an unprivileged user when prodhome is root, capped by cgroups where allowed.
 */

export { SUPERUSER };

export interface LocalNodePaths {
  nodeDir: string;
  dataDir: string;
  logFile: string;
}

export function nodePaths(nodeDir: string): LocalNodePaths {
  return { nodeDir, dataDir: path.join(nodeDir, 'data'), logFile: path.join(nodeDir, 'postgres.log') };
}

/** True when `dataDir` holds an initialised cluster. */
export function isInitialised(dataDir: string): boolean {
  return fs.existsSync(path.join(dataDir, 'PG_VERSION'));
}

export function clusterMajor(dataDir: string): number | undefined {
  const text = readFileSafeOr(path.join(dataDir, 'PG_VERSION')).trim();
  return text ? Number(text) : undefined;
}

/**
 * Creates the node dir and a cluster in it with `password` for the superuser. With a
 * `templateRoot`, the cluster is a copy of the template for these binaries — a spare made ahead
 * when one is ready, else copied now — and the first `up` on these binaries makes the template
 * (one initdb for all its nodes). Without one, or when the template cannot be made, initdb of
 * its own. The caller removes nodeDir on failure. Returns how the cluster was made.
 */
export async function initCluster(
  paths: LocalNodePaths,
  bins: PgBinaries,
  password: string,
  user: OsUser | undefined,
  nodeName: string,
  opts: { templateRoot?: string; log?: (line: string) => void } = {},
): Promise<'initdb' | 'template copy' | 'spare template copy'> {
  fs.mkdirSync(paths.nodeDir, { recursive: true, mode: 0o700 });
  assertRealDir(paths.nodeDir, `${nodeName}: the node directory`);
  if (user) fs.lchownSync(paths.nodeDir, user.uid, user.gid);
  const env = serverEnv(paths.nodeDir);
  const log = opts.log ?? (() => {});
  let template: string | undefined;
  if (opts.templateRoot) {
    try {
      template = templateReady(opts.templateRoot, bins, user) ?? (await ensureTemplate(opts.templateRoot, bins, user, env, log));
    } catch (e) {
      log(`${nodeName}: no template cluster (${(e as Error).message}); running initdb for this node`);
    }
  }
  if (!template) {
    await initdb(paths.dataDir, bins, password, user, env, nodeName);
    return 'initdb';
  }
  return (await cloneTemplate(template, paths.dataDir, bins, password, user, env, nodeName)) === 'spare' ? 'spare template copy' : 'template copy';
}

/**
 * The postgresql.conf lines prodhome writes for a node. What keeps it on loopback behind
 * passwords comes last, so nothing can override it (config load refuses those keys anyway).
 */
export function renderConf(spec: NodeSpec, port: number, bins: PgBinaries): string {
  const settings: Record<string, string> = {
    ...(bins.hasPgStatStatements ? { shared_preload_libraries: 'pg_stat_statements' } : {}),
    // A lab publisher is born ready for logical replication (no restart when subscribers come).
    ...(spec.role === 'publisher' ? { wal_level: 'logical' } : {}),
    ...spec.settings,
    listen_addresses: '127.0.0.1',
    port: String(port),
    // No Unix socket: every client, prodhome included, comes over TCP with a password.
    unix_socket_directories: '',
    password_encryption: 'scram-sha-256',
  };
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${confQuote(v)}`);
  return `# Written by prodhome from prodhome.yaml; edit that file, not this one.\n${lines.join('\n')}\n`;
}

/**
 * A value as one quoted postgresql.conf string: quotes doubled, backslashes escaped (the file's
 * parser reads \\ as one backslash), and no control character, so it cannot end its line.
 */
export function confQuote(value: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new ProdhomeError('CONFIG_INVALID', `a setting value holds a control character: ${JSON.stringify(value)}`);
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

const HBA = `# Written by prodhome: TCP on loopback only, scram-sha-256 passwords for everyone.
# TYPE  DATABASE     USER  ADDRESS        METHOD
host    all          all   127.0.0.1/32   scram-sha-256
# No "replication" line: logical replication (subscriptions) matches the line above; physical
# replication (pg_basebackup, pg_receivewal, standbys) is refused for every role.
`;

/** Writes prodhome.conf and pg_hba.conf; returns a hash of what a running server must have loaded. */
export function writeServerConfig(paths: LocalNodePaths, conf: string, user: OsUser | undefined): string {
  const files: [string, string][] = [
    [path.join(paths.dataDir, 'prodhome.conf'), conf],
    [path.join(paths.dataDir, 'pg_hba.conf'), HBA],
  ];
  for (const [file, text] of files) {
    // The data dir is the server user's: never read, write or chown through a link there.
    if (readFileSafe(file) === text) continue;
    writeFileSafe(file, text, { mode: 0o600, owner: user });
  }
  return crypto.createHash('sha1').update(conf).update(HBA).digest('hex').slice(0, 16);
}

/**
 * The postmaster's pid when the server in `dataDir` is running, else undefined. For status and
 * supervision only: postmaster.pid is the server user's file, so its pid counts only when that
 * process is a postgres serving this data dir, not as root; signals go through stopServer.
 */
export function runningPid(dataDir: string): number | undefined {
  const pid = pidFileEntry(dataDir);
  return pid && processAlive(pid) && !notPostmasterOf(pid, dataDir) ? pid : undefined;
}

const verified = new Map<string, { pid: number; startTime: string }>();

/**
 * runningPid for callers that ask several times a second (the sampler): a postmaster verified
 * once is trusted while it is the very same process (its /proc start time unchanged), which
 * costs one small read instead of reading postmaster.pid and the process's command line again.
 */
export function runningPidCached(dataDir: string): number | undefined {
  const hit = verified.get(dataDir);
  if (hit && processStartTime(hit.pid) === hit.startTime && processAlive(hit.pid)) return hit.pid; // a zombie is gone
  const pid = runningPid(dataDir);
  const startTime = pid ? processStartTime(pid) : undefined;
  if (pid && startTime) verified.set(dataDir, { pid, startTime });
  else verified.delete(dataDir);
  return pid;
}

/** What Postgres logs when its listen address is taken (every major since 9.x says these words). */
const PORT_TAKEN = /could not bind IPv4 address .*: Address already in use/;

export interface StartResult {
  pid: number;
  /** The postmaster's start time (/proc/PID/stat), so a later stop signals only this process. */
  startTime?: string;
  caps: CapsEnforcement;
}

/**
 * Starts the postmaster directly (no pg_ctl: we read its readiness from postmaster.pid every
 * 10 ms and can show the log's own words when it fails). With caps, a shell first joins the
 * node's cgroups, then execs the server, so the postmaster and every backend it forks are capped.
 */
export async function startServer(
  paths: LocalNodePaths,
  bins: PgBinaries,
  opts: { user?: OsUser; cgroupName: string; memoryBytes?: number; cpus?: number; nodeName: string; timeoutMs?: number },
): Promise<StartResult> {
  let caps = prepareCgroups(opts.cgroupName, { memoryBytes: opts.memoryBytes, cpus: opts.cpus });
  if (caps.enforced && opts.user && !fs.existsSync('/usr/bin/setpriv') && !fs.existsSync('/bin/setpriv')) {
    await removeCgroups(caps.placement.dirs);
    caps = { enforced: false, reason: 'setpriv (util-linux) is missing, so a capped server cannot drop root' };
  }
  const postgresCmd = [path.join(bins.binDir, 'postgres'), '-D', paths.dataDir];
  let command: string;
  let args: string[];
  const useShell = caps.enforced;
  if (useShell) {
    const dropRoot = opts.user ? ['setpriv', `--reuid=${opts.user.uid}`, `--regid=${opts.user.gid}`, '--clear-groups', '--'] : [];
    command = '/bin/sh';
    args = [
      '-c',
      'while [ "$1" != "--" ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"',
      'sh',
      ...(caps.enforced ? caps.placement.procsFiles : []),
      '--',
      ...dropRoot,
      ...postgresCmd,
    ];
  } else {
    [command, ...args] = postgresCmd as [string, ...string[]];
  }
  // A stale postmaster.pid from a killed server is fine: postgres checks and replaces it itself.
  const logFd = openAppendSafe(paths.logFile, { mode: 0o640, owner: opts.user });
  const logStart = fs.fstatSync(logFd).size;
  let exited: number | null | undefined;
  const child = spawn(command, args, {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: serverEnv(paths.nodeDir),
    ...(opts.user && !useShell ? { uid: opts.user.uid, gid: opts.user.gid } : {}),
  });
  fs.closeSync(logFd);
  child.on('exit', (code) => (exited = code));
  child.on('error', () => (exited = -1));
  child.unref();

  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    const lines = readFileSafeOr(path.join(paths.dataDir, 'postmaster.pid')).split('\n');
    if (Number(lines[0]) === child.pid && lines[7]?.trim() === 'ready') break;
    if (exited !== undefined || Date.now() > deadline) {
      if (exited === undefined) child.kill('SIGQUIT');
      if (caps.enforced) await removeCgroups(caps.placement.dirs);
      const log = readFileSafeOr(paths.logFile).slice(logStart);
      // Another program bound the port between its pick and this start: the caller may pick another.
      if (exited !== undefined && PORT_TAKEN.test(log)) {
        throw new ProdhomeError('PORT_IN_USE', `${opts.nodeName}: Postgres could not bind its port, which another program took as it started: ${lastLines(log, 6)}`, {
          hint: `Give ${opts.nodeName} another port: (or widen ports:) in the config, and run \`prodhome up\` again.`,
        });
      }
      const why = exited === 97 ? 'it could not join its cgroup' : lastLines(log, 6) || `exit code ${exited}`;
      throw new ProdhomeError('START_FAILED', `${opts.nodeName}: Postgres did not start: ${why}`, {
        hint: `The server log is ${paths.logFile} (\`prodhome logs ${opts.nodeName}\`).`,
      });
    }
    await sleep(10);
  }
  return { pid: child.pid!, startTime: processStartTime(child.pid!), caps };
}

/**
 * Stops the node's server if a verified postmaster runs (postmaster.ts): never a pid only
 * postmaster.pid names. `note` tells what was seen and not trusted.
 */
export async function stopServer(
  dataDir: string,
  opts: { recorded?: Partial<Postmaster>; uid?: number; nodeName: string },
): Promise<{ stopped: boolean; note?: string }> {
  const { postmaster, note } = findPostmaster(dataDir, opts.recorded, opts.uid);
  if (!postmaster) return { stopped: false, note };
  await stopPostmaster(postmaster, opts.nodeName);
  return { stopped: true, note };
}

/** Bytes on disk under a directory (like `du -sb`). */
export function dirSize(dir: string): number {
  let total = 0;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += dirSize(p);
    else {
      try {
        total += fs.lstatSync(p).size;
      } catch {
        // a file removed while we walk (WAL recycling): skip it
      }
    }
  }
  return total;
}

/** The environment servers and initdb run with: a known locale, no inherited secrets. */
export function serverEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LC_ALL: 'C' };
  if (process.env.TZ) env.TZ = process.env.TZ;
  return env;
}

