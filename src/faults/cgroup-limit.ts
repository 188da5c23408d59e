import fs from 'node:fs';
import path from 'node:path';
import { ProdhomeError } from '../errors.js';
import { cgroupSupport, type LocalNodeState } from '../runtime/index.js';
import type { FaultRecord } from './types.js';

/**
 * cpu and memory faults lower a limit of the cgroup the node already runs in (the runtime makes
 * one when the node has caps), live: the kernel applies it to the running server at once.
 * The value before is kept in faults.json; heal writes it back.
 */

export type Limit = 'cpu' | 'memory';

/** v1 and v2 file names per controller. */
const FILES: Record<Limit, string[]> = { cpu: ['cpu.cfs_quota_us', 'cpu.max'], memory: ['memory.limit_in_bytes', 'memory.max'] };

/** The file holding the node's limit, or an error saying why there is none. */
export function limitFile(node: LocalNodeState, name: string, limit: Limit): string {
  for (const dir of node.caps.cgroupDirs) {
    for (const file of FILES[limit]) {
      const p = path.join(dir, file);
      if (fs.existsSync(p)) return p;
    }
  }
  const support = cgroupSupport();
  const why = !support.usable
    ? `cgroups cannot be used here (${support.reason})`
    : !node.caps.enforced && (node.caps.memoryBytes !== undefined || node.caps.cpus !== undefined)
      ? `its caps are not enforced (${node.caps.reason})`
      : `it runs without a ${limit === 'cpu' ? 'CPU' : 'memory'} cgroup (no \`${limit === 'cpu' ? 'cpus' : 'memory'}:\` cap in the config)`;
  throw new ProdhomeError('USAGE', `fault ${limit}: cannot change ${name}'s ${limit} limit live: ${why}`, {
    hint: support.usable
      ? `Give ${name} a cap in prodhome.yaml (e.g. ${limit === 'cpu' ? 'cpus: 2' : 'memory: 512MiB'}) and run \`prodhome up\`; the fault then lowers it live.`
      : 'Only Linux with writable cgroups (root, or a delegated cgroup v2 subtree) can cap a running server.',
  });
}

/** What to write for a cpu quota, in the file's own format. */
export function cpuValue(file: string, cpus: number): string {
  const quota = Math.max(1000, Math.round(cpus * 100_000));
  return file.endsWith('cpu.max') ? `${quota} 100000` : String(quota);
}

export function readLimit(file: string): string {
  return fs.readFileSync(file, 'utf8').trim();
}

/** Writes a limit; the kernel's refusal (EBUSY: it cannot reclaim enough memory) is explained. */
export function writeLimit(file: string, value: string, name: string): void {
  try {
    // v1 cfs_period_us stays as the runtime set it (100000); the quota is relative to it.
    fs.writeFileSync(file, value);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ProdhomeError('FAULT_FAILED', `${name}: the kernel refused ${value} for ${path.basename(file)} (${code ?? (e as Error).message})`, {
      hint: code === 'EBUSY' ? `${name} uses more memory than that and the kernel could not reclaim it; pick a higher cap.` : `Check ${file}.`,
    });
  }
}

/** heal() of a limit fault: the cap as it was before, unless someone changed it since (then it is theirs). */
export async function restoreLimit(record: FaultRecord): Promise<string[]> {
  const file = String(record.data.file);
  if (!fs.existsSync(file) || readLimit(file) !== record.data.value) return [];
  writeLimit(file, String(record.data.before), record.node);
  return [`${record.node}: ${file} back to ${record.data.before}`];
}

/** active() of a limit fault: the cap it set is still there. */
export function limitStillSet(record: FaultRecord): boolean {
  const file = String(record.data.file);
  return fs.existsSync(file) && readLimit(file) === record.data.value;
}
