import { externalRuntime } from './external.js';
import { localRuntime } from './local-runtime.js';
import type { NodeRuntime, NodeState } from './types.js';

/** Every runtime, by kind; adding one is adding a file and a line here. */
export const runtimes = {
  local: localRuntime,
  external: externalRuntime,
} satisfies Record<NodeState['runtime'], NodeRuntime>;

export { binariesAt, resolveBinaries, reachableBinDir, npmBinDir, platformPackage, type PgBinaries } from './binaries.js';
export { cgroupSupport, appliedMemoryLimit, cgroupsOf } from './cgroups.js';
export { describeCaps } from './local-runtime.js';
export { runningPid, runningPidCached, serverEnv, SUPERUSER } from './local.js';
export { portFree, pickFreePort, pickAnotherPort } from './ports.js';
export { findPsql } from './client-tools.js';
export { ensureTemplate, templateReady, templateDir, listSpares, makeSpares } from './template.js';
export { serverUser, lookupUser } from './osuser.js';
export { isRoot, processAlive, processArgv, sleep, userCan, type OsUser } from './process.js';
export type { NodeDown, UpContext, NodeState, LocalNodeState, ExternalNodeState, NodeInspection, NodeCondition, UpOutcome } from './types.js';
