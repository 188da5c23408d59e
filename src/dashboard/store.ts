import { scramVerifier, type Sql } from '../pg/index.js';
import { ensureAnnotations } from '../sinks/index.js';

/**
 * The dashboard's side of the metrics store: the read-only role it reads through and the
 * annotations table. `up` calls ensureReader on the store node as its owner; the dashboard
 * itself never writes.
 */

export interface ReaderSecret {
  user: string;
  password: string;
}

/**
 * Creates (or re-keys) the dashboard's login role: it can SELECT schema `metrics` — the tables
 * there now and those the sink creates later — and nothing else; its sessions are read-only,
 * few and time-limited. The password goes to the server as a literal built there by format(%L)
 * (CREATE ROLE takes no parameters), as a SCRAM verifier: the password itself never reaches the server.
 */
export async function ensureReader(sql: Sql, reader: ReaderSecret): Promise<void> {
  await ensureAnnotations(sql);
  const [exists] = await sql<{ n: number }[]>`select count(*)::int as n from pg_roles where rolname = ${reader.user}`;
  const verb = exists!.n ? 'ALTER' : 'CREATE';
  const template = `${verb} ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION CONNECTION LIMIT 8 PASSWORD %L`;
  // A SCRAM verifier, not the password: the statement may be tracked (pg_stat_statements) or logged.
  const [stmt] = await sql<{ q: string }[]>`select format(${template}::text, ${reader.user}::text, ${scramVerifier(reader.password)}::text) as q`;
  await sql.unsafe(stmt!.q);
  const role = (await sql<{ q: string }[]>`select quote_ident(${reader.user}) as q`)[0]!.q;
  const owner = (await sql<{ q: string }[]>`select quote_ident(current_user) as q`)[0]!.q;
  await sql.unsafe(`ALTER ROLE ${role} SET default_transaction_read_only = on`);
  await sql.unsafe(`ALTER ROLE ${role} SET statement_timeout = '5s'`);
  await sql.unsafe(`REVOKE ALL ON SCHEMA public FROM ${role}`);
  await sql.unsafe(`GRANT USAGE ON SCHEMA metrics TO ${role}`);
  await sql.unsafe(`GRANT SELECT ON ALL TABLES IN SCHEMA metrics TO ${role}`);
  await sql.unsafe(`ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA metrics GRANT SELECT ON TABLES TO ${role}`);
}
