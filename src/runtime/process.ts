import fs from 'node:fs';
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';

/** An unprivileged OS user that servers run as when prodhome itself runs as root. */
export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, as `asUser` when given; never throws on a non-zero exit (nor when `signal` kills it). */
export function run(command: string, args: string[], options: { asUser?: OsUser; env?: NodeJS.ProcessEnv; cwd?: string; input?: string; signal?: AbortSignal } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const spawnOptions: SpawnOptions = { env: options.env ?? process.env, cwd: options.cwd, signal: options.signal, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] };
    if (options.asUser) {
      spawnOptions.uid = options.asUser.uid;
      spawnOptions.gid = options.asUser.gid;
    }
    const child = spawn(command, args, spawnOptions);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // An abort (signal) kills the child; it ends as an exit by that signal, not as an error.
    child.on('error', (e) => (e.name === 'AbortError' ? undefined : reject(e)));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

/** True when `user` may do `test <flag> path` (e.g. -x to traverse, -w to write, -r to read). */
export function userCan(user: OsUser | undefined, flag: '-x' | '-w' | '-r', path: string): boolean {
  const r = spawnSync('test', [flag, path], user ? { uid: user.uid, gid: user.gid } : {});
  return r.status === 0;
}

/** Whether a process exists (a zombie counts as gone once its parent reaps it). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie (exited, not yet reaped by its parent) answers kill(0) but is gone for our purposes.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/** A process's argv, from /proc ([] when it is gone or unreadable). */
export function processArgv(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** The last `n` lines of a program's output, on one line (for error messages). */
export function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}
