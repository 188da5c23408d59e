import { connect, type ConnectionInfo } from '../../pg/index.js';

/**
 * Statements that carry a secret — the replication role's password, a subscription's
 * conninfo — must not be kept by the server: pg_stat_statements stores utility statements'
 * text as is (readable with pg_read_all_stats, served on /metrics), and the server log keeps
 * statements that fail (log_min_error_statement) or that log_statement/duration settings catch.
 * So they run on a session of their own with tracking and statement logging off (superuser-only
 * settings: where the connecting user is not a superuser they stay as the server has them),
 * and a role's password is sent as a SCRAM verifier computed here, never as the password.
 */

const QUIET: [string, string][] = [
  ['pg_stat_statements.track', 'none'],
  ['log_statement', 'none'],
  ['log_min_duration_statement', '-1'],
  ['log_min_error_statement', 'panic'],
];

/** Runs `text` on its own session of `info`'s server with statement tracking and logging off. */
export async function runUntracked(info: ConnectionInfo, text: string): Promise<void> {
  const sql = connect(info, { max: 1, applicationName: 'prodhome' });
  try {
    const [su] = await sql<{ su: boolean }[]>`select current_setting('is_superuser') = 'on' as su`;
    if (su?.su) {
      const [loaded] = await sql<{ n: number }[]>`select count(*)::int as n from pg_settings where name = 'pg_stat_statements.track'`;
      for (const [name, value] of QUIET) {
        if (name.startsWith('pg_stat_statements.') && !loaded?.n) continue;
        await sql`select set_config(${name}, ${value}, false)`;
      }
    }
    await sql.unsafe(text);
  } finally {
    await sql.end({ timeout: 2 });
  }
}

