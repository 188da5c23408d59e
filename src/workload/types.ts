import type { Sql } from '../pg/index.js';
import type { Random } from './random.js';
import type { Statement, Value } from './statement.js';
import type { Protocol, ServerError, WireConnection } from './wire.js';

/** One thing a client does within a transaction: a statement with its values, or a pause. */
export type Step = { readonly statement: Statement; readonly values: readonly Value[] } | { readonly sleepMicros: number };

/**
 * What one client runs, each time it is asked: the steps of its next transaction (`next`), or —
 * for scripts, whose control flow depends on results — the whole transaction run against the
 * client's connection (`run`).
 */
export type TransactionSource = { next(): readonly Step[]; run?: undefined } | { run(session: ScriptSession): Promise<TransactionFailure | undefined>; next?: undefined };

/** What a script transaction runs against: its client's connection, the protocol, a stoppable sleep. */
export interface ScriptSession {
  conn: WireConnection;
  protocol: Protocol;
  sleep(ms: number): Promise<void>;
}

/** A failed transaction: the server's error, or a script error (code SCRIPT_…); whether a transaction block is left open. */
export type TransactionFailure = ServerError & { inTransaction: boolean };

export interface ClientContext {
  /** 0 … clients-1, across all threads. */
  clientId: number;
  clients: number;
  random: Random;
  /** The run's random seed (pgbench's :random_seed). */
  seed: number;
}

/** Options only some workloads take; a workload lists the ones it accepts in `takes`. */
export interface WorkloadOptions {
  /** custom: the script file. */
  file?: string;
  /** mixed: insert=1,update=1,delete=1,select=5. */
  weights?: string;
  /** custom: the value of :scale (-s); default read from pgbench_branches, else 1. */
  scale?: number;
  /** custom: -D NAME=VALUE variables, as given (pgbench takes any text; the prodhome engine reads numbers). */
  defines?: Record<string, string>;
}

/** Who runs the clients: prodhome's own, or the installed pgbench (which reads the script itself). */
export type Engine = 'prodhome' | 'pgbench';

export interface PrepareContext {
  sql: Sql;
  engine: Engine;
  /** The node's name, for messages. */
  node: string;
  options: WorkloadOptions;
}

/**
 * A workload plugin (one file each under workloads/). `prepare` runs once on the main thread and
 * returns plain data (it crosses to worker threads); `client` builds one client's transactions
 * from it in whichever thread runs that client.
 */
export interface Workload<S> {
  readonly name: string;
  readonly description: string;
  /** The --schedule used when none is given (the inserter pauses like the origin's script). */
  readonly defaultSchedule?: string;
  /** Workload-specific options it accepts; the others are refused by name. */
  readonly takes: readonly (keyof WorkloadOptions)[];
  prepare(ctx: PrepareContext): Promise<S>;
  client(shared: S, ctx: ClientContext): TransactionSource;
  /** A one-line summary and the SQL it runs (the header of a run, and --dry-run). */
  plan(shared: S): { summary: string; script: string };
  /** For --engine pgbench: the arguments choosing its script (-b …, -f …); absent when pgbench cannot run it. */
  pgbench?(shared: S): string[];
}
