import fs from 'node:fs';
import path from 'node:path';
import { isExecutable } from '../fsafe.js';

/** psql to run: PRODHOME_PSQL if set, else beside the node's binaries, on PATH, or Debian's. */
export function findPsql(binDir?: string): string | undefined {
  if (process.env.PRODHOME_PSQL) return isExecutable(process.env.PRODHOME_PSQL) ? process.env.PRODHOME_PSQL : undefined;
  const candidates = [
    ...(binDir ? [path.join(binDir, 'psql')] : []),
    ...(process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, 'psql')),
  ];
  try {
    for (const v of fs.readdirSync('/usr/lib/postgresql').sort().reverse()) candidates.push(path.join('/usr/lib/postgresql', v, 'bin', 'psql'));
  } catch {
    // not a Debian-style install
  }
  return candidates.find(isExecutable);
}
