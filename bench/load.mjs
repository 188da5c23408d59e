#!/usr/bin/env node
// Benchmark: `prodhome load` against pgbench on the same server, at the same scale, in the same
// run, workload by workload:
//   tpcb           prodhome load tpcb               vs  pgbench (tpcb-like)
//   select-only    prodhome load custom <its -S script>   vs  pgbench -b select-only (-S)
//   simple-update  prodhome load custom <its -N script>   vs  pgbench -b simple-update (-N)
//   sleep100/sleep500  select-only with `\sleep 100 us` / `\sleep 500 us` before the SELECT, both -f
//   pipeline       ten SELECTs between \startpipeline and \endpipeline, -M extended, both -f (a
//                  script prodhome refused would be run by pgbench alone, and the row would say so)
// (the scripts are pgbench's own, from --show-script), at each client count, `-j` threads on both
// sides. Each round runs both, in alternating order, each from the same state (pgbench_history
// truncated, tables vacuumed, a checkpoint), after an untimed warm-up. Reports TPS of both, their
// ratio (target >= 0.9) and client CPU: per transaction, and per second of server CPU. Medians
// over rounds; PASS/MISS; exits non-zero only when something fails to run, never on speed.
//
//   node bench/load.mjs [--rounds N] [--seconds S] [--workloads tpcb,select-only,...] [--clients 4,8]
//                       [--jobs J] [--pgbench-jobs J] [--scales 1,10] [--json]
//   (--jobs: prodhome's threads, --pgbench-jobs: pgbench's -j; both 2 by default, thread for thread)
//   (or BENCH_ROUNDS=N; needs `npm run build` and pgbench: BENCH_PGBENCH, else
//   /usr/lib/postgresql/15/bin/pgbench, else pgbench on PATH)

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchArgs, CLI, logger, median, watchInterrupts } from './lib.mjs';

const LAB = 'benchload';
const PORTS = { from: 57290, to: 57299 };
const TARGET_RATIO = 0.9;

// ---- arguments ------------------------------------------------------------------------------

const WORKLOADS = ['tpcb', 'select-only', 'simple-update', 'sleep100', 'sleep500', 'pipeline'];
const args = benchArgs({
  usage: 'node bench/load.mjs [--rounds N] [--seconds S] [--workloads tpcb,select-only,simple-update,sleep100,sleep500,pipeline] [--clients 4,8] [--jobs J] [--pgbench-jobs J] [--scales 1,10] [--json]',
  options: {
    seconds: { type: 'string', default: '10' },
    workloads: { type: 'string', default: 'tpcb,select-only,simple-update' },
    clients: { type: 'string', default: '4,8' },
    jobs: { type: 'string', default: '2' },
    'pgbench-jobs': { type: 'string', default: '2' },
    scales: { type: 'string', default: '1' },
  },
  integers: ['seconds', 'jobs', 'pgbench-jobs'],
  needs: 'workload/index.js',
});
const { rounds, json, seconds } = args;
const list = (name, ok) => {
  const xs = args[name].split(',').map((x) => x.trim());
  if (!xs.every(ok)) {
    console.error(`bench: --${name} ${args[name]}: not understood`);
    process.exit(2);
  }
  return xs;
};
const workloads = list('workloads', (w) => WORKLOADS.includes(w));
const clientCounts = list('clients', (n) => Number.isInteger(Number(n)) && Number(n) >= 1).map(Number);
const jobs = args.jobs;
const pgbenchJobs = String(args['pgbench-jobs']);
const scales = list('scales', (n) => Number.isInteger(Number(n)) && Number(n) >= 1).map(Number);
const PGBENCH = [process.env.BENCH_PGBENCH, '/usr/lib/postgresql/15/bin/pgbench', spawnSync('sh', ['-c', 'command -v pgbench'], { encoding: 'utf8' }).stdout.trim()].find(
  (p) => p && fs.existsSync(p),
);
if (!PGBENCH) {
  console.error('bench: pgbench not found (the reference); set BENCH_PGBENCH=/path/to/pgbench');
  process.exit(2);
}

const { loadConfig } = await import('../dist/config/index.js');
const { nodeConnection, readState } = await import('../dist/lab/index.js');
const postgres = (await import('postgres')).default;

// ---- helpers --------------------------------------------------------------------------------

const log = logger(json);

const checkInterrupted = watchInterrupts();

/**
 * Runs a command to completion under `sh`, whose `times` (written to fd 3 after the command
 * exits) gives the CPU the command used, user and system, including its threads and children.
 */
