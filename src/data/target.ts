import postgres from 'postgres';
import type { TableRef } from '../config/index.js';
import { ProdhomeError, messageOf } from '../errors.js';
import { quoteIdent, type ConnectionInfo } from '../pg/index.js';

/** A pool or a transaction: what query helpers need (src/pg's Sql is the pool only). */
export type Db = postgres.ISql;

/** A node to load data into: its name (for messages) and how to reach it. */
export interface DataTarget {
  node: string;
  connection: ConnectionInfo;
}

/** `"schema"."name"`, both parts quoted. */
export function qualifiedName(t: TableRef): string {
  return `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
}

/** schema.name as people write it (for messages). */
export function displayName(t: TableRef): string {
  return t.schema === 'public' ? t.name : `${t.schema}.${t.name}`;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED']);

/** A failure as a ProdhomeError naming the node and what was being done; ours pass through. */
export function loadFailure(target: DataTarget, what: string, e: unknown): Error {
  if (e instanceof ProdhomeError) return e;
  const pg = e as { code?: string; detail?: string; hint?: string; severity?: string };
  if (typeof pg.code === 'string' && UNREACHABLE.has(pg.code)) {
    const { host, port } = target.connection;
    return new ProdhomeError('LAB_NOT_UP', `${target.node}: cannot connect to ${host}:${port}: ${messageOf(e)}`, {
      hint: 'Is the lab up? Run `prodhome up` (and `prodhome status` to see each node).',
      cause: e,
    });
  }
  if (typeof pg.severity !== 'string') return e instanceof Error ? e : new Error(String(e)); // not the server's: a bug
  const detail = pg.detail ? ` (${pg.detail})` : '';
  return new ProdhomeError('LOAD_FAILED', `${target.node}: ${what} failed: ${messageOf(e)}${detail} [SQLSTATE ${pg.code}]`, { hint: pg.hint, cause: e });
}

/**
 * Bounds a load's COPY: when the server stops reading, the pool is closed — the driver would wait
 * on it for ever, even to roll back — and the stall is what gets reported, not the closed connection.
 */
export function stallGuard(sql: postgres.Sql) {
  let stall: Error | undefined;
  return {
    onStall: (e: Error) => {
      stall = e;
      void sql.end({ timeout: 0 });
    },
    error: (e: unknown): unknown => stall ?? e,
  };
}
