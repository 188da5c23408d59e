import fs from 'node:fs';
import { ProdhomeError } from '../errors.js';
import { processAlive } from '../runtime/index.js';

/**
 * One command at a time changes a lab: `up`, `down` and `destroy` hold `lock` (O_EXCL, holding
 * the owner's pid). A lock whose owner died is taken over.
 */
export function acquireLock(lockFile: string, lab: string, command: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      // O_EXCL: a file (or link) already there is never opened, let alone written through.
      const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
      const fd = fs.openSync(lockFile, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644);
      fs.writeSync(fd, `${process.pid} ${command}\n`);
      fs.closeSync(fd);
      return () => fs.rmSync(lockFile, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const [pidText, other] = readOr(lockFile).trim().split(' ');
      const pid = Number(pidText);
      if (pid > 0 && pid !== process.pid && processAlive(pid)) {
        throw new ProdhomeError('LAB_LOCKED', `lab "${lab}" is busy: \`prodhome ${other ?? '?'}\` (pid ${pid}) is changing it`, {
          hint: 'Wait for it to finish, then run the command again.',
        });
      }
      fs.rmSync(lockFile, { force: true });
    }
  }
  throw new ProdhomeError('LAB_LOCKED', `lab "${lab}": could not take the lock ${lockFile}`);
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
