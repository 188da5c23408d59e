import fs from 'node:fs';
import path from 'node:path';
import { writeFileSafe } from '../fsafe.js';
import type { Point } from '../sinks/index.js';
import { processAlive } from '../runtime/index.js';
import { files } from './state.js';

/**
 * Points another prodhome process (a `load` run) hands to the lab's agent for /metrics: the
 * agent owns the Prometheus endpoint, and a load run's per-second figures belong beside the
 * database's own. Each process keeps one file, `live/<pid>.json`, in the lab's state dir,
 * replaced atomically every second; the agent reads the files when /metrics is asked for.
 * A file lives in the user's own state dir, so no port or token is needed, and a run that
 * died leaves a file the agent removes once its process is gone.
 */

/** Older than this, a file's points are left off /metrics (a run that stalled or ended). */
export const LIVE_POINTS_MAX_AGE_MS = 5000;

export class LivePointsWriter {
  private readonly file: string;

  constructor(stateDir: string) {
    this.file = path.join(files(stateDir).live, `${process.pid}.json`);
  }

  /** Replaces this process's points; a failure (the lab being destroyed) only loses this second. */
  write(points: Point[]): void {
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      writeFileSafe(this.file, JSON.stringify(points), { mode: 0o600 });
    } catch {
      // the state dir went away: nothing to show the agent any more
    }
  }

  close(): void {
    fs.rmSync(this.file, { force: true });
  }
}

/**
 * Every fresh point other processes handed over, each tagged with the `run` (the pid) it came
 * from, so two runs of one workload on one node are two series. Files of processes that are
 * gone are removed.
 */
export function readLivePoints(stateDir: string, now = Date.now()): Point[] {
  const dir = files(stateDir).live;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: Point[] = [];
  for (const name of names) {
    const pid = /^(\d+)\.json$/.exec(name)?.[1];
    if (!pid) continue;
    const file = path.join(dir, name);
    if (!processAlive(Number(pid))) {
      fs.rmSync(file, { force: true });
      continue;
    }
    let points: Point[];
    try {
      points = JSON.parse(fs.readFileSync(file, 'utf8')) as Point[];
    } catch {
      continue; // being replaced right now: next time
    }
    for (const p of points) if (now - p.time <= LIVE_POINTS_MAX_AGE_MS) out.push({ ...p, tags: { ...p.tags, run: pid } });
  }
  return out;
}
