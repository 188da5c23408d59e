import crypto from 'node:crypto';
import type { PublishedTable, ReplicationConfig, SubscriptionSpec } from '../../config/index.js';
import type { ConnectionInfo, Sql } from '../../pg/index.js';

export const REPLICATION_ROLE = 'prodhome_replication';

export interface Step {
  node: string;
  reason: string;
  /** What the plan shows: SQL (secrets masked) or a process action in words. */
  show: string;
  kind: 'sql' | 'restart' | 'copy';
  exec: (ctx: PlanContext) => Promise<void>;
  /** Reverts this step when a later one fails; absent when it cannot be undone (said in `remains`). */
  undo?: (ctx: PlanContext) => Promise<void>;
  /** Said to the user when a failed apply cannot undo this step. */
  remains?: string;
  /** Updates the applied-state record once the step succeeded. */
  record?: (applied: AppliedState) => void;
}

export interface Problem {
  node: string;
  what: string;
  fix: string;
}

/** What prodhome applied, kept in the lab's replication.json; drives convergence and revert. */
export interface AppliedState {
  schema: Record<string, string[]>;
  publications: Record<string, { node: string; allTables: boolean; publish: string[]; tables: Record<string, Omit<PublishedTable, 'table'>> }>;
  subscriptions: Record<string, { node: string; publisher: string; publications: string[]; options: SubscriptionSpec['options'] }>;
  /** Settings prodhome changed with ALTER SYSTEM, with their values before. */
  previousSettings: Record<string, Record<string, string>>;
  /** Publishers where prodhome created the replication role. */
  roles: string[];
}

export const emptyApplied = (): AppliedState => ({ schema: {}, publications: {}, subscriptions: {}, previousSettings: {}, roles: [] });

export interface PlanNode {
  connection: ConnectionInfo;
  runtime: 'local' | 'external';
}

export interface PlanContext {
  config: ReplicationConfig;
  nodes: Map<string, PlanNode>;
  sql: (node: string) => Sql;
  /** The replication role's password on a publisher (created and stored if missing). */
  replicationPassword: (publisher: string) => string;
  /** Whether a password for the replication role on this publisher is already stored. */
  hasReplicationPassword: (publisher: string) => boolean;
  restart: (node: string) => Promise<void>;
  applied: AppliedState;
  dryRun: boolean;
  /**
   * `replicate --dry-run --all`: plan as if no table, publication, subscription or role existed
   * yet, so a lab that is up still shows its whole procedure (settings are still read as they are).
   */
  all?: boolean;
}

export type Stage = 'drops' | 'settings' | 'schema' | 'publications' | 'subscriptions';
export const STAGES: Stage[] = ['drops', 'settings', 'schema', 'publications', 'subscriptions'];

export interface StagePlan {
  steps: Step[];
  problems: Problem[];
}

/** Shared by the stages. */
export const hash = (s: string) => crypto.createHash('sha1').update(s).digest('hex').slice(0, 16);
export const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
export const publisherNodes = (c: ReplicationConfig) => [...new Set(c.publications.map((p) => p.node))];
export const subscriberNodes = (c: ReplicationConfig) => [...new Set(c.subscriptions.map((s) => s.node))];
