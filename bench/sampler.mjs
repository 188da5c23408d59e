#!/usr/bin/env node
// Benchmark: what sampling costs, in one run.
//
//  1. CPU per scrape of one node: prodhome's Collector against Debian's
//     prometheus-postgres-exporter, N scrapes back to back each — the scraper's own CPU and the
//     node's server CPU (every postgres process of the node, backends that exited included),
//     per scrape, with the number of series each produced (prodhome samples every catalog family
//     at every scrape here, pg_settings and pg_table included, as the exporter does). The exporter also runs with
//     --disable-settings-metrics, for a number of series closer to prodhome's (reported, no target).
//  2. The agent's sampler on the 4-node default lab at 4 Hz (metrics.interval 250ms): the agent
//     process's CPU over a 30 s window, and its RSS (VmRSS at the end, VmHWM as the peak).
//  3. The Postgres sink's ingest rate into the lab's metrics node: 200,000 points of 2 tags and
//     3 fields, written 1,000 at a time with batchSize 10,000, timed until all are flushed.
//
// Each round brings up fresh labs in a temp dir (ports 57300-57349 and 57350-57399) and
// destroys them. Reports medians and PASS/MISS against the targets; exits non-zero only when
// something fails to run, never on a missed target.
//
//   node bench/sampler.mjs [--rounds N] [--scrapes N] [--window S] [--json]
//   (or BENCH_ROUNDS=N; needs `npm run build`, runs as root to install the exporter)

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { benchArgs, CLI, logger, makeTempDir, median, mustRun, readOr, removeDir, rescueLab, run, sleep, watchInterrupts } from './lib.mjs';

const EXPORTER = '/usr/bin/prometheus-postgres-exporter';
const EXPORTER_PACKAGE = 'prometheus-postgres-exporter';
const ONE_NODE_PORTS = { from: 57300, to: 57349 };
const LAB_PORTS = { from: 57350, to: 57399 };
const WARMUP_SCRAPES = 5; // connections opened, counters seen once (so rates are computed)
const SINK_POINTS = 200_000;
const SINK_WRITE = 1_000;
const SINK_BATCH = 10_000;
const TARGET_SCRAPE_RATIO = 1.0; // prodhome client+server CPU per scrape ÷ the exporter's
const TARGET_AGENT_CPU_PCT = 5;
const TARGET_AGENT_RSS_MB = 150;
const TARGET_SINK_PPS = 100_000;
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const MB = 1_000_000;

// ---- arguments ------------------------------------------------------------------------------

const args = benchArgs({
  usage: 'node bench/sampler.mjs [--rounds N] [--scrapes N] [--window S] [--json]',
  options: { scrapes: { type: 'string', default: '200' }, window: { type: 'string', default: '30' } },
  integers: ['scrapes', 'window'],
  needs: 'metrics/index.js',
});
const { rounds, json, scrapes } = args;
const windowS = args.window;
if (process.platform !== 'linux') {
  console.error('bench: this benchmark reads /proc: Linux only');
  process.exit(2);
}

const { Collector, loadCatalog } = await import('../dist/metrics/index.js');
const { PostgresSink } = await import('../dist/sinks/index.js');
const { nodeConnection } = await import('../dist/lab/index.js');
const { loadConfig } = await import('../dist/config/index.js');
const { connect } = await import('../dist/pg/index.js');

// ---- helpers --------------------------------------------------------------------------------

const log = logger(json);
const fmt = (x, digits = 3) => (Number.isFinite(x) ? x.toFixed(digits) : String(x));
const pass = (ok) => (ok ? 'PASS' : 'MISS');

const checkInterrupted = watchInterrupts();


