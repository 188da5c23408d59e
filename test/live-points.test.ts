import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LIVE_POINTS_MAX_AGE_MS, LivePointsWriter, readLivePoints } from '../src/lab/live-points.js';
import { stateFiles } from '../src/lab/index.js';

// How a load run hands its per-second figures to the agent's /metrics: files in the state dir.
describe('live points between prodhome processes', () => {
  let dir: string;
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const point = (time: number, tps: number) => ({ measurement: 'workload', tags: { workload: 'tpcb', node: 'a' }, fields: { tps }, time });

  it("hands a process's latest points over, tagged with its run, and removes its file on close", () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-live-'));
    const writer = new LivePointsWriter(dir);
    const now = Date.now();
    writer.write([point(now - 1000, 10)]);
    writer.write([point(now, 12)]); // replaces, not appends
    expect(readLivePoints(dir, now)).toEqual([{ ...point(now, 12), tags: { workload: 'tpcb', node: 'a', run: String(process.pid) } }]);
    expect(fs.statSync(path.join(stateFiles(dir).live, `${process.pid}.json`)).mode & 0o777).toBe(0o600);
    writer.close();
    expect(readLivePoints(dir, now)).toEqual([]);
    expect(fs.readdirSync(stateFiles(dir).live)).toEqual([]);
  });

  it('leaves out points older than the limit (a run that stalled)', () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-live-'));
    const writer = new LivePointsWriter(dir);
    const now = Date.now();
    writer.write([point(now - LIVE_POINTS_MAX_AGE_MS - 1, 10)]);
    expect(readLivePoints(dir, now)).toEqual([]);
    writer.close();
  });

  it('removes the file of a process that is gone, and only files named after a pid', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-live-'));
    const child = spawn(process.execPath, ['-e', '']);
    const pid = child.pid!;
    await new Promise((r) => child.on('exit', r));
    const live = stateFiles(dir).live;
    fs.mkdirSync(live);
    fs.writeFileSync(path.join(live, `${pid}.json`), JSON.stringify([point(Date.now(), 5)]));
    fs.writeFileSync(path.join(live, 'notes.txt'), 'not ours to judge');
    expect(readLivePoints(dir)).toEqual([]);
    expect(fs.readdirSync(live)).toEqual(['notes.txt']);
  });
});
