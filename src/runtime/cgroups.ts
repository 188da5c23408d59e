import fs from 'node:fs';
import path from 'node:path';
import { sleep } from './process.js';

/**
 * Memory and CPU caps for a node's whole process tree, with cgroups v2 or v1 where this process
 * may write them (root on Linux, or a delegated v2 subtree). Where it may not, the caps are
 * reported as "not enforced" with the reason — never silently dropped.
 */
export interface Caps {
  memoryBytes?: number;
  cpus?: number;
}

export interface CgroupPlacement {
  /** cgroup.procs files to write the server's pid into before it execs. */
  procsFiles: string[];
  /** Directories to remove when the node stops. */
  dirs: string[];
}

export type CapsEnforcement = { enforced: true; placement: CgroupPlacement; how: string } | { enforced: false; reason: string };

const ROOT = '/sys/fs/cgroup';
const GROUP = 'prodhome';

export interface CgroupSupport {
  version: 1 | 2 | null;
  usable: boolean;
  reason: string;
}

export function cgroupSupport(): CgroupSupport {
  if (process.platform !== 'linux') return { version: null, usable: false, reason: `cgroups do not exist on ${process.platform}` };
  if (fs.existsSync(path.join(ROOT, 'cgroup.controllers'))) {
    const controllers = readTrim(path.join(ROOT, 'cgroup.controllers')).split(/\s+/);
    if (!controllers.includes('memory')) return { version: 2, usable: false, reason: 'cgroup v2 without the memory controller' };
    if (!writable(ROOT)) return { version: 2, usable: false, reason: `${ROOT} is not writable (run as root to enforce caps)` };
    return { version: 2, usable: true, reason: 'cgroup v2' };
  }
  if (fs.existsSync(path.join(ROOT, 'memory', 'memory.limit_in_bytes'))) {
    if (!writable(path.join(ROOT, 'memory'))) return { version: 1, usable: false, reason: 'cgroup v1 controllers are not writable (run as root to enforce caps)' };
    return { version: 1, usable: true, reason: 'cgroup v1' };
  }
  return { version: null, usable: false, reason: 'no cgroup memory controller mounted' };
}

/** Creates the node's cgroup(s) and writes its limits. Call `removeCgroups` when the node stops. */
export function prepareCgroups(groupName: string, caps: Caps): CapsEnforcement {
  if (caps.memoryBytes === undefined && caps.cpus === undefined) return { enforced: false, reason: 'no caps asked for' };
  const support = cgroupSupport();
  if (!support.usable) return { enforced: false, reason: support.reason };
  try {
    return support.version === 2 ? prepareV2(groupName, caps) : prepareV1(groupName, caps);
  } catch (e) {
    return { enforced: false, reason: `could not set up cgroup: ${(e as Error).message}` };
  }
}

function prepareV1(groupName: string, caps: Caps): CapsEnforcement {
  const placement: CgroupPlacement = { procsFiles: [], dirs: [] };
  const hows: string[] = [];
  if (caps.memoryBytes !== undefined) {
    const dir = ensureDir(path.join(ROOT, 'memory', GROUP, groupName));
    fs.writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(caps.memoryBytes));
    placement.procsFiles.push(path.join(dir, 'cgroup.procs'));
    placement.dirs.push(dir);
    hows.push('memory.limit_in_bytes');
  }
  if (caps.cpus !== undefined) {
    const base = fs.existsSync(path.join(ROOT, 'cpu')) ? path.join(ROOT, 'cpu') : path.join(ROOT, 'cpu,cpuacct');
    if (!fs.existsSync(base)) throw new Error('no cpu controller mounted');
    const dir = ensureDir(path.join(base, GROUP, groupName));
    fs.writeFileSync(path.join(dir, 'cpu.cfs_period_us'), '100000');
    fs.writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), String(Math.round(caps.cpus * 100000)));
    placement.procsFiles.push(path.join(dir, 'cgroup.procs'));
    placement.dirs.push(dir);
    hows.push('cpu.cfs_quota_us');
  }
  return { enforced: true, placement, how: `cgroup v1 (${hows.join(', ')})` };
}

function prepareV2(groupName: string, caps: Caps): CapsEnforcement {
  const parent = ensureDir(path.join(ROOT, GROUP));
  // Controllers must be enabled in every ancestor's subtree_control for the leaf to get them.
  for (const dir of [ROOT, parent]) {
    const want = ['memory', ...(caps.cpus !== undefined ? ['cpu'] : [])];
    const have = readTrim(path.join(dir, 'cgroup.subtree_control')).split(/\s+/);
    const missing = want.filter((c) => !have.includes(c));
    if (missing.length) fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '));
  }
  const dir = ensureDir(path.join(parent, groupName));
  if (caps.memoryBytes !== undefined) fs.writeFileSync(path.join(dir, 'memory.max'), String(caps.memoryBytes));
  if (caps.cpus !== undefined) fs.writeFileSync(path.join(dir, 'cpu.max'), `${Math.round(caps.cpus * 100000)} 100000`);
  return { enforced: true, placement: { procsFiles: [path.join(dir, 'cgroup.procs')], dirs: [dir] }, how: 'cgroup v2 (memory.max, cpu.max)' };
}

/** Removes a stopped node's cgroups; the kernel refuses while processes remain, so retry briefly. */
export async function removeCgroups(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        fs.rmdirSync(dir);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || attempt === 49) break;
        await sleep(20);
      }
    }
  }
}

/** The memory limit the kernel actually applies to a cgroup dir, for status and tests. */
export function appliedMemoryLimit(dir: string): number | undefined {
  for (const file of ['memory.limit_in_bytes', 'memory.max']) {
    const p = path.join(dir, file);
    if (fs.existsSync(p)) {
      const v = readTrim(p);
      return v === 'max' ? undefined : Number(v);
    }
  }
  return undefined;
}

/** The cgroup paths (per controller) a process is in, from /proc/PID/cgroup. */
export function cgroupsOf(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  } catch {
    return [];
  }
}

function ensureDir(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

function readTrim(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

function writable(dir: string): boolean {
  try {
    fs.accessSync(dir, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