/** Fields of /proc/<pid>/stat after the command name (index 0 is field 3, "state"). */
function statFields(pid) {
  const text = readOr(`/proc/${pid}/stat`);
  if (!text) return undefined;
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** utime+stime of one process (all its threads), in clock ticks. */
function processTicks(pid) {
  const f = statFields(pid);
  if (!f) throw new Error(`process ${pid} is gone`);
  return Number(f[11]) + Number(f[12]);
}

function allPids() {
  return fs.readdirSync('/proc').map(Number).filter((n) => n > 0);
}

/**
 * CPU of a node's server, in clock ticks: the postmaster's utime+stime and cutime+cstime
 * (backends that exited and were reaped) plus utime+stime of each live child.
 */
function serverTicks(postmaster) {
  const pm = statFields(postmaster);
  if (!pm) throw new Error(`the postmaster (pid ${postmaster}) is gone`);
  let ticks = Number(pm[11]) + Number(pm[12]) + Number(pm[13]) + Number(pm[14]);
  let processes = 1;
  for (const pid of allPids()) {
    const f = pid === postmaster ? undefined : statFields(pid);
    if (f && Number(f[1]) === postmaster) {
      ticks += Number(f[11]) + Number(f[12]);
      processes++;
    }
  }
  return { ticks, processes };
}

/** A key (kB) of /proc/<pid>/status, in bytes. */
function statusBytes(pid, key) {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readOr(`/proc/${pid}/status`));
  return m ? Number(m[1]) * 1024 : NaN;
}

function freeLocalPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---- labs -----------------------------------------------------------------------------------

/** A lab in a fresh temp dir; `prepare` writes its prodhome.yaml (or not: the default lab). */
async function withLab(prefix, prepare, body) {
  const cwd = makeTempDir(prefix);
  const cli = (...argv) => mustRun(`prodhome ${argv.join(' ')}`, process.execPath, [CLI, ...argv], { cwd });
  let destroyed = false;
  try {
    await prepare(cwd, cli);
    await cli('up');
    checkInterrupted();
    const stateDir = path.join(cwd, '.prodhome', 'prodhome');
    const result = await body({ cwd, stateDir, cli });
    await cli('destroy', '--yes');
    destroyed = true;
    return result;
  } finally {
    try {
      if (!destroyed) await rescueLab(cwd, 'prodhome').catch((e) => console.error(`bench: cleaning up the lab: ${e.message}`));
    } finally {
      removeDir(cwd);
    }
  }
}

function postmasterOf(stateDir, node) {
  const state = JSON.parse(fs.readFileSync(path.join(stateDir, 'state.json'), 'utf8'));
  const dataDir = state.nodes[node]?.dataDir;
  const pid = Number(readOr(path.join(dataDir ?? '', 'postmaster.pid')).split('\n')[0]);
  if (!(pid > 0) || !statFields(pid)) throw new Error(`node ${node}: no running postmaster found (data dir ${dataDir})`);
  return pid;
}

// ---- the exporter ---------------------------------------------------------------------------

const exporterProcesses = () =>
  allPids().filter((pid) => pid !== process.pid && readOr(`/proc/${pid}/cmdline`).split('\0')[0].endsWith('postgres-exporter'));

