import net from 'node:net';
import { createRequire } from 'node:module';
import type postgres from 'postgres';

/**
 * The driver, loaded on the first connection (its CommonJS build, through require): commands
 * that only read files, such as `prodhome status` on a lab of local nodes, never load it.
 */
const driver = () => createRequire(import.meta.url)('postgres') as typeof postgres;

/** How to reach a running server. Carries a password: never log or print it unasked. */
export interface ConnectionInfo {
  host: string;
  port: number;
  user: string;
  password?: string;
  database: string;
}

export type Sql = postgres.Sql;

export interface ConnectOptions {
  max?: number;
  connectTimeoutSeconds?: number;
  applicationName?: string;
  statementTimeoutMs?: number;
  /** Server settings for every session of the pool, sent as startup parameters (no round trip). */
  settings?: Record<string, string>;
}

/** A small connection pool to one server; callers must `await sql.end()`. */
export function connect(info: ConnectionInfo, options: ConnectOptions = {}): Sql {
  const settings = {
    host: info.host,
    port: info.port,
    user: info.user,
    password: info.password,
    database: info.database,
    max: options.max ?? 1,
    connect_timeout: options.connectTimeoutSeconds ?? 5,
    idle_timeout: 5,
    onnotice: () => {},
    connection: {
      ...options.settings,
      application_name: options.applicationName ?? 'prodhome',
      ...(options.statementTimeoutMs ? { statement_timeout: String(options.statementTimeoutMs) } : {}),
    },
    // TCP_NODELAY: without it a COPY's last small message and its CopyDone wait on Nagle's
    // algorithm for the server's delayed ACK — about 80 ms of every load (measured). `socket` is
    // documented by the driver ("Custom socket") but missing from its 3.4.9 typings.
    socket: () =>
      new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect({ host: info.host, port: info.port, noDelay: true });
        socket.once('error', reject);
        socket.once('connect', () => {
          socket.off('error', reject);
          resolve(socket);
        });
      }),
  };
  return driver()(settings as postgres.Options<Record<string, never>>);
}

/** Runs `fn` with a one-connection pool that is always closed afterwards. */
export async function withConnection<T>(info: ConnectionInfo, fn: (sql: Sql) => Promise<T>): Promise<T> {
  const sql = connect(info);
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/** Quotes an SQL identifier the way Postgres's quote_ident does (always quoted). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A postgres:// URL for `info`; the password is shown only when asked for. */
export function connectionUrl(info: ConnectionInfo, { withPassword = false } = {}): string {
  const user = encodeURIComponent(info.user);
  const auth = withPassword && info.password ? `${user}:${encodeURIComponent(info.password)}` : user;
  return `postgres://${auth}@${info.host}:${info.port}/${encodeURIComponent(info.database)}`;
}

/** libpq's environment (PGHOST…, PGPASSWORD) and DATABASE_URL for a child process: secrets travel there, never on its command line. */
export function pgEnv(info: ConnectionInfo): Record<string, string> {
  const env: Record<string, string> = {
    PGHOST: info.host,
    PGPORT: String(info.port),
    PGUSER: info.user,
    PGDATABASE: info.database,
  };
  if (info.password) env.PGPASSWORD = info.password;
  env.DATABASE_URL = connectionUrl(info, { withPassword: true });
  return env;
}

/** Parses a postgres:// URL into ConnectionInfo (for external nodes). */
export function parseConnectionUrl(url: string): ConnectionInfo {
  const u = new URL(url);
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 5432,
    user: decodeURIComponent(u.username || 'postgres'),
    password: u.password ? decodeURIComponent(u.password) : process.env.PGPASSWORD,
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres',
  };
}

/** The server's version: "17.10" and its major, 17. */
export async function serverVersion(sql: Sql): Promise<{ version: string; major: number }> {
  const [row] = await sql<{ server_version: string; server_version_num: string }[]>`
    select current_setting('server_version') as server_version, current_setting('server_version_num') as server_version_num`;
  const num = Number(row!.server_version_num);
  return { version: row!.server_version.split(' ')[0]!, major: Math.floor(num / 10000) };
}

export { CopyBatcher, CopyStalled, copyFrom, copyTextValue, type CopyChunk, type CopyOptions } from './copy.js';
export { scramVerifier } from './scram.js';
