import fs from 'node:fs';
import type { LabConfig } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { readFileSafe } from '../fsafe.js';
import { sleep } from '../runtime/index.js';
import { nodeConnection } from './nodes.js';
import { files, readState } from './state.js';

/**
 * Node and agent logs for `prodhome logs`: one log's tail, or every log of the lab merged line
 * by line with the name of whose it is (as `docker compose logs` does), then followed.
 */

export interface LogSource {
  name: string;
  file: string;
}

/** The log file of a node, or of the agent. */
export function logFileOf(config: LabConfig, name: string): string {
  if (name === 'agent') return files(config.stateDir).agentLog;
  const node = readState(config.stateDir)?.nodes[name];
  if (node?.runtime === 'local') return node.logFile;
  if (node?.runtime === 'external') {
    throw new ProdhomeError('USAGE', `${name} is an external server; its logs are wherever that server keeps them`);
  }
  nodeConnection(config, name); // throws the right "unknown node" / "not up" error
  throw new ProdhomeError('LAB_NOT_UP', `node "${name}" has no log yet`, { hint: 'Run `prodhome up` first.' });
}

/** Every log the lab keeps: each local node's, in config order, then the agent's. */
export function labLogs(config: LabConfig): LogSource[] {
  const state = readState(config.stateDir);
  if (!state) throw new ProdhomeError('LAB_NOT_UP', `lab "${config.lab}" has not been brought up here`, { hint: 'Run `prodhome up` first.' });
  const nodes = config.nodes.flatMap((n) => {
    const s = state.nodes[n.name];
    return s?.runtime === 'local' ? [{ name: n.name, file: s.logFile }] : [];
  });
  return [...nodes, { name: 'agent', file: files(config.stateDir).agentLog }];
}

/** The last `lines` lines of a log (all of it when undefined); '' when there is none yet. */
export function readLogTail(file: string, lines?: number): string {
  // A node's log lies in a directory the server user owns: never follow a link planted there.
  const text = readFileSafe(file) ?? '';
  if (lines === undefined) return text;
  const all = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
  return lines > 0 && text ? `${all.slice(-lines).join('\n')}\n` : '';
}

/**
 * Hands `onLine` each whole line appended to any of `sources` from now on, with its source,
 * until `signal` aborts (or for ever). A file that is truncated or recreated is read afresh.
 */
export async function followLogs(sources: readonly LogSource[], onLine: (source: LogSource, line: string) => void, signal?: AbortSignal): Promise<void> {
  // lstat and O_NOFOLLOW: a link or FIFO planted in place of a log is never followed.
  const size = (file: string) => {
    const st = fs.lstatSync(file, { throwIfNoEntry: false });
    return st?.isFile() ? st.size : 0;
  };
  const tails = sources.map((source) => ({ source, offset: size(source.file), partial: '' }));
  while (!signal?.aborted) {
    await sleep(200);
    for (const t of tails) {
      const now = size(t.source.file);
      if (now < t.offset) t.offset = 0;
      if (now === t.offset) continue;
      let fd: number;
      try {
        fd = fs.openSync(t.source.file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      } catch {
        continue; // replaced meanwhile (by a link: ELOOP); tried again next round
      }
      try {
        const buf = Buffer.alloc(now - t.offset);
        fs.readSync(fd, buf, 0, buf.length, t.offset);
        const lines = (t.partial + buf.toString('utf8')).split('\n');
        t.partial = lines.pop()!;
        for (const line of lines) onLine(t.source, line);
      } finally {
        fs.closeSync(fd);
      }
      t.offset = now;
    }
  }
}