/** Installs Debian's exporter when missing, and makes sure the package's own service is not running. */
async function ensureExporter() {
  if (!fs.existsSync(EXPORTER)) {
    if (process.getuid?.() !== 0) throw new Error(`${EXPORTER} is missing; install it with: apt-get install -y ${EXPORTER_PACKAGE}`);
    log(`installing ${EXPORTER_PACKAGE} (apt-get install -y ${EXPORTER_PACKAGE}) ...`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = await run('apt-get', ['install', '-y', EXPORTER_PACKAGE], { env });
    if (r.code !== 0) {
      await run('apt-get', ['update'], { env });
      r = await mustRun(`apt-get install -y ${EXPORTER_PACKAGE}`, 'apt-get', ['install', '-y', EXPORTER_PACKAGE], { env });
    }
  }
  // The package enables a service on install; where systemd runs, it may have started it.
  // (`pgrep -a postgres_exporter` finds nothing: pgrep matches at most 15 characters of the
  // process name, so look at command lines instead.)
  const services = exporterProcesses();
  if (services.length) {
    if (fs.existsSync('/run/systemd/system')) await run('systemctl', ['disable', '--now', EXPORTER_PACKAGE]);
    else await run('service', [EXPORTER_PACKAGE, 'stop']).catch(() => {});
    const left = exporterProcesses();
    if (left.length) log(`note: an exporter we did not start is running (pid ${left.join(', ')}); it is left alone`);
    else log(`note: stopped and disabled the ${EXPORTER_PACKAGE} service the package had started`);
  }
  const v = await run(EXPORTER, ['--version']);
  return (v.stdout + v.stderr).split('\n')[0].trim();
}

/** Starts the exporter for one node; DATA_SOURCE_NAME goes in its environment only. */
async function startExporter(connection, dir, extraArgs = []) {
  const port = await freeLocalPort();
  const dsn = `postgresql://${encodeURIComponent(connection.user)}:${encodeURIComponent(connection.password ?? '')}@${connection.host}:${connection.port}/${encodeURIComponent(connection.database)}?sslmode=disable`;
  const logFile = path.join(dir, 'exporter.log');
  const out = fs.openSync(logFile, 'w', 0o600);
  const child = spawn(EXPORTER, [`--web.listen-address=127.0.0.1:${port}`, '--log.level=warn', ...extraArgs], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DATA_SOURCE_NAME: dsn },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  let exited;
  child.on('exit', (code, signal) => (exited = signal ?? `exit ${code}`));
  const url = `http://127.0.0.1:${port}/metrics`;
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    for (let i = 0; i < 100 && !exited; i++) await sleep(50);
    if (!exited) child.kill('SIGKILL');
  };
  const lastWords = () => readOr(logFile).split(connection.password || '\0').join('********').trim().split('\n').slice(-5).join('\n    ');
  try {
    for (const deadline = Date.now() + 10_000; ; ) {
      if (exited) throw new Error(`the exporter exited (${exited}):\n    ${lastWords()}`);
      try {
        const res = await fetch(url);
        await res.text();
        if (res.ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`the exporter did not answer on ${url} within 10 s:\n    ${lastWords()}`);
      await sleep(100);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { pid: child.pid, url, stop, lastWords };
}

// ---- 1: one node, prodhome's Collector vs the exporter ---------------------------------------

const ONE_NODE_YAML = `# bench/sampler.mjs: one node, the agent sampling as little as it can
lab: prodhome
runAs: prodhome
ports: { from: ${ONE_NODE_PORTS.from}, to: ${ONE_NODE_PORTS.to} }
nodes:
  db: { role: publisher }
# The agent still supervises and samples into no sink; once a minute keeps it out of the window.
metrics: { prometheus: false, store: false, interval: 1m }
`;

async function benchScrape(prodhomeFirst) {
  return withLab(
    'prodhome-bench-sampler-1-',
    (cwd) => fs.writeFileSync(path.join(cwd, 'prodhome.yaml'), ONE_NODE_YAML),
    async ({ cwd, stateDir }) => {
      const config = loadConfig({ cwd });
      const connection = nodeConnection(config, 'db');
      const postmaster = postmasterOf(stateDir, 'db');
      await sleep(1000); // let the new node's startup work (autovacuum launcher, checkpointer) settle

      const sideProdhome = async () => {
        const warnings = [];
        // Every family at every scrape, the slow-changing ones (every: 5s, 1m) too, as the exporter
        // reads all of its own each time: the same work per scrape on both sides.
        const metrics = loadCatalog().map(({ everyMs, ...m }) => m);
        const collector = new Collector([{ name: 'db', role: 'publisher', connection }], { metrics, warn: (m) => warnings.push(m) });
        try {
          for (let i = 0; i < WARMUP_SCRAPES; i++) await collector.scrape();
          let series = 0;
          const server0 = serverTicks(postmaster);
          const cpu0 = process.cpuUsage();
          const t0 = performance.now();
          for (let i = 0; i < scrapes; i++) {
            const points = await collector.scrape();
            for (const p of points) series += Object.keys(p.fields).length;
          }
          const wallMs = performance.now() - t0;
          const cpu = process.cpuUsage(cpu0);
          const server1 = serverTicks(postmaster);
          const up = (await collector.scrape()).filter((p) => p.measurement === 'pg_up').every((p) => p.fields.up === 1);
          if (!up) throw new Error(`prodhome's collector lost the node: ${warnings.join('; ')}`);
          return {
            clientMs: (cpu.user + cpu.system) / 1000 / scrapes,
            serverMs: ((server1.ticks - server0.ticks) * 1000) / CLK_TCK / scrapes,
            series: series / scrapes,
            wallMs: wallMs / scrapes,
            serverProcesses: server1.processes,
            warnings,
          };
        } finally {
          await collector.close();
        }
      };

      const sideExporter = async (dir, extraArgs) => {
        const exporter = await startExporter(connection, dir, extraArgs);
        try {
          const scrape = async () => {
            const res = await fetch(exporter.url);
            const text = await res.text();
            if (!res.ok) throw new Error(`exporter answered ${res.status}`);
            return text;
          };
          for (let i = 0; i < WARMUP_SCRAPES; i++) await scrape();
          let series = 0;
          let pgUp = true;
          const server0 = serverTicks(postmaster);
          const client0 = processTicks(exporter.pid);
          const t0 = performance.now();
          for (let i = 0; i < scrapes; i++) {
            const text = await scrape();
            for (const line of text.split('\n')) if (line && !line.startsWith('#')) series++;
            if (i === scrapes - 1) pgUp = /^pg_up 1$/m.test(text);
          }
          const wallMs = performance.now() - t0;
          const client1 = processTicks(exporter.pid);
          const server1 = serverTicks(postmaster);
          if (!pgUp) throw new Error(`the exporter reports pg_up 0:\n    ${exporter.lastWords()}`);
          return {
            clientMs: ((client1 - client0) * 1000) / CLK_TCK / scrapes,
            serverMs: ((server1.ticks - server0.ticks) * 1000) / CLK_TCK / scrapes,
            series: series / scrapes,
            wallMs: wallMs / scrapes,
            serverProcesses: server1.processes,
          };
        } finally {
          await exporter.stop();
        }
      };

      // Alternate who goes first, so neither side always gets the warmer (or colder) server.
      // The exporter runs twice: as Debian ships it (the target's comparison), and without its
      // pg_settings series (about half its output), for a closer number of series.
      let prodhome;
      let exporter;
      let lean;
      if (prodhomeFirst) {
        prodhome = await sideProdhome();
        checkInterrupted();
        exporter = await sideExporter(cwd, []);
        checkInterrupted();
        lean = await sideExporter(cwd, ['--disable-settings-metrics']);
      } else {
        exporter = await sideExporter(cwd, []);
        checkInterrupted();
        lean = await sideExporter(cwd, ['--disable-settings-metrics']);
        checkInterrupted();
        prodhome = await sideProdhome();
      }
      checkInterrupted();
      const cpu = (side) => side.clientMs + side.serverMs;
      return { prodhome, exporter, exporterNoSettings: lean, ratio: cpu(prodhome) / cpu(exporter), ratioNoSettings: cpu(prodhome) / cpu(lean) };
    },
  );
}

// ---- 2 and 3: the default lab at 4 Hz, and the Postgres sink --------------------------------

async function prepareDefaultLab(cwd, cli) {
  await cli('init');
  const file = path.join(cwd, 'prodhome.yaml');
  let text = fs.readFileSync(file, 'utf8');
  const edits = [
    [/^(\s+interval:\s*)1s\b/m, '$1250ms'],
    [/^(\s+from:\s*)54320\b/m, `$1${LAB_PORTS.from}`],
    [/^(\s+to:\s*)54399\b/m, `$1${LAB_PORTS.to}`],
  ];
  for (const [re, to] of edits) {
    if (!re.test(text)) throw new Error(`prodhome init's prodhome.yaml has no line matching ${re}; this bench needs updating`);
    text = text.replace(re, to);
  }
  fs.writeFileSync(file, text);
}

async function benchAgentAndSink(round) {
  return withLab('prodhome-bench-sampler-4-', prepareDefaultLab, async ({ cwd, stateDir }) => {
    const config = loadConfig({ cwd });
    if (config.metrics.intervalMs !== 250) throw new Error(`the lab's metrics.interval is ${config.metrics.intervalMs} ms, not 250`);
    const agentPid = Number(readOr(path.join(stateDir, 'agent.pid')).trim());
    if (!(agentPid > 0) || !statFields(agentPid)) throw new Error(`no running agent (agent.pid: ${readOr(path.join(stateDir, 'agent.pid')).trim() || 'missing'})`);
    await sleep(2000); // the agent opens its sinks and takes its first samples

    // -- 2: the agent over the window
    const store = config.metrics.store ? connect(nodeConnection(config, config.metrics.store), { max: 1, applicationName: 'prodhome-bench' }) : undefined;
    let agent;
    try {
      const rss = [];
      const ticks0 = processTicks(agentPid);
      const t0 = performance.now();
      const from = new Date();
      while (performance.now() - t0 < windowS * 1000) {
        checkInterrupted();
        rss.push(statusBytes(agentPid, 'VmRSS'));
        await sleep(Math.min(1000, windowS * 1000 - (performance.now() - t0)));
      }
      const ticks1 = processTicks(agentPid);
      const seconds = (performance.now() - t0) / 1000;
      const to = new Date();
      const steadyRss = statusBytes(agentPid, 'VmRSS');
      const peakRss = statusBytes(agentPid, 'VmHWM');
      // The agent's own health lands in the store: how many samples it took in the window, how long each took.
      let samples;
      let sampleMs;
      if (store) {
        await sleep(1500); // the store sink flushes every second
        const [row] = await store`
          select count(*)::int as n, percentile_cont(0.5) within group (order by scrape_seconds) * 1000 as p50,
                 max(scrape_seconds) * 1000 as max
          from metrics.prodhome_sampler where time >= ${from} and time < ${to}`.catch(() => [{}]);
        samples = row?.n;
        sampleMs = { p50: row?.p50, max: row?.max };
      }
      agent = {
        pid: agentPid,
        cpuPct: (((ticks1 - ticks0) / CLK_TCK) / seconds) * 100,
        windowS: seconds,
        steadyRssMB: steadyRss / MB,
        peakRssMB: peakRss / MB,
        minRssMB: Math.min(...rss) / MB,
        samplesPerS: samples === undefined ? undefined : samples / seconds,
        sampleMs,
      };
    } finally {
      await store?.end({ timeout: 1 });
    }
    checkInterrupted();

    // -- 3: the Postgres sink into the lab's metrics node
    const storeNode = config.metrics.store || config.nodes.find((n) => n.role === 'metrics')?.name;
    if (!storeNode) throw new Error('the default lab has no metrics node');
    const measurement = `bench_sink_r${round}`;
    const sinkWarnings = [];
    const sink = new PostgresSink(nodeConnection(config, storeNode), { batchSize: SINK_BATCH, warn: (m) => sinkWarnings.push(m) });
    let sinkResult;
    try {
      await sink.open();
      // Points built before the clock starts: the sink's cost, not the bench's.
      const base = Date.now() - SINK_POINTS;
      const writes = [];
      for (let w = 0; w < SINK_POINTS / SINK_WRITE; w++) {
        const points = [];
        for (let j = 0; j < SINK_WRITE; j++) {
          const i = w * SINK_WRITE + j;
          points.push({ measurement, tags: { host: `host${i % 100}`, region: `region${i % 4}` }, fields: { a: i * 0.5, b: Math.sin(i), c: i % 1000 }, time: base + i });
        }
        writes.push(points);
      }
      const t0 = performance.now();
      for (const points of writes) await sink.write(points);
      let drained = await sink.flush();
      for (let i = 0; !drained && i < 50; i++) drained = await sink.flush(); // retries after a failed write
      const ms = performance.now() - t0;
      if (!drained || sink.stats.written !== SINK_POINTS || sink.stats.dropped) {
        throw new Error(`the sink wrote ${sink.stats.written} of ${SINK_POINTS} points (dropped ${sink.stats.dropped}, retries ${sink.stats.retries}): ${sinkWarnings.join('; ') || sink.stats.lastError || 'no error'}`);
      }
      const check = connect(nodeConnection(config, storeNode), { max: 1, applicationName: 'prodhome-bench' });
      try {
        const [{ n }] = await check`select count(*)::int as n from metrics.${check(measurement)}`;
        if (n !== SINK_POINTS) throw new Error(`metrics.${measurement} holds ${n} rows, not ${SINK_POINTS}`);
      } finally {
        await check.end({ timeout: 1 });
      }
      sinkResult = { points: SINK_POINTS, ms, pointsPerS: (SINK_POINTS * 1000) / ms, retries: sink.stats.retries };
    } finally {
      await sink.close().catch(() => {});
    }
    return { agent, sink: sinkResult };
  });
}

// ---- main -----------------------------------------------------------------------------------

const results = [];
try {
  const exporterVersion = await ensureExporter();
  log(`${rounds} round(s) on ${os.cpus().length} CPU(s), load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; CLK_TCK ${CLK_TCK}`);
  log(`1: ${scrapes} scrapes of one node per side after ${WARMUP_SCRAPES} warm-up; exporter: ${exporterVersion}`);
  log(`2: the agent on the default lab at 250 ms for ${windowS} s;  3: PostgresSink, ${SINK_POINTS} points in writes of ${SINK_WRITE}, batchSize ${SINK_BATCH}`);
  log('');
  log('per scrape, ms of CPU: client + server (series)');
  log('round  first     prodhome                   exporter                   ratio  exporter w/o settings      ratio  agent CPU  RSS now/peak MB  samples/s  sink points/s');
  for (let i = 1; i <= rounds; i++) {
    const prodhomeFirst = i % 2 === 1;
    const scrape = await benchScrape(prodhomeFirst);
    checkInterrupted();
    const { agent, sink } = await benchAgentAndSink(i);
    checkInterrupted();
    const row = { round: i, first: prodhomeFirst ? 'prodhome' : 'exporter', scrape, agent, sink };
    results.push(row);
    const side = (s) => `${fmt(s.clientMs)} + ${fmt(s.serverMs)} (${s.series.toFixed(0)})`.padEnd(25);
    log(
      `${String(i).padStart(5)}  ${row.first.padEnd(8)}  ${side(scrape.prodhome)}  ${side(scrape.exporter)}  ${fmt(scrape.ratio, 2).padStart(5)}  ${side(scrape.exporterNoSettings)}  ${fmt(scrape.ratioNoSettings, 2).padStart(5)}  ${`${fmt(agent.cpuPct, 2)} %`.padStart(9)}  ${`${fmt(agent.steadyRssMB, 1)}/${fmt(agent.peakRssMB, 1)}`.padStart(15)}  ${(agent.samplesPerS === undefined ? '-' : fmt(agent.samplesPerS, 2)).padStart(9)}  ${Math.round(sink.pointsPerS).toString().padStart(13)}`,
    );
    for (const w of scrape.prodhome.warnings) log(`       prodhome collector warned: ${w}`);
  }
} catch (e) {
  console.error(`bench: ${e.message}`);
  process.exitCode = 1;
}

if (results.length === rounds) {
  const med = (f) => median(results.map(f));
  const p = {
    clientMs: med((r) => r.scrape.prodhome.clientMs),
    serverMs: med((r) => r.scrape.prodhome.serverMs),
    series: med((r) => r.scrape.prodhome.series),
    wallMs: med((r) => r.scrape.prodhome.wallMs),
  };
  const sideMedians = (key) => ({
    clientMs: med((r) => r.scrape[key].clientMs),
    serverMs: med((r) => r.scrape[key].serverMs),
    series: med((r) => r.scrape[key].series),
    wallMs: med((r) => r.scrape[key].wallMs),
  });
  const x = sideMedians('exporter');
  const xl = sideMedians('exporterNoSettings');
  // Ratios of the medians (the per-round ratios are in the table and the JSON).
  const ratio = (p.clientMs + p.serverMs) / (x.clientMs + x.serverMs);
  const ratioLean = (p.clientMs + p.serverMs) / (xl.clientMs + xl.serverMs);
  const seriesRatio = p.series / x.series;
  // "Comparable" series: within a factor of two either way.
  const comparable = seriesRatio >= 0.5 && seriesRatio <= 2;
  const perSeries = (s) => ((s.clientMs + s.serverMs) / s.series) * 1000; // µs of CPU per series
  const cpuPct = med((r) => r.agent.cpuPct);
  const steadyMB = med((r) => r.agent.steadyRssMB);
  const peakMB = med((r) => r.agent.peakRssMB);
  const samplesPerS = results.every((r) => r.agent.samplesPerS !== undefined) ? med((r) => r.agent.samplesPerS) : undefined;
  const pps = med((r) => r.sink.pointsPerS);
  const ok = {
    ratio: ratio <= TARGET_SCRAPE_RATIO,
    cpu: cpuPct <= TARGET_AGENT_CPU_PCT,
    rss: peakMB <= TARGET_AGENT_RSS_MB,
    sink: pps >= TARGET_SINK_PPS,
  };
  log('');
  log(`1: per scrape of one node (medians of ${rounds}):`);
  log(`   prodhome Collector                   client ${fmt(p.clientMs)} ms + server ${fmt(p.serverMs)} ms = ${fmt(p.clientMs + p.serverMs)} ms CPU, ${p.series.toFixed(0)} series, ${fmt(p.wallMs, 2)} ms wall`);
  log(`   postgres_exporter                    client ${fmt(x.clientMs)} ms + server ${fmt(x.serverMs)} ms = ${fmt(x.clientMs + x.serverMs)} ms CPU, ${x.series.toFixed(0)} series, ${fmt(x.wallMs, 2)} ms wall`);
  log(`   exporter --disable-settings-metrics  client ${fmt(xl.clientMs)} ms + server ${fmt(xl.serverMs)} ms = ${fmt(xl.clientMs + xl.serverMs)} ms CPU, ${xl.series.toFixed(0)} series, ${fmt(xl.wallMs, 2)} ms wall`);
  log(`   per series: prodhome ${fmt(perSeries(p), 1)} µs, exporter ${fmt(perSeries(x), 1)} µs of CPU; series ratio ${fmt(seriesRatio, 2)} (${comparable ? 'comparable' : 'NOT comparable: the ratio below compares unlike work'})`);
  log(`   ratio prodhome/exporter ${fmt(ratio, 2)} (target <= ${TARGET_SCRAPE_RATIO}) ${pass(ok.ratio)}; against the exporter without pg_settings ${fmt(ratioLean, 2)} (${fmt(p.series / xl.series, 2)} of its series)`);
  log(`2: agent at 250 ms on the 4-node lab: CPU ${fmt(cpuPct, 2)} % of a core (target <= ${TARGET_AGENT_CPU_PCT} %) ${pass(ok.cpu)}; RSS ${fmt(steadyMB, 1)} MB at the end, peak ${fmt(peakMB, 1)} MB (target <= ${TARGET_AGENT_RSS_MB} MB) ${pass(ok.rss)}${samplesPerS === undefined ? '' : `; ${fmt(samplesPerS, 2)} samples/s`}`);
  log(`3: PostgresSink: ${Math.round(pps)} points/s (target >= ${TARGET_SINK_PPS}) ${pass(ok.sink)}`);
  if (json) {
    const summary = {
      clockTicksPerS: CLK_TCK,
      cpus: os.cpus().length,
      scrapes,
      windowS,
      rounds: results,
      median: {
        scrape: { prodhome: p, exporter: x, exporterNoSettings: xl, ratio, ratioNoSettings: ratioLean, seriesRatio, comparableSeries: comparable, cpuUsPerSeries: { prodhome: perSeries(p), exporter: perSeries(x) } },
        agent: { cpuPct, steadyRssMB: steadyMB, peakRssMB: peakMB, samplesPerS },
        sink: { pointsPerS: pps, ms: med((r) => r.sink.ms) },
      },
      targets: {
        scrapeRatio: { max: TARGET_SCRAPE_RATIO, pass: ok.ratio },
        agentCpuPct: { max: TARGET_AGENT_CPU_PCT, pass: ok.cpu },
        agentPeakRssMB: { max: TARGET_AGENT_RSS_MB, pass: ok.rss },
        sinkPointsPerS: { min: TARGET_SINK_PPS, pass: ok.sink },
      },
    };
    console.log(JSON.stringify(summary, null, 2));
  }
}
