#!/usr/bin/env node
// Benchmark: how long the CLI takes to start, against bare `node` starting and exiting (the
// reference: no CLI can start faster than its runtime). Times `prodhome --version` and
// `prodhome status` (on a directory with no lab: the default config is loaded, the state
// dir looked for; and in a lab's directory, where prodhome.yaml validated before is remembered
// in .prodhome/config-cache.json), rounds alternating, medians of wall-clock time. Target: each within
// 0.15 s of bare node. Exits non-zero only when something fails to run, never on speed.
//
//   node bench/cli.mjs [--rounds N] [--json]      (needs `npm run build`)

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { benchArgs, CLI, logger, makeTempDir, median, removeDir } from './lib.mjs';

const TARGET_EXTRA_S = 0.15;
const { rounds, json } = benchArgs({ usage: 'node bench/cli.mjs [--rounds N] [--json]', defaultRounds: 15, needs: 'cli/main.js' });
const log = logger(json);
const cwd = makeTempDir('prodhome-bench-cli-');

// A lab's directory: its prodhome.yaml (the default, as init writes it) beside .prodhome/.
const labDir = makeTempDir('prodhome-bench-cli-lab-');
if (spawnSync(process.execPath, [CLI, 'init'], { cwd: labDir }).status !== 0) throw new Error('prodhome init failed');
fs.mkdirSync(path.join(labDir, '.prodhome'));

const cases = {
  'bare node': ['-e', '0'],
  'prodhome --version': [CLI, '--version'],
  'prodhome status': [CLI, 'status'],
  'status (prodhome.yaml)': [CLI, 'status', { cwd: labDir }],
};

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** CPU seconds (user + system) of this process's reaped children, from /proc (10 ms ticks). */
function childrenCpu() {
  const fields = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100; // cutime, cstime (fields 16, 17)
}

/** Wall-clock and CPU seconds of one run. */
function time(argv) {
  const opts = typeof argv.at(-1) === 'object' ? argv.at(-1) : {};
  const args = argv.filter((a) => typeof a === 'string');
  const cpu = childrenCpu();
  const started = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd: opts.cwd ?? cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { wall: Number(process.hrtime.bigint() - started) / 1e9, cpu: childrenCpu() - cpu };
}

const results = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
const cpus = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
try {
  for (let round = 0; round < rounds; round++) {
    const order = Object.keys(cases);
    if (round % 2) order.reverse();
    for (const name of order) {
      const t = time(cases[name]);
      results[name].push(t.wall);
      cpus[name].push(t.cpu);
    }
  }
} finally {
  removeDir(cwd);
  removeDir(labDir);
}

const bare = median(results['bare node']);
const bareCpu = mean(cpus['bare node']);
const report = {};
for (const [name, walls] of Object.entries(results)) {
  const m = median(walls);
  const cpu = mean(cpus[name]);
  report[name] = { medianSeconds: Number(m.toFixed(3)), overBareSeconds: Number((m - bare).toFixed(3)), meanCpuSeconds: Number(cpu.toFixed(3)), cpuOverBareSeconds: Number((cpu - bareCpu).toFixed(3)) };
  const verdict = name === 'bare node' ? '' : m - bare <= TARGET_EXTRA_S ? 'PASS' : 'MISS';
  log(
    `${name.padEnd(22)} ${m.toFixed(3)} s  (+${(m - bare).toFixed(3)} s over bare node, target ≤ +${TARGET_EXTRA_S})  ${verdict.padEnd(4)}  cpu ${cpu.toFixed(3)} s (+${(cpu - bareCpu).toFixed(3)})`,
  );
}
log('(cpu: mean user+system seconds per run; on a busy machine it is steadier than wall-clock time)');
if (json) console.log(JSON.stringify({ rounds, targetExtraSeconds: TARGET_EXTRA_S, results: report }, null, 2));
