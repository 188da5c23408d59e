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
 * server user), and every new node starts as a copy of that cluster. The first `up` on these
 * binaries makes the template (one initdb, not one per node) and copies it for each node; its
 * agent then keeps a few spare copies ready beside the template, off every command's critical
 * path, so a later `up` claims one by a rename instead of copying ~40 MB and ~1,000 files.
 * Each node gets its own superuser password, set in single-user mode — no listener, no log
 * line, no statistics — and as a SCRAM verifier, so the password itself never reaches the
 * server. The template's own password was random and thrown away, and spares are plain copies
 * of it: nobody can log in to a copy before its password is set.
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

/**
 * What a template holds beyond initdb's output; a change makes new templates (it is in the key).
 * 2: its WAL segment's unused tail (11 of 16 MB) is a hole, so copies write a third less.
 */
const TEMPLATE_FORMAT = 2;

/** Where the template for these binaries and this server user lives under `cacheRoot`. */
export function templateDir(cacheRoot: string, bins: PgBinaries, user: OsUser | undefined): string {
  const postgres = path.join(bins.binDir, 'postgres');
  const key = crypto
    .createHash('sha1')
    .update([fs.realpathSync(bins.binDir), bins.version, fs.statSync(postgres).mtimeMs, user?.uid ?? process.getuid?.() ?? '', TEMPLATE_FORMAT, ...INITDB_ARGS].join('\0'))
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
    await punchWalHoles(path.join(tmp, 'data'), user, env);
    fs.renameSync(tmp, dir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (fs.existsSync(path.join(data, 'PG_VERSION'))) return data; // another `up` made it meanwhile
    throw e;
  }
  return data;
}

/**
 * initdb leaves one 16 MB WAL segment of which it used ~5 MB; the zeros after are made a hole
 * (fallocate --dig-holes, as the server user), and `cp -a` keeps holes. Postgres reads a hole as
 * the zeros it wrote there and fills it as it writes. Best effort: without it copies are bigger.
 */
async function punchWalHoles(dataDir: string, user: OsUser | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  const wal = path.join(dataDir, 'pg_wal');
  const segments = fs.readdirSync(wal).filter((f) => /^[0-9A-F]{24}$/.test(f));
  if (segments.length) await run('fallocate', ['--dig-holes', ...segments.map((f) => path.join(wal, f))], { asUser: user, env }).catch(() => undefined);
}

/**
 * Copies the template into `dataDir` as the server user — claiming a spare copy when one is
 * ready (a rename) — then sets the superuser's password. Returns how the cluster was made.
 */
export async function cloneTemplate(
  template: string,
  dataDir: string,
  bins: PgBinaries,
  password: string,
  user: OsUser | undefined,
  env: NodeJS.ProcessEnv,
  nodeName: string,
): Promise<'spare' | 'copy'> {
  const how = claimSpare(template, dataDir, user) ? 'spare' : 'copy';
  if (how === 'copy') {
    const copy = await run('cp', ['-a', template, dataDir], { asUser: user, env });
    if (copy.code !== 0) throw new ProdhomeError('INITDB_FAILED', `${nodeName}: copying the template cluster failed: ${lastLines(copy.stderr, 3)}`);
  }
  await setSuperuserPassword(dataDir, bins, password, user, env, nodeName);
  return how;
}

/**
 * The superuser's password, set in single-user mode from stdin. fsync is off for this one run:
 * the copy it changes is not synced either — it reaches the disk when the kernel writes it back,
 * as initdb --no-sync leaves a cluster — so syncing the few pages this run changes would buy
 * nothing; a machine crash in those seconds loses a new node that never served. The server
 * itself then runs with fsync on.
 */
async function setSuperuserPassword(dataDir: string, bins: PgBinaries, password: string, user: OsUser | undefined, env: NodeJS.ProcessEnv, nodeName: string): Promise<void> {
  // Single-user mode reads one statement a line from stdin; exit_on_error turns a failure into an exit code.
  const statement = `ALTER ROLE ${SUPERUSER} PASSWORD '${scramVerifier(password)}'\n`;
  const single = await run(path.join(bins.binDir, 'postgres'), ['--single', '-D', dataDir, '-c', 'exit_on_error=true', '-c', 'log_min_messages=fatal', '-c', 'fsync=off', SUPERUSER], {
    asUser: user,
    env,
    input: statement,
  });
  if (single.code !== 0) {
    // Its output could echo the statement: say only that it failed, and how.
    throw new ProdhomeError('INITDB_FAILED', `${nodeName}: setting the superuser's password in the copied cluster failed (postgres --single exit ${single.code})`, {
      hint: 'Run `prodhome up` again; if it fails again, remove the templates directory to have it made afresh.',
    });
  }
}

// ---- spares: copies of the template made ahead, claimed by a rename --------------------------

/**
 * Spares live in `<template dir>.spares/`, a directory owned by whoever runs prodhome (root when
 * servers run as another user), so only prodhome names, adds or removes spares: each is
 * `<id>/data`, copied by the server user into `.making-<pid>-<n>/` and renamed to a random id
 * once complete, so a half-made copy is never claimed.
 */
export function sparesDir(template: string): string {
  return `${path.dirname(template)}.spares`;
}

/** The ready spares (their ids). */
export function listSpares(template: string): string[] {
  try {
    return fs.readdirSync(sparesDir(template)).filter((n) => /^[0-9a-f]{16}$/.test(n));
  } catch {
    return [];
  }
}

