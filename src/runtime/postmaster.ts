import fs from 'node:fs';
import path from 'node:path';
import { ProdhomeError } from '../errors.js';
import { readFileSafeOr } from '../fsafe.js';
import { processAlive, processArgv, sleep } from './process.js';

/**
 * Which process is a node's postmaster, and how to stop it without ever signalling another.
 * postmaster.pid belongs to the server's OS user (a database superuser can rewrite it with COPY
 * … TO), and a pid alone can be reused, so a pid is signalled only when it is verified:
 *  - its start time (/proc/PID/stat, field 22) is the one recorded when prodhome started it, or,
 *    for a pid prodhome did not record, its command line is `…/postgres -D <dataDir>`;
 *  - it does not run as root (Postgres refuses root) and runs as the server's user when known.
 */

/** Without /proc (not Linux) nothing can be verified; postmaster.pid is trusted as pg_ctl does. */
const HAS_PROC = fs.existsSync('/proc/self/stat');

export interface Postmaster {
  pid: number;
  /** Clock ticks after boot when the process started: with the pid, one process for ever. */
  startTime: string;
}

/** Field 22 of /proc/PID/stat (after the command name, which may hold spaces and parentheses). */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function realUid(pid: number): number | undefined {
  try {
    const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'));
    return line ? Number(line.split(/\s+/)[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Why `pid` is not the postmaster of `dataDir` (run as `uid` when given), or undefined when it is. */
export function notPostmasterOf(pid: number, dataDir: string, uid?: number): string | undefined {
  if (!HAS_PROC) return undefined;
  const args = processArgv(pid);
  const d = args.indexOf('-D');
  if (path.basename(args[0] ?? '') !== 'postgres' || d < 0 || args[d + 1] !== dataDir) return `its command is "${args.join(' ').slice(0, 80) || '?'}"`;
  const owner = realUid(pid);
  if (owner === 0) return 'it runs as root, which Postgres never does';
  if (uid !== undefined && owner !== uid) return `it runs as uid ${owner}, not the server's user (uid ${uid})`;
  return undefined;
}

/** The pid postmaster.pid names, if any. */
export function pidFileEntry(dataDir: string): number | undefined {
  // The server user's file: a link or a FIFO there reads as nothing (and never hangs us).
  const text = readFileSafeOr(path.join(dataDir, 'postmaster.pid'));
  const pid = Number(text.split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export interface Found {
  postmaster?: Postmaster;
  /** What was seen and not trusted (a planted or stale pid), for the user. */
  note?: string;
}

/**
 * The node's running postmaster, verified: the one recorded at start when it still runs with the
 * same start time and command line; otherwise the one postmaster.pid names if its command line
 * and user say it is this node's postmaster. Anything else is reported, never returned.
 */
export function findPostmaster(dataDir: string, recorded: Partial<Postmaster> | undefined, uid?: number): Found {
  let postmaster: Postmaster | undefined;
  if (recorded?.pid && recorded.startTime && sameProcess(recorded as Postmaster) && !notPostmasterOf(recorded.pid, dataDir, uid)) {
    postmaster = recorded as Postmaster;
  }
  const filePid = pidFileEntry(dataDir);
  if (!filePid || filePid === postmaster?.pid || !processAlive(filePid)) return { postmaster };
  const why = notPostmasterOf(filePid, dataDir, uid);
  if (why) return { postmaster, note: `postmaster.pid names pid ${filePid}, which is not this node's postmaster (${why}); it was not signalled` };
  const startTime = HAS_PROC ? processStartTime(filePid) : '';
  if (!postmaster && startTime !== undefined) return { postmaster: { pid: filePid, startTime } };
  return { postmaster };
}

/** True while `p` is the very process it was (same pid, same start time) and not a zombie. */
export function sameProcess(p: Postmaster): boolean {
  return (!HAS_PROC || processStartTime(p.pid) === p.startTime) && processAlive(p.pid);
}

/**
 * Stops a verified postmaster: a fast shutdown (SIGINT, as `pg_ctl stop -m fast`), then an
 * immediate one (SIGQUIT), then SIGKILL, each only while the pid is still that process; then it
 * gives up with a clear error rather than wait for ever.
 */
export async function stopPostmaster(p: Postmaster, nodeName: string, waits = { fastMs: 30_000, immediateMs: 10_000, killMs: 5_000 }): Promise<void> {
  const steps: [NodeJS.Signals, number][] = [
    ['SIGINT', waits.fastMs],
    ['SIGQUIT', waits.immediateMs],
    ['SIGKILL', waits.killMs],
  ];
  for (const [signal, ms] of steps) {
    if (!sameProcess(p)) return;
    try {
      process.kill(p.pid, signal);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') return;
      throw e;
    }
    const deadline = Date.now() + ms;
    while (sameProcess(p) && Date.now() < deadline) await sleep(10);
  }
  if (sameProcess(p)) {
    throw new ProdhomeError('STOP_FAILED', `${nodeName}: the postmaster (pid ${p.pid}) did not stop, even after SIGKILL`, {
      hint: `Look at it (ps -o pid,stat,wchan -p ${p.pid}): a process stuck in the kernel (state D) stops when its I/O completes.`,
    });
  }
}
