import fs from 'node:fs';
import { ProdhomeError } from '../errors.js';

/**
 * Reading files a config names — the config itself, its `schema:` and `seed:` files — with the
 * care a shared config deserves: only regular files (a FIFO would hang us, /dev/zero would eat
 * all memory), no more than a cap, and, when prodhome runs as root, only files anyone could read
 * (root's privilege must not turn a config into a way to print /etc/shadow).
 */

const MiB = 1024 * 1024;
/** A config file: far above any real one (the default lab is 4 KiB); parsing costs ~40× its size. */
export const CONFIG_FILE_CAP = 1 * MiB;
/** A `schema:` file is sent to the server whole, in one statement batch. */
export const SCHEMA_FILE_CAP = 64 * MiB;
/** A `seed:` CSV is loaded from memory; bigger data belongs to `prodhome import` (streamed). */
export const SEED_FILE_CAP = 64 * MiB;

export interface ReadLimits {
  /** What the file is, for messages: "config file", "schema file", "seed file". */
  what: string;
  cap: number;
  /** Where the config names it ("prodhome.yaml: schema[0].file"), for messages. */
  where?: string;
  hint?: string;
  /** The config file's owner: as root, a file they own may be read without being world-readable. */
  trustedUid?: number;
  /** False for the config file itself: the user named it; root may read their own 0600 config. */
  checkPrivilege?: boolean;
}

const KIND: [(s: fs.Stats) => boolean, string][] = [
  [(s) => s.isDirectory(), 'a directory'],
  [(s) => s.isFIFO(), 'a FIFO'],
  [(s) => s.isCharacterDevice(), 'a character device'],
  [(s) => s.isBlockDevice(), 'a block device'],
  [(s) => s.isSocket(), 'a socket'],
];

/**
 * The text of a regular file of at most `cap` bytes. Opened non-blocking (so a FIFO cannot hang
 * the open), then checked on the open descriptor (so what is checked is what is read).
 */
export function readBoundedFile(file: string, limits: ReadLimits): string {
  const at = limits.where ? `${limits.where}: ` : '';
  const refuse = (why: string, hint?: string) => new ProdhomeError(limits.where ? 'CONFIG_INVALID' : 'CONFIG_NOT_FOUND', `${at}${why}`, { hint: hint ?? limits.hint });
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (e) {
    throw refuse(`cannot read ${limits.what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) {
      const kind = KIND.find(([is]) => is(st))?.[1] ?? 'not a regular file';
      throw refuse(`${limits.what} ${file} is ${kind}, not a regular file; a ${limits.what} must be a regular file`, `Name a regular file (a copy of its content) instead.`);
    }
    if (st.size > limits.cap) {
      throw refuse(`${limits.what} ${file} is ${mib(st.size, 1)}; a ${limits.what} is at most ${mib(limits.cap)}`, limits.hint);
    }
    if (limits.checkPrivilege !== false && process.getuid?.() === 0 && !(st.mode & 0o004) && !(st.uid !== 0 && st.uid === limits.trustedUid && st.mode & 0o400)) {
      throw refuse(
        `${limits.what} ${file} is not readable by everyone (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, owner uid ${st.uid}); prodhome runs as root and reads only files that need no privilege to read`,
        `If this file is meant for prodhome, make it readable (chmod o+r ${file}), or run prodhome as a normal user.`,
      );
    }
    // Read to the end but never past the cap: a file may grow after fstat, and some (in /proc)
    // claim a size of 0 and still have content.
    const chunks: Buffer[] = [];
    let length = 0;
    for (;;) {
      const chunk = Buffer.alloc(64 * 1024);
      const n = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      length += n;
      if (length > limits.cap) throw refuse(`${limits.what} ${file} holds more than ${mib(limits.cap)}; a ${limits.what} is at most that`, limits.hint);
    }
    return Buffer.concat(chunks, length).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** 1 MiB, 2.3 MiB: sizes as people write them; `digits` fixed decimals for a measured size. */
function mib(bytes: number, digits?: number): string {
  return `${digits === undefined ? +(bytes / MiB).toFixed(3) : (bytes / MiB).toFixed(digits)} MiB`;
}
