export { applyReplication, readApplied, writeApplied, pools, problemsError, pgMessage, type ApplyResult, type StepReport, type ReplicationEnv } from './apply.js';
export { REPLICATION_ROLE, filterColumns, type Problem, type PlanNode } from './plan/index.js';
export { verify, type VerifyResult, type TableVerdict } from './verify.js';
export { replicationStatus, type SubscriptionStatus } from './status.js';
export { dropSubscription, resetSubscription, resyncTable, revertReplication, type OperationReport } from './operations.js';
export { emptyApplied, slotName, type AppliedState } from './plan/index.js';
export { HEARTBEAT, HEARTBEAT_BEAT_SQL, HEARTBEAT_SUBSCRIBER_SQL, heartbeatPublications, isHeartbeat } from './heartbeat.js';
export { validateRowFilter } from './row-filter.js';
export { currentConflict, lastApplyError, type ApplyConflict } from './conflicts.js';
