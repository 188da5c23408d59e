import { ProdhomeError } from '../errors.js';
import { holderAlive, spawnHolder, stopHolder, type HolderSpec } from './holder.js';
import type { FaultArgs, FaultEnv, FaultRecord, Injected } from './types.js';

/** The shared inject/heal/active of the faults a holder process keeps in place. */
export async function injectHolder(spec: Omit<HolderSpec, 'connection' | 'forMs' | 'annotation'>, args: FaultArgs, env: FaultEnv, summary: (held: number, full: boolean) => string): Promise<Injected> {
  const node = env.node(args.target);
  const { ref, ready } = await spawnHolder({ ...spec, connection: node.connection, forMs: args.forMs, annotation: env.annotation }, env.holderLog);
  return {
    summary: summary(ready.held ?? 0, !!ready.full),
    data: { held: ready.held ?? 0 },
    holder: ref,
    ...(args.forMs ? { until: new Date(Date.now() + args.forMs).toISOString() } : {}),
  };
}

export async function healHolder(record: FaultRecord): Promise<string[]> {
  if (!record.holder) return [];
  return (await stopHolder(record.holder)) ? [`${record.node}: holder process ${record.holder.pid} ended; its sessions are closed`] : [];
}

export function holderActive(record: FaultRecord): boolean {
  return !!record.holder && holderAlive(record.holder);
}

export function holdFor(args: FaultArgs): string {
  return args.forMs ? `for ${args.forMs / 1000} s, then released by itself` : 'until `prodhome fault clear`';
}

export function requirePositive(n: number | undefined, what: string): void {
  if (n !== undefined && !(Number.isInteger(n) && n > 0)) throw new ProdhomeError('USAGE', `${what} must be a whole number above 0`);
}
