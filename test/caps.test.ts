import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { labStatus, labUp, readState } from '../src/lab/index.js';
import { appliedMemoryLimit, cgroupSupport, cgroupsOf, runningPid } from '../src/runtime/index.js';
import { ProcessSampler } from '../src/metrics/index.js';
import { withConnection } from '../src/pg/index.js';
import { IN_CI, portRange, tempLab, waitFor } from './helpers.js';

// Resource caps are real cgroup limits on the server's process tree, or visibly "not enforced".
const support = cgroupSupport();
const machineHasCgroups = fs.existsSync('/sys/fs/cgroup/cgroup.controllers') || fs.existsSync('/sys/fs/cgroup/memory');

if (!support.usable) {
  const reason = `cgroup caps cannot be enforced here: ${support.reason}`;
  if (IN_CI && machineHasCgroups && process.getuid?.() === 0) {
    it('cgroups must be usable in CI as root on a machine that has them', () => {
      throw new Error(reason);
    });
  } else {
    console.warn(`\n*** SKIPPING cap enforcement tests: ${reason} ***\n`);
  }
}

const lab = tempLab(`lab: caps\n${portRange(56200)}nodes:\n  tiny:\n    memory: 160MiB\n    cpus: 0.5\n    max_connections: 10\n    shared_buffers: 16MB\n`);
afterAll(() => lab.cleanup());

describe('resource caps', () => {
  it.runIf(support.usable)('memory and cpu caps are applied to the postmaster and its backends', async () => {
    await labUp(lab.config());
    const state = readState(lab.config().stateDir)!;
    const node = state.nodes.tiny!;
    if (node.runtime !== 'local') throw new Error('expected local');
    expect(node.caps.enforced).toBe(true);
    const memoryDir = node.caps.cgroupDirs.find((d) => d.includes('memory')) ?? node.caps.cgroupDirs[0]!;
    expect(appliedMemoryLimit(memoryDir)).toBe(160 * 1024 * 1024);
    // The postmaster and a background process it forked are both inside the node's cgroup.
    const groupName = `${state.labId}-tiny`;
    expect(cgroupsOf(node.pid!).some((line) => line.includes(groupName))).toBe(true);
    const procs = fs.readFileSync(`${memoryDir}/cgroup.procs`, 'utf8').trim().split('\n').map(Number);
    expect(procs).toContain(node.pid);
    expect(procs.length).toBeGreaterThan(3); // checkpointer, walwriter, … are capped too
    if (support.version === 1) {
      const cpuDir = node.caps.cgroupDirs.find((d) => d.includes('/cpu'))!;
      expect(fs.readFileSync(`${cpuDir}/cpu.cfs_quota_us`, 'utf8').trim()).toBe('50000');
    } else {
      expect(fs.readFileSync(`${memoryDir}/cpu.max`, 'utf8').trim()).toBe('50000 100000');
    }
    const status = await labStatus(lab.config());
    expect(status.nodes[0]!.caps).toBe('mem 160MiB, cpu 0.5');
  });

  it.runIf(support.usable)('the cap bites: a big in-memory sort gets its backend killed, and the server recovers', async () => {
    const config = lab.config();
    const { nodeConnection } = await import('../src/lab/index.js');
    const info = nodeConnection(config, 'tiny');
    const hog = withConnection(info, (sql) =>
      sql.unsafe(`set work_mem = '2GB'; select md5(g::text) as h from generate_series(1, 6000000) g order by 1 desc limit 1`),
    );
    await expect(hog).rejects.toThrow();
    // The postmaster survives the OOM kill of its backend, resets, and takes connections again.
    const back = await waitFor(async () => {
      try {
        return await withConnection(info, async (sql) => (await sql`select 1 as ok`)[0]!.ok === 1);
      } catch {
        return false;
      }
    }, 30_000, 'the tiny server to recover');
    expect(back).toBe(true);
    const log = fs.readFileSync((readState(config.stateDir)!.nodes.tiny as { logFile: string }).logFile, 'utf8');
    expect(log).toMatch(/was terminated by signal 9: Killed/);

    // The sampler sees the cap, the OOM kill and the CPU quota from the node's cgroups.
    const node = readState(config.stateDir)!.nodes.tiny as { pid: number; caps: { cgroupDirs: string[] } };
    const [point] = await new ProcessSampler().sample([{ name: 'tiny', role: 'standalone', pid: runningPid((readState(config.stateDir)!.nodes.tiny as { dataDir: string }).dataDir), cgroupDirs: node.caps.cgroupDirs }]);
    expect(point!.fields.memory_limit_bytes).toBe(160 * 1024 * 1024);
    expect(point!.fields.oom_kills).toBeGreaterThanOrEqual(1);
    expect(point!.fields.memory_bytes).toBeLessThanOrEqual(160 * 1024 * 1024);
    expect(point!.fields.cpu_throttled_periods).toEqual(expect.any(Number)); // read from cpu.stat
  });

  it.runIf(!support.usable)('where cgroups are not usable, status says the caps are not enforced', async () => {
    await labUp(lab.config());
    const status = await labStatus(lab.config());
    expect(status.nodes[0]!.caps).toMatch(/^mem 160MiB, cpu 0\.5 \(not enforced: .+\)$/);
  });
});
