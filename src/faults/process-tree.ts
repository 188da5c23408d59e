import fs from 'node:fs';
import { runningPid, type LocalNodeState } from '../runtime/index.js';

/**
 * A node's processes: its postmaster (the pid the runtime reports for the node) and the
 * backends and workers it forked. Every signal a fault sends a node goes through
 * `signalNodeProcess`, which only signals that postmaster or one of its own children.
 */

export type NodeSignal = 'SIGKILL' | 'SIGSTOP' | 'SIGCONT';

/** The postmaster the runtime reports for this node, or undefined when it is not running. */
export function postmasterOf(node: LocalNodeState): number | undefined {
  return runningPid(node.dataDir);
}

/** The postmaster's children (backends, workers), from /proc. */
export function childrenOf(pid: number): number[] {
  const kids: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return kids;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const stat = procStat(Number(e));
    if (stat && stat.ppid === pid) kids.push(Number(e));
  }
  return kids;
}

/** Sends `signal` to `pid` only if it is the node's postmaster or a child of it. Returns whether it did. */
export function signalNodeProcess(node: LocalNodeState, pid: number, signal: NodeSignal): boolean {
  const postmaster = postmasterOf(node);
  if (!postmaster) return false;
  if (pid !== postmaster && procStat(pid)?.ppid !== postmaster) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false; // it exited meanwhile
  }
}

/** Stops (SIGSTOP) the whole tree, postmaster first so it forks nothing meanwhile. Returns the pids. */
export function freezeTree(node: LocalNodeState): number[] {
  const postmaster = postmasterOf(node);
  if (!postmaster) return [];
  signalNodeProcess(node, postmaster, 'SIGSTOP');
  const pids = [postmaster];
  for (const kid of childrenOf(postmaster)) if (signalNodeProcess(node, kid, 'SIGSTOP')) pids.push(kid);
  return pids;
}

/** Continues (SIGCONT) the whole tree, children first. Returns how many processes were stopped. */
export function thawTree(node: LocalNodeState): number {
  const postmaster = postmasterOf(node);
  if (!postmaster) return 0;
  let stopped = 0;
  for (const pid of [...childrenOf(postmaster), postmaster]) {
    if (isStopped(pid)) stopped++;
    signalNodeProcess(node, pid, 'SIGCONT');
  }
  return stopped;
}

/** True when the node's postmaster or any child is stopped (state T). */
export function isFrozen(node: LocalNodeState): boolean {
  const postmaster = postmasterOf(node);
  if (!postmaster) return false;
  return isStopped(postmaster) || childrenOf(postmaster).some(isStopped);
}

export function isStopped(pid: number): boolean {
  const s = procStat(pid)?.state;
  return s === 'T' || s === 't';
}

/** The start time of a process (clock ticks since boot), to tell a reused pid from ours. */
export function startTimeOf(pid: number): string | undefined {
  return procStat(pid)?.startTime;
}

function procStat(pid: number): { state: string; ppid: number; startTime: string } | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0]!, ppid: Number(rest[1]), startTime: rest[19]! };
  } catch {
    return undefined;
  }
}
