import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { NodeRole } from '../config/index.js';
import type { Point } from '../sinks/index.js';

/**
 * Process and cgroup statistics of local nodes, read from /proc and the node's cgroup: what
 * Telegraf's docker input gave the origin. CPU and I/O are per-second rates between samples.
 * Memory is the cgroup's usage when the node has one; otherwise private memory of every
 * process plus the shared memory (shared_buffers) once. Elsewhere (macOS) what `ps` offers:
 * process count, CPU time and resident memory (shared memory counted once per process that
 * touched it, as `ps` cannot tell it apart), no I/O and no cgroup.
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

/**
 * Small /proc and cgroup files read through descriptors kept open between samples: a read is
 * one pread at offset 0 (the kernel makes the text afresh), not open, fstat, read and close —
 * at 4 Hz on a few nodes that is most of the sampler's system time. A descriptor not read in a
 * sample (a backend that exited) is closed by `sweep`; one whose process died reads as ''.
 */
class KeptOpenFiles {
  private readonly fds = new Map<string, number>();
  private readonly readSinceSweep = new Set<string>();
  private readonly buffer = Buffer.allocUnsafe(16384);

  read(file: string): string {
    this.readSinceSweep.add(file);
    let fd = this.fds.get(file);
    try {
      if (fd === undefined) this.fds.set(file, (fd = fs.openSync(file, 'r')));
      const n = fs.readSync(fd, this.buffer, 0, this.buffer.length, 0);
      // latin1: these files are ASCII, and it is the cheapest decoding
      return n < this.buffer.length ? this.buffer.toString('latin1', 0, n) : read(file);
    } catch {
      this.close(file);
      return '';
    }
  }

  /** Closes the descriptors nobody read since the last sweep. */
  sweep(): void {
    for (const file of this.fds.keys()) if (!this.readSinceSweep.has(file)) this.close(file);
    this.readSinceSweep.clear();
  }

  closeAll(): void {
    for (const file of [...this.fds.keys()]) this.close(file);
  }

  private close(file: string): void {
    const fd = this.fds.get(file);
    this.fds.delete(file);
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** A node's cgroup files, found once (a cgroup's controllers do not change under it). */
interface CgroupFiles {
  procs: string;
  usage: string;
  stat: string;
  limit: string;
  events: string;
  v1: boolean;
  /** cpu.stat of each dir that has one */
  cpuStats: string[];
}

export interface ProcessSamplerOptions {
  /** Where the figures come from: /proc on Linux (the default there), `ps` elsewhere. */
  source?: 'proc' | 'ps';
}

export class ProcessSampler {
  /** Each node's cumulative figures at its last sample, for the rates. */
  private readonly previous = new Map<string, { cpuSeconds: number; readBytes?: number; writeBytes?: number; time: number }>();
  /** Each cgroup dir set's files (or none, without a memory controller), found once: they do not move. */
  private readonly cgroups = new Map<string, CgroupFiles | undefined>();
  private readonly files = new KeptOpenFiles();
  private readonly source: 'proc' | 'ps';

  constructor(options: ProcessSamplerOptions = {}) {
    this.source = options.source ?? (process.platform === 'linux' ? 'proc' : 'ps');
  }

