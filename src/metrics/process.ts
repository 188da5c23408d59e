import fs from 'node:fs';
import path from 'node:path';
import type { NodeRole } from '../config/index.js';
import type { Point } from './collector.js';

/**
 * Process and cgroup statistics of local nodes, read from /proc and the node's cgroup: what
 * Telegraf's docker input gave the origin. CPU and I/O are per-second rates between samples.
 * Memory is the cgroup's usage when the node has one; otherwise private memory of every
 * process plus the shared memory (shared_buffers) once. Linux only: elsewhere no points.
 */

export interface ProcessTarget {
  name: string;
  role: NodeRole;
  /** The postmaster's pid, or undefined when the node is not running. */
  pid?: number;
  cgroupDirs: string[];
}

const CLOCK_TICKS = 100; // USER_HZ on Linux
const read = (file: string) => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

export class ProcessSampler {
  private readonly previous = new Map<string, { ticks: number; readBytes: number; writeBytes: number; time: number }>();

  sample(targets: ProcessTarget[], now = Date.now()): Point[] {
    if (process.platform !== 'linux') return [];
    const points: Point[] = [];
    for (const t of targets) {
      if (!t.pid) continue;
      const tags = { node: t.name, role: t.role };
      const memoryDir = t.cgroupDirs.find((d) => fs.existsSync(path.join(d, 'memory.usage_in_bytes')) || fs.existsSync(path.join(d, 'memory.current')));
      const pids = memoryDir ? read(path.join(memoryDir, 'cgroup.procs')).split('\n').filter(Boolean).map(Number) : [t.pid, ...childrenOf(t.pid)];
      let ticks = 0;
      let privateBytes = 0;
      let readBytes = 0;
      let writeBytes = 0;
      for (const pid of pids) {
        const stat = read(`/proc/${pid}/stat`);
        const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks += Number(rest[11] ?? 0) + Number(rest[12] ?? 0); // utime, stime
        const status = read(`/proc/${pid}/status`);
        privateBytes += kb(status, 'RssAnon') * 1024;
        const io = read(`/proc/${pid}/io`);
        readBytes += Number(/read_bytes: (\d+)/.exec(io)?.[1] ?? 0);
        writeBytes += Number(/^write_bytes: (\d+)/m.exec(io)?.[1] ?? 0);
      }
      // Backends that exited were reaped by the postmaster: their CPU is in its cutime/cstime.
      const postmaster = read(`/proc/${t.pid}/stat`);
      const pm = postmaster.slice(postmaster.lastIndexOf(')') + 2).split(' ');
      ticks += Number(pm[13] ?? 0) + Number(pm[14] ?? 0);
      const shared = kb(read(`/proc/${t.pid}/status`), 'RssShmem') * 1024;
      // Cumulative CPU and I/O for stores that compute rates themselves (Prometheus), rates below.
      const fields: Record<string, number> = {
        processes: pids.length,
        memory_bytes: privateBytes + shared,
        cpu_seconds: ticks / CLOCK_TICKS,
        read_bytes: readBytes,
        write_bytes: writeBytes,
      };
      const prev = this.previous.get(t.name);
      if (prev && now > prev.time) {
        const seconds = (now - prev.time) / 1000;
        // A process outside the postmaster's children that exited takes its ticks with it:
        // never report a negative rate.
        fields.cpu_percent = Math.max(0, ((ticks - prev.ticks) / CLOCK_TICKS / seconds) * 100);
        fields.read_bytes_rate = Math.max(0, (readBytes - prev.readBytes) / seconds);
        fields.write_bytes_rate = Math.max(0, (writeBytes - prev.writeBytes) / seconds);
      }
      this.previous.set(t.name, { ticks, readBytes, writeBytes, time: now });
      if (memoryDir) Object.assign(fields, cgroupFields(t.cgroupDirs, memoryDir));
      points.push({ measurement: 'process', tags, fields, time: now });
    }
    return points;
  }
}

function kb(status: string, key: string): number {
  return Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
}

function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = read(`/proc/${entry}/stat`);
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) children.push(Number(entry));
  }
  return children;
}

/** Usage against the cap, OOM kills and CPU throttling, from cgroup v1 or v2 files. */
function cgroupFields(dirs: string[], memoryDir: string): Record<string, number> {
  const f: Record<string, number> = {};
  const v1 = fs.existsSync(path.join(memoryDir, 'memory.usage_in_bytes'));
  f.memory_bytes = Number(read(path.join(memoryDir, v1 ? 'memory.usage_in_bytes' : 'memory.current')).trim());
  const limit = read(path.join(memoryDir, v1 ? 'memory.limit_in_bytes' : 'memory.max')).trim();
  if (limit && limit !== 'max') f.memory_limit_bytes = Number(limit);
  const events = read(path.join(memoryDir, v1 ? 'memory.oom_control' : 'memory.events'));
  f.oom_kills = Number(/oom_kill (\d+)/.exec(events)?.[1] ?? 0);
  for (const dir of dirs) {
    const cpu = read(path.join(dir, 'cpu.stat'));
    if (!cpu) continue;
    f.cpu_throttled_periods = Number(/nr_throttled (\d+)/.exec(cpu)?.[1] ?? 0);
    const v1Time = /throttled_time (\d+)/.exec(cpu)?.[1];
    const v2Time = /throttled_usec (\d+)/.exec(cpu)?.[1];
    f.cpu_throttled_seconds = v1Time ? Number(v1Time) / 1e9 : Number(v2Time ?? 0) / 1e6;
  }
  return f;
}
