import type { NODE_ROLES } from './schema.js';

export type NodeRole = (typeof NODE_ROLES)[number];

/** What a node should be, after validation and defaults. */
export interface NodeSpec {
  name: string;
  role: NodeRole;
  /** `local`: prodhome runs it; `external`: an existing server given by `url`. */
  runtime: 'local' | 'external';
  url?: string;
  port?: number;
  memoryBytes?: number;
  cpus?: number;
  /** postgresql.conf settings from config (max_connections, shared_buffers, … and `settings:`). */
  settings: Record<string, string>;
  postgres: { binDir?: string; version?: number };
}

export interface LabConfig {
  lab: string;
  runAs: string;
  ports: { from: number; to: number };
  postgres: { binDir?: string; version?: number };
  nodes: NodeSpec[];
  /** Absolute path of the config file, or undefined for the built-in default lab. */
  configFile?: string;
  /** Directory the config lives in (or the cwd for the default lab). */
  baseDir: string;
  /** `<baseDir>/.prodhome/<lab>`: data dirs, logs, secrets, pidfiles. */
  stateDir: string;
  replication: ReplicationConfig;
  metrics: { intervalMs: number; sinks: string[]; prometheus: false | { port?: number }; store?: string; retentionDays: number };
  /** The agent's web dashboard; false: off. */
  dashboard: false | { port?: number };
}

/** A table as config names it: `books` is public.books; both parts are quoted in SQL. */
export interface TableRef {
  schema: string;
  name: string;
}

export interface PublishedTable {
  table: TableRef;
  where?: string;
  columns?: string[];
  replicaIdentity?: 'default' | 'full';
}

export interface PublicationSpec {
  name: string;
  node: string;
  allTables: boolean;
  tables: PublishedTable[];
  publish: ('insert' | 'update' | 'delete' | 'truncate')[];
}

export interface SubscriptionSpec {
  name: string;
  node: string;
  /** The node its publications live on. */
  publisher: string;
  publications: string[];
  options: { copy_data?: boolean; streaming?: boolean | 'on' | 'off' | 'parallel'; binary?: boolean; disable_on_error?: boolean };
}

export interface ReplicationConfig {
  /** SQL to run once per node, in order. A `file:` is read when `sql` (or `csv`) is first used. */
  schema: { node: string; sql: string; origin: string }[];
  seed: { node: string; table: TableRef; csv: string; origin: string }[];
  publications: PublicationSpec[];
  subscriptions: SubscriptionSpec[];
}