  /** One point per running target. Async because `ps` is a child process: the agent's loop must not wait on it. */
  async sample(targets: ProcessTarget[], now = Date.now()): Promise<Point[]> {
    if (this.source === 'ps') return this.sampleFromPs(targets, now);
    const points: Point[] = [];
    const read = (file: string) => this.files.read(file);
    for (const t of targets) {
      if (!t.pid) continue;
      const tags = { node: t.name, role: t.role };
      const cgroup = this.cgroupOf(t.cgroupDirs);
      const pids = cgroup ? read(cgroup.procs).split('\n').filter(Boolean).map(Number) : [t.pid, ...childrenOf(t.pid)];
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
        if (!cgroup) {
          // statm (in pages): resident minus shared is RssAnon, what status says in many more bytes.
          const statm = read(`/proc/${pid}/statm`).split(' ');
          privateBytes += Math.max(0, Number(statm[1] ?? 0) - Number(statm[2] ?? 0)) * pageBytes();
        }
        const io = read(`/proc/${pid}/io`);
        readBytes += Number(/read_bytes: (\d+)/.exec(io)?.[1] ?? 0);
        writeBytes += Number(/^write_bytes: (\d+)/m.exec(io)?.[1] ?? 0);
      }
      // With a cgroup, memory is the cgroup's own count (cgroupFields, below).
      const shared = cgroup ? 0 : kb(read(`/proc/${t.pid}/status`), 'RssShmem') * 1024;
      // Cumulative CPU and I/O for stores that compute rates themselves (Prometheus), rates below.
      const fields: Record<string, number> = {
        processes: pids.length,
        memory_bytes: privateBytes + shared,
        memory_rss_bytes: privateBytes + shared,
        cpu_seconds: ticks / CLOCK_TICKS,
        read_bytes: readBytes,
        write_bytes: writeBytes,
      };
      this.addRates(t.name, fields, now);
      if (cgroup) Object.assign(fields, cgroupFields(cgroup, read));
      points.push({ measurement: 'process', tags, fields, time: now });
    }
    this.files.sweep();
    return points;
  }

  /** Closes the files it keeps open. */
  close(): void {
    this.files.closeAll();
  }

  /** One `ps` listing of every process per sample; each node is its postmaster and its children. */
  private async sampleFromPs(targets: ProcessTarget[], now: number): Promise<Point[]> {
    const running = targets.filter((t) => t.pid);
    if (!running.length) return [];
    const listing = await psListing();
    if (!listing) return [];
    const points: Point[] = [];
    for (const t of running) {
      const tree = listing.filter((p) => p.pid === t.pid || p.ppid === t.pid);
      if (!tree.some((p) => p.pid === t.pid)) continue; // the postmaster just exited
      const seconds = tree.reduce((sum, p) => sum + p.cpuSeconds, 0);
      const fields: Record<string, number> = {
        processes: tree.length,
        memory_bytes: tree.reduce((sum, p) => sum + p.rssBytes, 0),
        cpu_seconds: seconds,
      };
      this.addRates(t.name, fields, now);
      points.push({ measurement: 'process', tags: { node: t.name, role: t.role }, fields, time: now });
    }
    return points;
  }

  /**
   * CPU % and I/O bytes per second since the node's last sample, from the cumulative fields. A
   * process outside the postmaster's children that exited takes its CPU time with it: never a
   * negative rate.
   */
  private addRates(node: string, fields: Record<string, number>, now: number): void {
    const current = { cpuSeconds: fields.cpu_seconds!, readBytes: fields.read_bytes, writeBytes: fields.write_bytes, time: now };
    const prev = this.previous.get(node);
    this.previous.set(node, current);
    if (!prev || now <= prev.time) return;
    const seconds = (now - prev.time) / 1000;
    fields.cpu_percent = Math.max(0, ((current.cpuSeconds - prev.cpuSeconds) / seconds) * 100);
    if (current.readBytes !== undefined && prev.readBytes !== undefined) fields.read_bytes_rate = Math.max(0, (current.readBytes - prev.readBytes) / seconds);
    if (current.writeBytes !== undefined && prev.writeBytes !== undefined) fields.write_bytes_rate = Math.max(0, (current.writeBytes - prev.writeBytes) / seconds);
  }