function runTimed(command, argv, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', '"$0" "$@"; s=$?; times >&3; exit $s', command, ...argv], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], ...opts });
    let stdout = '';
    let stderr = '';
    let times = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdio[3].on('data', (d) => (times += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const m = [...times.matchAll(/(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/g)][1];
      const cpu = m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : NaN;
      resolve({ code, signal, stdout, stderr, cpu });
    });
  });
}

async function mustRun(what, command, argv, opts) {
  const r = await runTimed(command, argv, opts);
  if (r.code !== 0) {
    const tail = (r.stderr || r.stdout).trim().split('\n').slice(-6).join('\n    ');
    throw new Error(`${what} failed (${r.signal ?? `exit ${r.code}`}):\n    ${tail}`);
  }
  return r;
}

const TICK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/**
 * CPU seconds used so far by a postmaster and every backend: its own and its reaped children's
 * time (backends that exited), plus the time of those still running. Undefined without /proc.
 */
function serverCpu(pid) {
  const times = (p) => {
    const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
    return { ppid: Number(f[1]), self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  };
  try {
    const root = times(pid);
    let ticks = root.self + root.children;
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name) || Number(name) === pid) continue;
      try {
        const t = times(name);
        if (t.ppid === pid) ticks += t.self;
      } catch {
        // gone while we looked: now counted in the postmaster's children time
      }
    }
    return ticks / TICK;
  } catch {
    return undefined;
  }
}

// ---- the lab --------------------------------------------------------------------------------

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-bench-load-'));
fs.chmodSync(dir, 0o755); // the server user must reach the data dir
fs.writeFileSync(path.join(dir, 'prodhome.yaml'), `lab: ${LAB}\nports: { from: ${PORTS.from}, to: ${PORTS.to} }\nnodes:\n  publisher:\n    role: publisher\n`);
const prodhome = (...a) => mustRun(`prodhome ${a.join(' ')}`, process.execPath, [CLI, ...a], { cwd: dir });
const perTx = (x) => x.cpu / x.transactions;
const perServer = (x) => (x.serverCpu ? x.cpu / x.serverCpu : NaN);

/** The scripts both sides run (pgbench's own, as --show-script prints them), and how each side is told to run them. */
function workloadPlan(name) {
  const show = (b) => {
    const r = spawnSync(PGBENCH, ['--show-script', b], { encoding: 'utf8' }); // it prints on stderr
    return r.stderr || r.stdout;
  };
  const file = (text) => {
    const f = path.join(dir, `${name}.sql`);
    fs.writeFileSync(f, text);
    return f;
  };
  const selectOnly = show('select-only');
  switch (name) {
    case 'tpcb':
      return { prodhome: ['tpcb'], pgbench: ['-b', 'tpcb-like'] };
    case 'select-only':
      return { prodhome: ['custom', file(selectOnly)], pgbench: ['-b', 'select-only'] };
    case 'simple-update':
      return { prodhome: ['custom', file(show('simple-update'))], pgbench: ['-b', 'simple-update'] };
    case 'sleep100':
    case 'sleep500': {
      const f = file(selectOnly.replace(/^SELECT/m, `\\sleep ${name.slice(5)} us\nSELECT`));
      return { prodhome: ['custom', f], pgbench: ['-f', f] };
    }
    case 'pipeline': {
      const select = selectOnly.split('\n').find((l) => l.startsWith('SELECT'));
      const f = file([selectOnly.split('\n').find((l) => l.startsWith('\\set')), '\\startpipeline', ...Array(10).fill(select), '\\endpipeline', ''].join('\n'));
      return { prodhome: ['custom', f, '-M', 'extended'], pgbench: ['-f', f, '-M', 'extended'] };
    }
  }
}

