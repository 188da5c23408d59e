/**
 * The lab part's one door. What reads a lab (status, state, how to reach a node, the agent's
 * files, logs) is loaded with it; what changes one — up/down/destroy, replication, faults,
 * sampling, load reports, node control — is loaded on its first call, so `prodhome status` does
 * not pay for the replication planner, the sinks, the dashboard's server and the faults.
 */
import type * as Lifecycle from './lifecycle.js';
import type * as Replication from './replication.js';
import type * as Faults from './faults.js';
import type * as NodeControl from './node-control.js';
import type * as Sampler from './agent-sampler.js';
import type * as LoadReport from './load-report.js';
import type * as Sample from './sample.js';
import type * as ConfigEdit from './config-edit.js';

export { SYSTEM_ROOT } from './paths.js';
export { templateRoot } from './templates.js';
export { logFileOf, labLogs, readLogTail, followLogs, type LogSource } from './logs.js';
export { doctor, type DoctorCheck } from './doctor.js';
export { labNodes, nodeHandle, nodeConnection, dataTarget, defaultDataNode, type NodeHandle } from './nodes.js';
export { labStatus, type StatusResult, type NodeStatusRow } from './inspect.js';
export type { UpResult, DownResult, DestroyResult, NodeUpReport, Log } from './lifecycle.js';
export { findLab, type LabTarget } from './find.js';
export { runAgent, reviveAgent, agentPid, readAgentStatus, dashboardUrl, type AgentStatus } from './agent.js';
export { readState, readSecrets, replicationFile, files as stateFiles, type LabState } from './state.js';
export type { SinkReport } from './agent-sampler.js';
export type { LoadReporter } from './load-report.js';
export type { FaultResult, ClearResult } from './faults.js';
export { sampleSummary, NARROW_WIDTH } from './sample-summary.js';
export { guardWrites, writtenTables, feedingSubscriptions, type WriteIntent } from './write-guard.js';
export type { NodeAction, NodeControlReport } from './node-control.js';

/** `f`, loaded from its module on the first call. */
function later<M, K extends keyof M>(load: () => Promise<M>, name: K) {
  type F = M[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never;
  return (async (...args: unknown[]) => ((await load())[name] as (...a: unknown[]) => unknown)(...args)) as F;
}

const lifecycle = () => import('./lifecycle.js');
export const labUp = later<typeof Lifecycle, 'labUp'>(lifecycle, 'labUp');
export const labDown = later<typeof Lifecycle, 'labDown'>(lifecycle, 'labDown');
export const labDestroy = later<typeof Lifecycle, 'labDestroy'>(lifecycle, 'labDestroy');

const replication = () => import('./replication.js');
export const labReplicate = later<typeof Replication, 'labReplicate'>(replication, 'labReplicate');
export const labVerify = later<typeof Replication, 'labVerify'>(replication, 'labVerify');
export const labReplicationStatus = later<typeof Replication, 'labReplicationStatus'>(replication, 'labReplicationStatus');
export const labSetSubscriptionEnabled = later<typeof Replication, 'labSetSubscriptionEnabled'>(replication, 'labSetSubscriptionEnabled');
export const labResolve = later<typeof Replication, 'labResolve'>(replication, 'labResolve');
export const labDropSubscriptions = later<typeof Replication, 'labDropSubscriptions'>(replication, 'labDropSubscriptions');
export const labResync = later<typeof Replication, 'labResync'>(replication, 'labResync');
export const labRevert = later<typeof Replication, 'labRevert'>(replication, 'labRevert');

const faults = () => import('./faults.js');
export const labFault = later<typeof Faults, 'labFault'>(faults, 'labFault');
export const labFaultList = later<typeof Faults, 'labFaultList'>(faults, 'labFaultList');
export const labFaultClear = later<typeof Faults, 'labFaultClear'>(faults, 'labFaultClear');
export const labThaw = later<typeof Faults, 'labThaw'>(faults, 'labThaw');

export const labNodeControl = later<typeof NodeControl, 'labNodeControl'>(() => import('./node-control.js'), 'labNodeControl');
export const openSinks = later<typeof Sampler, 'openSinks'>(() => import('./agent-sampler.js'), 'openSinks');
export const loadReporter = later<typeof LoadReport, 'loadReporter'>(() => import('./load-report.js'), 'loadReporter');
/** The agent's sampling loop run in the foreground (`prodhome sample`). */
export const labSample = later<typeof Sample, 'labSample'>(() => import('./sample.js'), 'labSample');
/** `replication add`'s edit of prodhome.yaml (the YAML library, loaded for it). */
export const addSubscriptionToConfig = later<typeof ConfigEdit, 'addSubscriptionToConfig'>(() => import('./config-edit.js'), 'addSubscriptionToConfig');
