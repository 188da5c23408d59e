import { spawnSync } from 'node:child_process';
import { ProdhomeError } from '../errors.js';
import { isRoot, type OsUser } from './process.js';

/**
 * Postgres refuses to run as root. When prodhome runs as root, local servers run as `name`,
 * a system user created here if it does not exist; otherwise they run as the invoking user and
 * this returns undefined.
 */
export function serverUser(name: string, { create = true } = {}): OsUser | undefined {
  if (!isRoot()) return undefined;
  const found = lookupUser(name);
  if (found) return found;
  if (!create) return undefined;
  if (process.platform !== 'linux') {
    throw new ProdhomeError('OS_USER', `prodhome runs as root, and Postgres refuses root; the OS user "${name}" does not exist`, {
      hint: `Create the user "${name}" (or set runAs: to an existing unprivileged user), or run prodhome as a normal user.`,
    });
  }
  const r = spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name], {
    encoding: 'utf8',
  });
  const created = lookupUser(name);
  if (!created) {
    throw new ProdhomeError('OS_USER', `cannot create the OS user "${name}" to run Postgres as (Postgres refuses root): ${(r.stderr || r.error?.message || '').trim()}`, {
      hint: `Create it yourself (useradd --system ${name}), set runAs: to an existing unprivileged user, or run prodhome as a normal user.`,
    });
  }
  return created;
}

export function lookupUser(name: string): OsUser | undefined {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  return { name, uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}