  private cgroupOf(dirs: string[]): CgroupFiles | undefined {
    const key = dirs.join('\0');
    if (!this.cgroups.has(key)) {
      const has = (dir: string, file: string) => fs.existsSync(path.join(dir, file));
      const memoryDir = dirs.find((d) => has(d, 'memory.usage_in_bytes') || has(d, 'memory.current'));
      const v1 = memoryDir !== undefined && has(memoryDir, 'memory.usage_in_bytes');
      const at = (file: string) => path.join(memoryDir!, file);
      this.cgroups.set(
        key,
        memoryDir === undefined
          ? undefined
          : {
              procs: at('cgroup.procs'),
              usage: at(v1 ? 'memory.usage_in_bytes' : 'memory.current'),
              stat: at('memory.stat'),
              limit: at(v1 ? 'memory.limit_in_bytes' : 'memory.max'),
              events: at(v1 ? 'memory.oom_control' : 'memory.events'),
              v1,
              cpuStats: dirs.filter((d) => has(d, 'cpu.stat')).map((d) => path.join(d, 'cpu.stat')),
            },
      );
    }
    return this.cgroups.get(key);
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
function cgroupFields(files: CgroupFiles, read: (file: string) => string): Record<string, number> {
  const f: Record<string, number> = {};
  f.memory_bytes = Number(read(files.usage).trim());
  // Usage counts page cache the kernel can drop at will: RSS (with shared memory, which holds
  // shared_buffers) and the rest of the cache are kept apart, so a "full" cap reads right.
  const stat = read(files.stat);
  const stat1 = (key: string) => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(stat)?.[1] ?? NaN);
  const [anon, file, shmem] = files.v1 ? [stat1('total_rss'), stat1('total_cache'), stat1('total_shmem')] : [stat1('anon'), stat1('file'), stat1('shmem')];
  if (Number.isFinite(anon) && Number.isFinite(file)) {
    const shared = Number.isFinite(shmem) ? shmem : 0;
    f.memory_rss_bytes = anon + shared;
    f.memory_cache_bytes = Math.max(0, file - shared);
  }
  const limit = read(files.limit).trim();
  if (limit && limit !== 'max') f.memory_limit_bytes = Number(limit);
  f.oom_kills = Number(/oom_kill (\d+)/.exec(read(files.events))?.[1] ?? 0);
  for (const cpuStat of files.cpuStats) {
    const cpu = read(cpuStat);
    if (!cpu) continue;
    f.cpu_throttled_periods = Number(/nr_throttled (\d+)/.exec(cpu)?.[1] ?? 0);
    const v1Time = /throttled_time (\d+)/.exec(cpu)?.[1];
    const v2Time = /throttled_usec (\d+)/.exec(cpu)?.[1];
    f.cpu_throttled_seconds = v1Time ? Number(v1Time) / 1e9 : Number(v2Time ?? 0) / 1e6;
  }
  return f;
}

interface PsProcess {
  pid: number;
  ppid: number;
  rssBytes: number;
  cpuSeconds: number;
}

/** Every process's pid, parent, resident KiB and CPU time, from the `ps` of macOS, the BSDs and procps. */
function psListing(): Promise<PsProcess[] | undefined> {
  return new Promise((resolve) => {
    execFile('ps', ['-A', '-o', 'pid=,ppid=,rss=,time='], { encoding: 'utf8', timeout: 5000 }, (error, stdout) => resolve(error ? undefined : parsePsListing(stdout)));
  });
}

export function parsePsListing(text: string): PsProcess[] {
  const processes: PsProcess[] = [];
  for (const line of text.split('\n')) {
    const [pid, ppid, rss, time] = line.trim().split(/\s+/);
    const cpuSeconds = time === undefined ? undefined : parseCpuTime(time);
    if (!pid || cpuSeconds === undefined) continue;
    processes.push({ pid: Number(pid), ppid: Number(ppid), rssBytes: Number(rss) * 1024, cpuSeconds });
  }
  return processes;
}

/**
 * `ps`'s CPU time in seconds: macOS and the BSDs print [[DD-]HH:]MM:SS.cc ("0:01.25",
 * "1:02:03.04"), procps [DD-]HH:MM:SS ("00:00:01", "2-03:04:05"). Undefined for anything else.
 */
export function parseCpuTime(text: string): number | undefined {
  const m = /^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$/.exec(text);
  if (!m) return undefined;
  return Number(m[1] ?? 0) * 86400 + Number(m[2] ?? 0) * 3600 + Number(m[3]) * 60 + Number(m[4]);
}
