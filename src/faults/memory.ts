import { formatBytes } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { limitFile, readLimit, restoreLimit, limitStillSet, writeLimit } from './cgroup-limit.js';
import { localNode, runningPostmaster } from './common.js';
import type { Fault } from './types.js';

const MIN_BYTES = 16 * 1024 * 1024;

/** Lowers the node's memory cap live (memory.limit_in_bytes / memory.max); clear restores it. */
export const memory: Fault = {
  name: 'memory',
  summary: "lower the node's memory cap live (its cgroup); clear restores it",
  targets: 'local node',
  plan(args, env) {
    const node = localNode(env, args.target, 'memory');
    runningPostmaster(node, 'memory');
    if (!(args.memoryBytes! >= MIN_BYTES)) throw new ProdhomeError('USAGE', `fault memory ${args.target}: the cap must be at least 16MiB, such as 160MiB`);
    const file = limitFile(node.local, node.name, 'memory');
    return [`${node.name}: echo ${args.memoryBytes} > ${file} (${formatBytes(args.memoryBytes!)}; now ${readLimit(file)})`, `undo: write ${readLimit(file)} back`];
  },
  async inject(args, env) {
    const node = localNode(env, args.target, 'memory');
    const file = limitFile(node.local, node.name, 'memory');
    const before = readLimit(file);
    const value = String(args.memoryBytes!);
    writeLimit(file, value, node.name);
    return { summary: `memory cap ${formatBytes(args.memoryBytes!)} (${file}: ${before} → ${readLimit(file)})`, data: { file, before, value: readLimit(file) } };
  },
  heal: restoreLimit,
  active: limitStillSet,
};
