export { labUp, labDown, labDestroy, labStatus, nodeConnection, logFileOf, SYSTEM_ROOT } from './lifecycle.js';
export type { UpResult, DownResult, DestroyResult, StatusResult, NodeStatusRow, NodeUpReport, Log } from './lifecycle.js';
export { runAgent, agentPid, readAgentStatus, type AgentStatus } from './agent.js';
export { readState, readSecrets, files as stateFiles, type LabState } from './state.js';
export {
  labReplicate, labVerify, labReplicationStatus, labSetSubscriptionEnabled, labDropSubscriptions, labResync, labRevert, addSubscriptionToConfig, replicationFile,
} from './replication.js';
