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
let pageSize: number | undefined;
/** statm's unit, the kernel's page size (4 KiB on x86-64; 4, 16 or 64 KiB on arm64): VmRSS ÷ resident pages of this process. */
function pageBytes(): number {
  if (pageSize === undefined) {
    const pages = Number(read('/proc/self/statm').split(' ')[1]);
    const bytes = kb(read('/proc/self/status'), 'VmRSS') * 1024;
    const guess = pages > 0 ? bytes / pages : 4096;
    pageSize = [4096, 16384, 65536].reduce((best, p) => (Math.abs(p - guess) < Math.abs(best - guess) ? p : best));
  }
  return pageSize;
}
// /proc/PID/task/TID/children needs CONFIG_PROC_CHILDREN (Debian's and most distributions' kernels).
const hasChildrenFiles = process.platform === 'linux' && fs.existsSync(`/proc/${process.pid}/task/${process.pid}/children`);
const read = (file: string) => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

export class ProcessSampler {
  private readonly previous = new Map<string, { ticks: number; readBytes: number; writeBytes: number; time: number }>();
  /** Each cgroup dir set's memory controller dir (or none), found once: it does not move. */
  private readonly memoryDirs = new Map<string, string | undefined>();

  sample(targets: ProcessTarget[], now = Date.now()): Point[] {
    if (process.platform !== 'linux') return [];
    const points: Point[] = [];
    for (const t of targets) {
      if (!t.pid) continue;
      const tags = { node: t.name, role: t.role };
      const memoryDir = this.memoryDirOf(t.cgroupDirs);
      const pids = memoryDir ? read(path.join(memoryDir, 'cgroup.procs')).split('\n').filter(Boolean).map(Number) : [t.pid, ...childrenOf(t.pid)];
      let ticks = 0;
      let privateBytes = 0;
      let readBytes = 0;
      let writeBytes = 0;
      for (const pid of pids) {
        const stat = read(`/proc/${pid}/stat`);
        const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks += Number(rest[11] ?? 0) + Number(rest[12] ?? 0); // utime, stime
        // Backends that exited were reaped by the postmaster: their CPU is in its cutime/cstime.
        if (pid === t.pid) ticks += Number(rest[13] ?? 0) + Number(rest[14] ?? 0);
        if (!memoryDir) {
          // statm (in pages): resident minus shared is RssAnon, what status says in many more bytes.
          const statm = read(`/proc/${pid}/statm`).split(' ');
          privateBytes += Math.max(0, Number(statm[1] ?? 0) - Number(statm[2] ?? 0)) * pageBytes();
        }
        const io = read(`/proc/${pid}/io`);
        readBytes += Number(/read_bytes: (\d+)/.exec(io)?.[1] ?? 0);
        writeBytes += Number(/^write_bytes: (\d+)/m.exec(io)?.[1] ?? 0);
      }
      // With a cgroup, memory is the cgroup's own count (cgroupFields, below).
      const shared = memoryDir ? 0 : kb(read(`/proc/${t.pid}/status`), 'RssShmem') * 1024;
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

  private memoryDirOf(dirs: string[]): string | undefined {
    const key = dirs.join('\0');
    if (!this.memoryDirs.has(key)) {
      this.memoryDirs.set(key, dirs.find((d) => fs.existsSync(path.join(d, 'memory.usage_in_bytes')) || fs.existsSync(path.join(d, 'memory.current'))));
    }
    return this.memoryDirs.get(key);
  }
}

function kb(status: string, key: string): number {
  return Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
}

/** The postmaster's children: its task's `children` file (one read), else a scan of /proc. */
function childrenOf(pid: number): number[] {
  if (hasChildrenFiles) {
    try {
      return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
    } catch {
      return []; // the postmaster just exited
    }
  }
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