/** Every workload and client count at one scale: fresh pgbench tables, an untimed warm-up, then the rounds. */
async function benchScale(scale, env, pid, sql) {
  await mustRun(`pgbench -i -s ${scale}`, PGBENCH, ['-i', '-q', '-s', String(scale)], { env });
  // Both sides start from the same state: what pgbench does before a run unless -n (history
  // emptied, branches and tellers vacuumed), plus the accounts vacuumed and a checkpoint, so
  // neither inherits the other's dead rows or pays for its checkpoint.
  const reset = async () => {
    await sql`truncate pgbench_history`;
    await sql`vacuum pgbench_branches, pgbench_tellers, pgbench_accounts`;
    await sql`checkpoint`;
  };
  const measure = async (run) => {
    await reset();
    const s0 = serverCpu(pid);
    const r = await run();
    await new Promise((res) => setTimeout(res, 300)); // the backends exit and are reaped
    const s1 = serverCpu(pid);
    return { ...r, serverCpu: s0 === undefined || s1 === undefined ? undefined : s1 - s0 };
  };
  // Warm caches (a freshly loaded pgbench_accounts) before anything is timed.
  await reset();
  await mustRun('pgbench warm-up', PGBENCH, ['-n', '-c', '4', '-j', pgbenchJobs, '-T', '3'], { env });
  const out = [];
  for (const workload of workloads) {
    const plan = workloadPlan(workload);
    // A script prodhome cannot run yet (pipeline mode before the language has it): pgbench alone.
    const dry = await runTimed(process.execPath, [CLI, 'load', ...plan.prodhome, '-t', '1', '--dry-run'], { cwd: dir });
    const prodhomeRuns = dry.code === 0;
    if (!prodhomeRuns) log(`\n${workload}: prodhome cannot run this script yet (${dry.stderr.trim().split('\n')[0]}); pgbench alone`);
    for (const clients of clientCounts) out.push(await benchOne(scale, workload, plan, prodhomeRuns, clients, env, measure));
  }
  return out;
}

async function benchOne(scale, workload, plan, prodhomeRuns, clients, env, measure) {
  const ours = () =>
    measure(async () => {
      const r = await prodhome('load', ...plan.prodhome, '-c', String(clients), '-j', String(jobs), '-T', String(seconds), '--json');
      const s = JSON.parse(r.stdout);
      return { tps: s.tps, transactions: s.transactions + s.failed, cpu: r.cpu, cpuInRun: s.clientCpu.seconds };
    });
  const theirs = () =>
    measure(async () => {
      const r = await mustRun('pgbench', PGBENCH, ['-n', ...plan.pgbench, '-c', String(clients), '-j', pgbenchJobs, '-T', String(seconds)], { env });
      const tps = Number(/^tps = ([\d.]+)/m.exec(r.stdout)?.[1]);
      const transactions = Number(/^number of transactions actually processed: (\d+)/m.exec(r.stdout)?.[1]);
      return { tps, transactions, cpu: r.cpu };
    });
  const none = { tps: NaN, transactions: NaN, cpu: NaN, cpuInRun: NaN, serverCpu: undefined };

  log('');
  log(`${workload}, scale ${scale}: prodhome load ${plan.prodhome.map((a) => path.basename(a)).join(' ')} -c ${clients} -j ${jobs} -T ${seconds}  vs  pgbench -n ${plan.pgbench.map((a) => path.basename(a)).join(' ')} -c ${clients} -j ${pgbenchJobs} -T ${seconds}; ${rounds} round(s), order alternates`);
  log('round  first     prodhome tps  pgbench tps  ratio  prodhome CPU/tx  pgbench CPU/tx  prodhome CPU/server-s  pgbench CPU/server-s');
  const results = [];
  for (let i = 1; i <= rounds; i++) {
    checkInterrupted();
    const prodhomeFirst = i % 2 === 1;
    let p;
    let g;
    if (!prodhomeRuns) {
      p = none;
      g = await theirs();
    } else if (prodhomeFirst) {
      p = await ours();
      checkInterrupted();
      g = await theirs();
    } else {
      g = await theirs();
      checkInterrupted();
      p = await ours();
    }
    const row = {
      round: i,
      first: prodhomeFirst ? 'prodhome' : 'pgbench',
      prodhome: { tps: p.tps, transactions: p.transactions, cpuSeconds: p.cpu, cpuSecondsInRun: p.cpuInRun, serverCpuSeconds: p.serverCpu, cpuPerTxMicros: perTx(p) * 1e6, cpuPerServerSecond: perServer(p) },
      pgbench: { tps: g.tps, transactions: g.transactions, cpuSeconds: g.cpu, serverCpuSeconds: g.serverCpu, cpuPerTxMicros: perTx(g) * 1e6, cpuPerServerSecond: perServer(g) },
      ratio: p.tps / g.tps,
    };
    results.push(row);
    log(
      `${String(i).padStart(5)}  ${row.first.padEnd(8)}  ${p.tps.toFixed(0).padStart(12)}  ${g.tps.toFixed(0).padStart(11)}  ${row.ratio.toFixed(2).padStart(5)}  ${`${row.prodhome.cpuPerTxMicros.toFixed(0)} µs`.padStart(15)}  ${`${row.pgbench.cpuPerTxMicros.toFixed(0)} µs`.padStart(14)}  ${row.prodhome.cpuPerServerSecond.toFixed(2).padStart(21)}  ${row.pgbench.cpuPerServerSecond.toFixed(2).padStart(20)}`,
    );
  }
  const m = (f) => median(results.map(f));
  const summary = {
    workload,
    scale,
    clients,
    prodhomeRan: prodhomeRuns,
    rounds: results,
    median: {
      ratio: m((r) => r.ratio),
      prodhomeTps: m((r) => r.prodhome.tps),
      pgbenchTps: m((r) => r.pgbench.tps),
      prodhomeCpuPerTxMicros: m((r) => r.prodhome.cpuPerTxMicros),
      prodhomeCpuPerTxMicrosInRun: m((r) => (r.prodhome.cpuSecondsInRun / r.prodhome.transactions) * 1e6),
      pgbenchCpuPerTxMicros: m((r) => r.pgbench.cpuPerTxMicros),
      prodhomeCpuPerServerSecond: m((r) => r.prodhome.cpuPerServerSecond),
      pgbenchCpuPerServerSecond: m((r) => r.pgbench.cpuPerServerSecond),
    },
  };
  const x = summary.median;
  summary.pass = x.ratio >= TARGET_RATIO;
  const what = `${workload} -c ${clients} (scale ${scale})`;
  if (!prodhomeRuns) {
    log(`${what} tps: pgbench ${x.pgbenchTps.toFixed(0)} (median of rounds); prodhome cannot run the script yet`);
    return summary;
  }
  log(`${what} tps: prodhome ${x.prodhomeTps.toFixed(0)}, pgbench ${x.pgbenchTps.toFixed(0)}, ratio ${x.ratio.toFixed(2)} (median of rounds, range ${Math.min(...results.map((r) => r.ratio)).toFixed(2)}–${Math.max(...results.map((r) => r.ratio)).toFixed(2)}; target >= ${TARGET_RATIO}) ${summary.pass ? 'PASS' : 'MISS'}`);
  log(`${what} client CPU per transaction: prodhome ${x.prodhomeCpuPerTxMicros.toFixed(0)} µs (${x.prodhomeCpuPerTxMicrosInRun.toFixed(0)} µs within the run, as its summary reports), pgbench ${x.pgbenchCpuPerTxMicros.toFixed(0)} µs — whole processes`);
  log(`${what} client CPU per second of server CPU: prodhome ${x.prodhomeCpuPerServerSecond.toFixed(2)} s, pgbench ${x.pgbenchCpuPerServerSecond.toFixed(2)} s`);
  return summary;
}

