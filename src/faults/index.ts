export { faults } from './registry.js';
export { FAULT_KINDS, type Fault, type FaultArgs, type FaultEnv, type FaultKind, type FaultNode, type FaultRecord, type Injected } from './types.js';
export { readFaults, updateFaults, faultsFile, type FaultsFile } from './records.js';
export { annotate, endAnnotation } from './annotations.js';
export { runHolder, holderAlive, stopHolder, HOLDER_APP } from './holder.js';
export { thawTree, isFrozen, postmasterOf } from './process-tree.js';
export { SLOT_NAME } from './slot.js';
export { runProxyProcess } from './proxy.js';
