import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ProdhomeError } from '../errors.js';
import { appendFileSafe, writeFileSafe } from '../fsafe.js';
import { scramVerifier } from '../pg/index.js';
import type { PgBinaries } from './binaries.js';
import { lastLines, processAlive, run, type OsUser } from './process.js';

/**
 * Template clusters, as test-database tools keep them: initdb runs once per set of binaries (and
 * server user), and every new node starts as a copy of that cluster. The template is made off
 * the critical path — by the lab's agent, after the first `up` on these binaries, whose nodes
 * ran initdb themselves — so the first lab is no slower and every later one is faster. initdb is most of what a
 * new lab costs; a copy is a fraction of it. Each copy gets its own superuser password, set in
 * single-user mode — no listener, no log line, no statistics — and as a SCRAM verifier, so the
 * password itself never reaches the server. The template's own password was random and thrown
 * away: nobody can log in to a copy before its password is set.
 */

export const SUPERUSER = 'postgres';

/** How every cluster is made (a change here makes new templates: the flags are in the key). */
export const INITDB_ARGS = ['-U', SUPERUSER, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'];

/** Every prodhome.conf is included from postgresql.conf by this line. */
export const INCLUDE_LINE = "\n# prodhome's settings (from prodhome.yaml) live in this file:\ninclude_if_exists = 'prodhome.conf'\n";

/** Runs initdb into `dataDir` (whose parent exists and belongs to `user`) with `password` for the superuser. */
export async function initdb(dataDir: string, bins: PgBinaries, password: string, user: OsUser | undefined, env: NodeJS.ProcessEnv, nodeName: string): Promise<void> {
  // The password reaches initdb through a 0600 file that only the server user can read, never argv.
  const pwfile = path.join(path.dirname(dataDir), '.initdb-pw');
  writeFileSafe(pwfile, `${password}\n`, { mode: 0o600, owner: user });
  try {
    const r = await run(path.join(bins.binDir, 'initdb'), ['-D', dataDir, `--pwfile=${pwfile}`, ...INITDB_ARGS], { asUser: user, env });
    if (r.code !== 0) {
      throw new ProdhomeError('INITDB_FAILED', `${nodeName}: initdb failed (exit ${r.code}): ${lastLines(r.stderr || r.stdout, 5)}`, {
        hint: `Check the binaries in ${bins.binDir} and that ${path.dirname(dataDir)} is writable${user ? ` by ${user.name}` : ''}.`,
      });
    }
  } finally {
    fs.rmSync(pwfile, { force: true });
  }
  appendFileSafe(path.join(dataDir, 'postgresql.conf'), INCLUDE_LINE);
}

/** Where the template for these binaries and this server user lives under `cacheRoot`. */
export function templateDir(cacheRoot: string, bins: PgBinaries, user: OsUser | undefined): string {
  const postgres = path.join(bins.binDir, 'postgres');
  const key = crypto
    .createHash('sha1')
    .update([fs.realpathSync(bins.binDir), bins.version, fs.statSync(postgres).mtimeMs, user?.uid ?? process.getuid?.() ?? '', ...INITDB_ARGS].join('\0'))
    .digest('hex')
    .slice(0, 16);
  return path.join(cacheRoot, 'templates', `pg${bins.major}-${key}`);
}

/** The template's data dir when it has been made; undefined when not (yet). */
export function templateReady(cacheRoot: string, bins: PgBinaries, user: OsUser | undefined): string | undefined {
  const data = path.join(templateDir(cacheRoot, bins, user), 'data');
  return fs.existsSync(path.join(data, 'PG_VERSION')) ? data : undefined;
}

const making = new Map<string, Promise<string>>();

/**
 * The template's data dir, made with initdb the first time: once per process however many nodes
 * ask at once; two `up`s at once each make one, the first rename wins and both work.
 */
export function ensureTemplate(cacheRoot: string, bins: PgBinaries, user: OsUser | undefined, env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<string> {
  const dir = templateDir(cacheRoot, bins, user);
  const data = path.join(dir, 'data');
  if (fs.existsSync(path.join(data, 'PG_VERSION'))) return Promise.resolve(data);
  let made = making.get(dir);
  if (!made) {
    made = makeTemplate(dir, bins, user, env, log).finally(() => making.delete(dir));
    making.set(dir, made);
  }
  return made;
}

async function makeTemplate(dir: string, bins: PgBinaries, user: OsUser | undefined, env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<string> {
  const data = path.join(dir, 'data');
  log(`initdb of a template cluster for Postgres ${bins.version} (once; new nodes are copies of it)`);
  fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
  const tmp = `${dir}.tmp-${process.pid}`;
  // What a maker that was killed half-way left behind (its pid is gone).
  for (const name of fs.readdirSync(path.dirname(dir))) {
    const pid = Number(/\.tmp-(\d+)$/.exec(name)?.[1]);
    if (name.startsWith(`${path.basename(dir)}.tmp-`) && pid && !processAlive(pid)) fs.rmSync(path.join(path.dirname(dir), name), { recursive: true, force: true });
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { mode: 0o700 });
  if (user) fs.chownSync(tmp, user.uid, user.gid);
  try {
    await initdb(path.join(tmp, 'data'), bins, crypto.randomBytes(24).toString('base64url'), user, env, 'template');
    fs.renameSync(tmp, dir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (fs.existsSync(path.join(data, 'PG_VERSION'))) return data; // another `up` made it meanwhile
    throw e;
  }
  return data;
}

/** Copies the template into `dataDir` as the server user, then sets the superuser's password. */
export async function cloneTemplate(template: string, dataDir: string, bins: PgBinaries, password: string, user: OsUser | undefined, env: NodeJS.ProcessEnv, nodeName: string): Promise<void> {
  const copy = await run('cp', ['-a', template, dataDir], { asUser: user, env });
  if (copy.code !== 0) throw new ProdhomeError('INITDB_FAILED', `${nodeName}: copying the template cluster failed: ${lastLines(copy.stderr, 3)}`);
  // Single-user mode reads one statement a line from stdin; exit_on_error turns a failure into an exit code.
  const statement = `ALTER ROLE ${SUPERUSER} PASSWORD '${scramVerifier(password)}'\n`;
  const single = await run(path.join(bins.binDir, 'postgres'), ['--single', '-D', dataDir, '-c', 'exit_on_error=true', '-c', 'log_min_messages=fatal', SUPERUSER], { asUser: user, env, input: statement });
  if (single.code !== 0) {
    // Its output could echo the statement: say only that it failed, and how.
    throw new ProdhomeError('INITDB_FAILED', `${nodeName}: setting the superuser's password in the copied cluster failed (postgres --single exit ${single.code})`, {
      hint: 'Run `prodhome up` again; if it fails again, remove the templates directory to have it made afresh.',
    });
  }
}
