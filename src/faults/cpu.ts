import { ProdhomeError } from '../errors.js';
import { cpuValue, limitFile, readLimit, restoreLimit, limitStillSet, writeLimit } from './cgroup-limit.js';
import { localNode, runningPostmaster } from './common.js';
import type { Fault } from './types.js';

/** Lowers the node's CPU quota live (cgroup cpu.cfs_quota_us / cpu.max); clear restores it. */
export const cpu: Fault = {
  name: 'cpu',
  summary: "lower the node's CPU quota live (its cgroup); clear restores it",
  targets: 'local node',
  plan(args, env) {
    const node = localNode(env, args.target, 'cpu');
    runningPostmaster(node, 'cpu');
    if (!(args.cpus! > 0)) throw new ProdhomeError('USAGE', `fault cpu ${args.target} ${args.cpus}: the quota must be a number of CPUs above 0, such as 0.1`);
    const file = limitFile(node.local, node.name, 'cpu');
    return [`${node.name}: echo ${cpuValue(file, args.cpus!)} > ${file} (now ${readLimit(file)})`, `undo: write ${readLimit(file)} back`];
  },
  async inject(args, env) {
    const node = localNode(env, args.target, 'cpu');
    const file = limitFile(node.local, node.name, 'cpu');
    const before = readLimit(file);
    const value = cpuValue(file, args.cpus!);
    writeLimit(file, value, node.name);
    return { summary: `CPU quota ${args.cpus} CPUs (${file}: ${before} → ${value})`, data: { file, before, value } };
  },
  heal: restoreLimit,
  active: limitStillSet,
};
