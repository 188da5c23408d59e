import fs from 'node:fs';
import { sleep } from '../runtime/index.js';

/** Reading node and agent logs: `prodhome logs` prints the tail, then follows. */

/** The end of a log file (its last `lines` lines, or all of it); '' when there is none yet. */
export function readLogTail(file: string, lines?: number): string {
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  return lines === undefined ? text : text.split('\n').slice(-(lines + 1)).join('\n');
}

/** Hands `onChunk` what is appended to `file` from now on, until `signal` aborts (or for ever). */
export async function followLog(file: string, onChunk: (chunk: Buffer) => void, signal?: AbortSignal): Promise<void> {
  let offset = fs.existsSync(file) ? fs.statSync(file).size : 0;
  while (!signal?.aborted) {
    await sleep(200);
    const size = fs.existsSync(file) ? fs.statSync(file).size : 0;
    if (size < offset) offset = 0; // truncated or recreated
    if (size > offset) {
      const fd = fs.openSync(file, 'r');
      try {
        const buf = Buffer.alloc(size - offset);
        fs.readSync(fd, buf, 0, buf.length, offset);
        onChunk(buf);
      } finally {
        fs.closeSync(fd);
      }
      offset = size;
    }
  }
}
