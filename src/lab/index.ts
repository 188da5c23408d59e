export { labUp, labDown, labDestroy, SYSTEM_ROOT } from './lifecycle.js';
export { templateRoot } from './templates.js';
export { logFileOf, labLogs, readLogTail, followLogs, type LogSource } from './logs.js';
export { doctor, type DoctorCheck } from './doctor.js';
export { labNodes, nodeHandle, nodeConnection, dataTarget, defaultDataNode, type NodeHandle } from './nodes.js';
export { labStatus, type StatusResult, type NodeStatusRow } from './inspect.js';
export type { UpResult, DownResult, DestroyResult, NodeUpReport, Log } from './lifecycle.js';
export { findLab, type LabTarget } from './find.js';
export { runAgent, reviveAgent, agentPid, readAgentStatus, dashboardUrl, type AgentStatus } from './agent.js';
export { readState, readSecrets, files as stateFiles, type LabState } from './state.js';
export {
  labReplicate, labVerify, labReplicationStatus, labSetSubscriptionEnabled, labResolve, labDropSubscriptions, labResync, labRevert, replicationFile,
} from './replication.js';
export { openSinks, accounting, type SinkReport } from './agent-sampler.js';
export { loadReporter, workloadPoints, type LoadReporter } from './load-report.js';
export { labFault, labFaultList, labFaultClear, labThaw, type FaultResult, type ClearResult } from './faults.js';
export { sampleSummary, NARROW_WIDTH } from './sample-summary.js';
export { guardWrites, writtenTables, feedingSubscriptions, type WriteIntent } from './write-guard.js';
export { addSubscriptionToConfig } from './config-edit.js';
export { labSample } from './sample.js';
export { labNodeControl, type NodeAction, type NodeControlReport } from './node-control.js';
