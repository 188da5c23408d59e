import { withConnection, type ConnectionInfo } from '../pg/index.js';

/**
 * A running node's changed settings, applied the way a DBA would: settings Postgres can take
 * on a reload (pg_settings.context sighup, user, superuser, backend…) are reloaded with
 * pg_reload_conf(), and only a setting of context `postmaster` (shared_buffers, max_connections,
 * wal_level…) — or one the server does not know — costs a restart.
 */

/** The settings of a prodhome.conf, as `name = 'value'` lines. */
export function confSettings(conf: string): Map<string, string> {
  const settings = new Map<string, string>();
  for (const line of conf.split('\n')) {
    const m = /^([A-Za-z_][\w.]*) = '(.*)'$/.exec(line);
    if (m) settings.set(m[1]!.toLowerCase(), m[2]!);
  }
  return settings;
}

/** Names whose value differs between two prodhome.conf texts (added and removed ones too). */
export function changedSettings(before: string, after: string): string[] {
  const a = confSettings(before);
  const b = confSettings(after);
  return [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k)).sort();
}

export type ReloadOutcome = { reloaded: string[] } | { restartFor: string[] };

/**
 * Decides from pg_settings.context whether `changed` can be reloaded; if so (the new
 * prodhome.conf already written), reloads and returns the names. Otherwise names what needs
 * the restart. A value the server would refuse is reported before anything is reloaded.
 */
export async function reloadSettings(connection: ConnectionInfo, changed: string[]): Promise<ReloadOutcome> {
  return withConnection(connection, async (sql) => {
    const rows = await sql<{ name: string; context: string }[]>`select name, context from pg_settings where name = any(${changed})`;
    const context = new Map(rows.map((r) => [r.name, r.context]));
    const restartFor = changed.filter((name) => !context.has(name) || context.get(name) === 'postmaster' || context.get(name) === 'internal');
    if (restartFor.length) return { restartFor };
    // pg_file_settings parses the files as they are now: a bad value shows here, before the reload.
    const bad = await sql<{ name: string; setting: string; error: string }[]>`
      select name, setting, error from pg_file_settings where error is not null and name = any(${changed})`;
    if (bad.length) return { restartFor: bad.map((b) => b.name) };
    const { loaded } = (await sql<{ loaded: string }[]>`select pg_conf_load_time()::text as loaded`)[0]!;
    await sql`select pg_reload_conf()`;
    // The reload is asynchronous: wait (briefly) until this backend has read the files again, so
    // the next session sees the new values. pg_conf_load_time() is per process.
    for (let i = 0; i < 100; i++) {
      const { done } = (await sql<{ done: boolean }[]>`select pg_conf_load_time() > ${loaded}::timestamptz as done`)[0]!;
      if (done) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    return { reloaded: changed };
  });
}
