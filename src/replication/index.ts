export { applyReplication, readApplied, pools, problemsError, pgMessage, type ApplyResult, type StepReport, type ReplicationEnv } from './apply.js';
export { REPLICATION_ROLE, filterColumns, type Problem, type PlanNode } from './plan.js';
export { verify, type VerifyResult, type TableVerdict } from './verify.js';
export { replicationStatus, type SubscriptionStatus } from './status.js';
