import fs from 'node:fs';
import path from 'node:path';
import { processAlive, sleep } from '../runtime/index.js';
import type { FaultRecord } from './types.js';

/**
 * The lab's active faults, in `<stateDir>/faults.json` (no secrets): written to a temp file and
 * renamed, so a reader never sees half a file; changed under `faults.lock` (O_EXCL, the owner's
 * pid inside; a dead owner's lock is taken over), so two commands never lose each other's record.
 */

export interface FaultsFile {
  /** The next fault id. */
  next: number;
  faults: FaultRecord[];
}

export const faultsFile = (stateDir: string) => path.join(stateDir, 'faults.json');

export function readFaults(stateDir: string): FaultsFile {
  try {
    const parsed = JSON.parse(fs.readFileSync(faultsFile(stateDir), 'utf8')) as FaultsFile;
    return { next: parsed.next ?? 1, faults: parsed.faults ?? [] };
  } catch {
    return { next: 1, faults: [] };
  }
}

function writeFaults(stateDir: string, file: FaultsFile): void {
  const target = faultsFile(stateDir);
  const tmp = `${target}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o644 });
  fs.renameSync(tmp, target);
}

/** Runs `change` on faults.json under its lock and writes what it leaves. */
export async function updateFaults<T>(stateDir: string, change: (file: FaultsFile) => Promise<T> | T): Promise<T> {
  const lock = path.join(stateDir, 'faults.lock');
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const fd = fs.openSync(lock, 'wx', 0o644);
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(readOr(lock).trim());
      if (!(owner > 0 && owner !== process.pid && processAlive(owner))) {
        fs.rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`faults.json is locked by pid ${owner}`);
      await sleep(20);
    }
  }
  try {
    const file = readFaults(stateDir);
    const result = await change(file);
    writeFaults(stateDir, file);
    return result;
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
