// Helpers the benchmarks share: running commands, medians, temp dirs, and cleaning up after an
// interrupted run. Each bench stays one readable file of what it measures.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const secs = (ms) => (ms / 1000).toFixed(2);

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Lines for people: on stdout, or on stderr when stdout carries --json. */
export const logger = (json) => (line) => (json ? process.stderr : process.stdout).write(`${line}\n`);

/**
 * A Ctrl-C reaches our children too (same process group); they fail, and the benches' finally
 * blocks clean up. It is only noted here, instead of dying on the spot with a lab left running;
 * a second one quits at once. Returns the check to call between steps.
 */
export function watchInterrupts() {
  let interrupted;
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      if (interrupted) process.exit(130);
      interrupted = sig;
    });
  }
  return () => {
    if (interrupted) throw new Error(`interrupted by ${interrupted}`);
  };
}

/** The error for a command that failed, with its own last words. */
export function failure(what, r) {
  const tail = (r.stderr || r.stdout).trim().split('\n').slice(-6).join('\n    ');
  return new Error(`${what} failed (${r.signal ?? `exit ${r.code}`}):\n    ${tail}`);
}

/**
 * Runs a command to completion. `ms` is spawn-to-exit wall-clock. We resolve on 'close' (all
 * output read) but give up waiting for it shortly after 'exit', in case a detached grandchild
 * (the agent, a postmaster) kept a pipe open.
 */
export function run(command, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let stdout = '';
    let stderr = '';
    let ms;
    let code;
    let signal;
    let timer;
    const done = () => {
      clearTimeout(timer);
      resolve({ code, signal, ms, started, stdout, stderr });
    };
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (c, s) => {
      ms = performance.now() - started;
      code = c;
      signal = s;
      timer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        done();
      }, 1000);
    });
    child.on('close', done);
  });
}

/** Like run(), but throws with the command's own last words when it fails. */
export async function mustRun(what, command, args, opts) {
  const r = await run(command, args, opts);
  if (r.code !== 0) throw failure(what, r);
  return r;
}

export function makeTempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755); // the server user must traverse it to reach the data dirs
  return dir;
}

/** Retries because an interrupted initdb may still be deleting its own data dir beside us. */
export function removeDir(dir) {
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
}

/** Pids of live processes with an argument inside `dir` (postmasters, initdbs, their shells). */
export function processesUnder(dir) {
  const inside = dir + path.sep;
  let entries = [];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return []; // no /proc (macOS): nothing more we can find
  }
  const pids = [];
  for (const name of entries) {
    const pid = Number(name);
    if (!pid || pid === process.pid) continue;
    try {
      // A zombie's cmdline is empty, so exited-but-unreaped servers do not count.
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(inside)) pids.push(pid);
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

/**
 * Last resort, after a failure: a detached postmaster that had not yet written postmaster.pid
 * is invisible to pg_ctl and prodhome, and would outlive its deleted data dir. Each is ended by
 * pid with SIGINT (Postgres' fast shutdown), and SIGKILL if it is still there after 10 s.
 */
export async function stopStragglers(dir) {
  const signal = (pids, sig) => pids.forEach((pid) => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  });
  // Rescan each time: a shell may exec a server after we look. A repeated SIGINT is harmless.
  let pids = processesUnder(dir);
  for (const deadline = Date.now() + 10_000; pids.length && Date.now() < deadline; pids = processesUnder(dir)) {
    signal(pids, 'SIGINT');
    await sleep(50);
  }
  signal(pids, 'SIGKILL');
}
