// Helpers the benchmarks share: running commands, medians, temp dirs, and cleaning up after an
// interrupted run. Each bench stays one readable file of what it measures.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = path.join(ROOT, 'bin', 'prodhome.js');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const secs = (ms) => (ms / 1000).toFixed(2);

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * The command line every bench shares: `--rounds N` (or BENCH_ROUNDS, else `defaultRounds`) and
 * `--json`, plus the bench's own `options` (parseArgs style). Options named in `integers` must be
 * positive integers and come back as numbers. A mistake, or a dist/ without `needs` (a path under
 * dist/), ends the process with exit 2 and a line saying what to do.
 */
export function benchArgs({ usage, options = {}, integers = [], defaultRounds = 3, needs }) {
  let values;
  try {
    values = parseArgs({ options: { rounds: { type: 'string' }, json: { type: 'boolean', default: false }, ...options } }).values;
  } catch (e) {
    console.error(`bench: ${e.message}\nusage: ${usage}`);
    process.exit(2);
  }
  values.rounds ??= process.env.BENCH_ROUNDS ?? String(defaultRounds);
  for (const name of ['rounds', ...integers]) {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < 1) {
      console.error(`bench: --${name} wants a positive integer, got ${values[name]}\nusage: ${usage}`);
      process.exit(2);
    }
    values[name] = n;
  }
  if (needs && !fs.existsSync(path.join(ROOT, 'dist', needs))) {
    console.error(`bench: dist/${needs} is missing; run \`npm run build\` first`);
    process.exit(2);
  }
  return values;
}

/** A file's text, or `fallback` when it cannot be read (a process that exited, a file not yet written). */
export function readOr(file, fallback = '') {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
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
/**
 * One round of a same-run comparison: prodhome first in odd rounds, the reference first in even
 * ones (so neither always meets a warm or a cold machine), checking for Ctrl-C between the two.
 */
export async function alternately(round, timeProdhome, timeReference, checkInterrupted) {
  const prodhomeFirst = round % 2 === 1;
  let p;
  let ref;
  if (prodhomeFirst) {
    p = await timeProdhome();
    checkInterrupted();
    ref = await timeReference();
  } else {
    ref = await timeReference();
    checkInterrupted();
    p = await timeProdhome();
  }
  checkInterrupted();
  return { prodhomeFirst, p, ref };
}

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

/**
 * After a failure: stop every server the lab in `cwd` holds, then destroy it. Servers are stopped
 * first because an up killed between starting them and writing state.json leaves postmasters that
 * `destroy` cannot know about (they are detached, so our Ctrl-C does not reach them either).
 */
export async function rescueLab(cwd, lab) {
  const stateDir = path.join(cwd, '.prodhome', lab);
  if (!fs.existsSync(stateDir)) return;
  const { SYSTEM_ROOT } = await import('../dist/lab/lifecycle.js');
  const { labIdFor } = await import('../dist/lab/state.js');
  const { removeCgroups } = await import('../dist/runtime/cgroups.js');
  let state;
  try {
    state = JSON.parse(fs.readFileSync(path.join(stateDir, 'state.json'), 'utf8'));
  } catch {
    state = undefined;
  }
  await stopStragglers(stateDir);
  if (state?.dataRoot) await stopStragglers(state.dataRoot);
  // Their cgroups (<labId>-<node>, under the v2 root or each v1 controller) go with them.
  const labId = labIdFor(lab, stateDir);
  const cgroupParents = ['', 'memory', 'cpu', 'cpu,cpuacct'].map((c) => path.join('/sys/fs/cgroup', c, 'prodhome'));
  await removeCgroups(
    cgroupParents.flatMap((parent) => (fs.existsSync(parent) ? fs.readdirSync(parent).filter((n) => n.startsWith(`${labId}-`)).map((n) => path.join(parent, n)) : [])),
  );
  const r = await run(process.execPath, [CLI, 'destroy', '--yes'], { cwd }).catch(() => ({ code: -1 }));
  if (r.code === 0) return;
  // destroy failed too: stop the agent ourselves, and remove data kept outside the temp dir
  // (a root-run lab under an unreachable home keeps it under SYSTEM_ROOT/labs).
  const agentPid = Number(readOr(path.join(stateDir, 'agent.pid')).trim());
  if (agentPid > 0) {
    try {
      process.kill(agentPid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  if (state?.dataRoot?.startsWith(path.join(SYSTEM_ROOT, 'labs') + path.sep)) removeDir(state.dataRoot);
}
