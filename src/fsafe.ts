import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ProdhomeError } from './errors.js';

/**
 * Writing files where someone else can plant a link. prodhome often runs as root and writes in
 * directories the server's OS user owns (a node's dir, its data dir: a database superuser can
 * create files there with COPY … TO) or in a lab's state dir. A link there must never make root
 * write, append to or chown another file, so every such write goes through this module:
 *  - the directory is opened once (O_DIRECTORY|O_NOFOLLOW) and the file named through
 *    /proc/self/fd/<dir>, so a directory swapped for a link after that changes nothing;
 *  - the file is opened with O_NOFOLLOW (a link fails with ELOOP) and O_NONBLOCK (a FIFO cannot
 *    hang us), and the fd must be a regular file with one name (no hard link to another file);
 *  - only that fd is chowned; whole files go to a new temp file (O_EXCL) renamed over the old.
 */

export interface Owner {
  uid: number;
  gid: number;
}

const { O_WRONLY, O_RDONLY, O_CREAT, O_EXCL, O_APPEND, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = fs.constants;
const HAS_PROC_FD = process.platform === 'linux' && fs.existsSync('/proc/self/fd');

/** Appends `text` to `file` (created with `mode` and given to `owner` if new or not theirs). */
export function appendFileSafe(file: string, text: string, opts: { mode?: number; owner?: Owner } = {}): void {
  const fd = openAppendSafe(file, opts);
  try {
    fs.writeFileSync(fd, text);
  } finally {
    fs.closeSync(fd);
  }
}

/** Opens `file` for appending, never through a link; the caller closes the fd. */
export function openAppendSafe(file: string, opts: { mode?: number; owner?: Owner } = {}): number {
  return inDir(file, (name) => {
    const fd = openChecked(name, file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK, opts.mode ?? 0o644);
    try {
      if (opts.owner) fs.fchownSync(fd, opts.owner.uid, opts.owner.gid);
      return fd;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  });
}

/**
 * Replaces `file` with `text` atomically: a fresh temp file in the same directory (O_EXCL, so
 * nothing planted under its name is used), chmod and chown by fd, then rename — a link at
 * `file` is replaced, never followed.
 */
export function writeFileSafe(file: string, text: string | Buffer, opts: { mode?: number; owner?: Owner } = {}): void {
  const mode = opts.mode ?? 0o644;
  inDir(file, (name, dirPath) => {
    const tmp = path.join(dirPath, `.${path.basename(file)}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
    const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
    try {
      try {
        fs.writeFileSync(fd, text);
        fs.fchmodSync(fd, mode);
        if (opts.owner) fs.fchownSync(fd, opts.owner.uid, opts.owner.gid);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, name);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
  });
}

/** The text of `file`, or undefined when it does not exist; a link or non-regular file is refused. */
export function readFileSafe(file: string): string | undefined {
  let fd: number;
  try {
    fd = inDir(file, (name) => openChecked(name, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * For a file in a directory another user owns (postmaster.pid, PG_VERSION, a node's log): its
 * text, or `fallback` when it is missing, a link, a FIFO or anything but a plain file.
 */
export function readFileSafeOr(file: string, fallback = ''): string {
  try {
    return readFileSafe(file) ?? fallback;
  } catch {
    return fallback;
  }
}

/** Throws unless `dir` is a real directory (not a link to one); `what` names it for the user. */
export function assertRealDir(dir: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (e) {
    throw unsafe(dir, `${what} ${dir} cannot be examined: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (st.isSymbolicLink()) throw unsafe(dir, `${what} ${dir} is a symbolic link (to ${readLink(dir)}); prodhome never deletes or writes through a link`);
  if (!st.isDirectory()) throw unsafe(dir, `${what} ${dir} is not a directory`);
}

/** Opens `name` with `flags`, then checks the fd is a regular file with a single name. */
function openChecked(name: string, file: string, flags: number, mode: number): number {
  let fd: number;
  try {
    fd = fs.openSync(name, flags, mode);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // ELOOP: the last component is a link; ENXIO: a FIFO with no reader (O_NONBLOCK).
    if (code === 'ELOOP') throw unsafe(file, `${file} is a symbolic link (to ${readLink(file)}); prodhome never writes or reads through a link there`);
    if (code === 'ENXIO' || code === 'EISDIR') throw unsafe(file, `${file} is not a regular file`);
    throw e;
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile() || st.nlink > 1) {
    fs.closeSync(fd);
    throw unsafe(file, `${file} is ${st.isFile() ? `a hard link (${st.nlink} names for one file)` : 'not a regular file'}; prodhome never writes through it`);
  }
  return fd;
}

/** Runs `use` with a path for `file` that resolves through its directory opened once, not followed if a link. */
function inDir<T>(file: string, use: (name: string, dirPath: string) => T): T {
  const dir = path.dirname(file);
  if (!HAS_PROC_FD) return use(file, dir);
  let dirFd: number;
  try {
    dirFd = fs.openSync(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') throw unsafe(dir, `${dir} (the directory of ${path.basename(file)}) is ${code === 'ELOOP' ? `a symbolic link (to ${readLink(dir)})` : 'not a directory'}; prodhome never writes through a link`);
    throw e;
  }
  try {
    const pinned = `/proc/self/fd/${dirFd}`;
    return use(path.join(pinned, path.basename(file)), pinned);
  } finally {
    fs.closeSync(dirFd);
  }
}

function readLink(p: string): string {
  try {
    return fs.readlinkSync(p);
  } catch {
    return '?';
  }
}

function unsafe(p: string, message: string): ProdhomeError {
  return new ProdhomeError('UNSAFE_PATH', message, {
    hint: `prodhome did not make it so (in a node's directory, the server's OS user or a database superuser can). Look at it; remove it (rm ${p}) unless you made it; then run the command again.`,
  });
}

/** Whether `file` is a regular file this process may execute (a binary looked for by path). */
export function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}