const summaries = [];
let info;
try {
  await prodhome('up');
  const config = loadConfig({ file: path.join(dir, 'prodhome.yaml') });
  const c = nodeConnection(config, 'publisher');
  const state = readState(config.stateDir).nodes.publisher;
  const env = { ...process.env, PGHOST: c.host, PGPORT: String(c.port), PGUSER: c.user, PGDATABASE: c.database, PGPASSWORD: c.password };
  const pgbenchVersion = spawnSync(PGBENCH, ['--version'], { encoding: 'utf8' }).stdout.trim();
  info = { server: `Postgres ${state.version} (${state.binSource})`, pgbench: pgbenchVersion, cpus: os.cpus().length, node: process.version };
  log(`${info.server} on 127.0.0.1:${c.port}, ${info.pgbench}, ${info.cpus} CPU(s), Node ${info.node}`);
  const sql = postgres({ host: c.host, port: c.port, user: c.user, password: c.password, database: c.database, max: 1, onnotice: () => {} });
  try {
    for (const scale of scales) summaries.push(...(await benchScale(scale, env, state.pid, sql)));
  } finally {
    await sql.end({ timeout: 2 });
  }
} catch (e) {
  console.error(`bench: ${e.message}`);
  process.exitCode = 1;
} finally {
  const r = await runTimed(process.execPath, [CLI, 'destroy', '--yes'], { cwd: dir }).catch((e) => ({ code: -1, stderr: e.message }));
  if (r.code !== 0) console.error(`bench: cleaning up the lab failed; remove ${dir} by hand (prodhome destroy --yes there):\n    ${r.stderr?.trim()}`);
  else fs.rmSync(dir, { recursive: true, force: true });
}

if (json && summaries.length) {
  console.log(JSON.stringify({ ...info, seconds, jobs, pgbenchJobs: Number(pgbenchJobs), target: { ratio: TARGET_RATIO }, runs: summaries }, null, 2));
}