/**
 * Moves a ready spare to `dataDir` (which must not exist) and says whether it did. Two `up`s at
 * once never get the same one: a rename succeeds once. A spare on another filesystem (EXDEV) or
 * anything odd is left, and the caller copies instead. The spare's own directory is the server
 * user's: what lands at `dataDir` must be a real directory of theirs, or it is removed again.
 */
export function claimSpare(template: string, dataDir: string, user: OsUser | undefined): boolean {
  const dir = sparesDir(template);
  if (!isOwnRealDir(dir)) return false;
  for (const id of listSpares(template)) {
    try {
      fs.renameSync(path.join(dir, id, 'data'), dataDir);
    } catch {
      continue; // claimed by another `up` meanwhile, half-removed, or another filesystem
    }
    try {
      fs.rmdirSync(path.join(dir, id)); // empty now; never a recursive delete in the server user's dir
    } catch {
      // something was put there: the next maker's sweep of this dir removes it
    }
    const st = fs.lstatSync(dataDir);
    const uid = user?.uid ?? process.getuid?.();
    if (st.isDirectory() && st.uid === uid && fs.existsSync(path.join(dataDir, 'PG_VERSION'))) return true;
    // Not a cluster of the server user's (a link planted in its place): never follow it.
    if (!st.isDirectory()) fs.unlinkSync(dataDir);
    else if (st.uid === uid) fs.rmSync(dataDir, { recursive: true, force: true });
    else throw new ProdhomeError('UNSAFE_PATH', `a spare template copy in ${dir} was replaced by a directory of uid ${st.uid}; it is now at ${dataDir} and was left there`);
  }
  return false;
}

/** `dir` is a directory (not a link) owned by this process's user. */
function isOwnRealDir(dir: string): boolean {
  try {
    const st = fs.lstatSync(dir);
    return st.isDirectory() && st.uid === process.getuid?.();
  } catch {
    return false;
  }
}

/**
 * Makes spares until `count` are ready, one at a time at low priority (nice 10); `signal` stops
 * it (the copy under way is killed), and a copy dies with this process too (setpriv --pdeathsig),
 * so an agent that stops neither waits for one nor leaves one running. Returns
 * how many it made. What a maker that was killed half-way left (its pid is gone) is removed.
 * Spares and the template (made unsynced, as initdb --no-sync, while an `up` waited) are synced
 * to disk here (initdb --sync-only) before a spare is offered: they outlive a machine crash,
 * which must not leave a torn cluster for a later lab.
 */
export async function makeSpares(template: string, bins: PgBinaries, count: number, user: OsUser | undefined, env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<number> {
  const dir = sparesDir(template);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  if (!isOwnRealDir(dir)) throw new Error(`${dir} is not a directory of this user's`);
  // What a maker killed half-way left (its pid is gone), and claimed spares' leftover dirs.
  for (const name of fs.readdirSync(dir)) {
    const pid = Number(/^\.making-(\d+)-/.exec(name)?.[1]);
    if ((pid && !processAlive(pid)) || (/^[0-9a-f]{16}$/.test(name) && !fs.existsSync(path.join(dir, name, 'data')))) await removeAsUser(path.join(dir, name), user, env);
  }
  const wrap = fs.existsSync('/usr/bin/setpriv') ? ['setpriv', '--pdeathsig', 'KILL', '--', 'nice', '-n', '10'] : ['nice', '-n', '10'];
  const syncOnly = async (data: string) => {
    const r = await run(wrap[0]!, [...wrap.slice(1), path.join(bins.binDir, 'initdb'), '--sync-only', '-D', data], { asUser: user, env, signal });
    if (r.code !== 0 && !signal?.aborted) throw new Error(`syncing ${data} failed: ${lastLines(r.stderr || r.stdout, 3)}`);
  };
  const synced = path.join(dir, '.template-synced');
  if (!fs.existsSync(synced)) {
    await syncOnly(template);
    if (signal?.aborted) return 0;
    writeFileSafe(synced, `${new Date().toISOString()}\n`);
  }
  let made = 0;
  for (let n = 0; listSpares(template).length < count && !signal?.aborted; n++) {
    const making = path.join(dir, `.making-${process.pid}-${n}`);
    await removeAsUser(making, user, env);
    fs.mkdirSync(making, { mode: 0o700 });
    if (user) fs.chownSync(making, user.uid, user.gid);
    const copy = await run(wrap[0]!, [...wrap.slice(1), 'cp', '-a', template, path.join(making, 'data')], { asUser: user, env, signal });
    if (copy.code !== 0 || signal?.aborted) {
      if (signal?.aborted) return made; // the next maker removes what this one left (its pid gone)
      await removeAsUser(making, user, env);
      throw new Error(`copying the template failed: ${lastLines(copy.stderr, 3)}`);
    }
    await syncOnly(path.join(making, 'data'));
    if (signal?.aborted) return made;
    fs.renameSync(making, path.join(dir, crypto.randomBytes(8).toString('hex')));
    made++;
  }
  return made;
}

/**
 * Removes `dir` (an entry of a directory of ours): what is in it belongs to the server user and
 * is deleted as that user, so a link swapped in mid-way never makes root delete elsewhere.
 */
async function removeAsUser(dir: string, user: OsUser | undefined, env: NodeJS.ProcessEnv): Promise<void> {
  if (!fs.existsSync(dir)) return;
  if (!user) return fs.rmSync(dir, { recursive: true, force: true });
  await run('find', [dir, '-mindepth', '1', '-delete'], { asUser: user, env });
  fs.rmdirSync(dir);
}
