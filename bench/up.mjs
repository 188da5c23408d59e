#!/usr/bin/env node
// Benchmark: `prodhome up` of the default 4-node lab against what it would otherwise have to do —
// bare initdb + `pg_ctl start` of four clusters in parallel, with the same binaries, initdb flags
// and server user. prodhome's up runs three ways a round, each a fresh lab:
//  - first ever: no template cluster for these binaries yet (up runs initdb once for it and
//    copies it for each node);
//  - later: the template exists and its spare copies are ready (the state the previous lab's
//    agent leaves: nodes are claimed by a rename), the usual case;
//  - copied: the template exists but no spares (each node is copied while up waits).
// Templates live in a directory of this run's own (PRODHOME_TEMPLATES), so other labs of the
// machine neither help nor are disturbed; spares the "later" side needs are made before its
// clock starts. Also times `prodhome down`. Reports medians and PASS/MISS against the targets;
// exits non-zero only when something fails to run, never on speed.
//
//   node bench/up.mjs [--rounds N] [--json]      (or BENCH_ROUNDS=N; needs `npm run build`)

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { benchArgs, CLI, logger, makeTempDir, median, mustRun, removeDir, rescueLab, run, secs, stopStragglers, watchInterrupts } from './lib.mjs';

const NODES = 4; // the default lab: publisher, two subscribers, metrics
const RUN_AS = 'prodhome'; // the default lab's runAs:
const REF_PORTS_FROM = 55400; // clear of the default lab's 54320-54399
const TARGET_FIRST_RATIO = 1.2; // the first lab ever, template included
const TARGET_RATIO = 0.5; // once the template exists
const TARGET_DOWN_S = 2;

// ---- arguments ------------------------------------------------------------------------------

const { rounds, json } = benchArgs({ usage: 'node bench/up.mjs [--rounds N] [--json]', defaultRounds: 5, needs: 'runtime/binaries.js' });

// Resolve the binaries exactly as `prodhome up` does, including the copy into a reachable cache
// when the server user cannot traverse the install (an npm install under a 0700 /root).
const { resolveBinaries, reachableBinDir } = await import('../dist/runtime/binaries.js');
const { SYSTEM_ROOT } = await import('../dist/lab/lifecycle.js');
const { templateRoot } = await import('../dist/lab/templates.js');
const { ensureTemplate, templateDir, makeSpares, sparesDir } = await import('../dist/runtime/template.js');
const { serverEnv: prodhomeServerEnv } = await import('../dist/runtime/local.js');

// This run's own template directory, for `prodhome up` here and the agents it starts.
const TEMPLATES = makeTempDir('prodhome-bench-templates-');
process.env.PRODHOME_TEMPLATES = TEMPLATES;

// ---- helpers --------------------------------------------------------------------------------

const log = logger(json);

const checkInterrupted = watchInterrupts();


function lookupUser(name) {
  const u = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  if (u.status !== 0) return undefined;
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  return { name, uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/** Postgres refuses root: as root, both sides run the servers as the `prodhome` OS user. */
function serverUser() {
  if (process.getuid?.() !== 0) return undefined;
  let user = lookupUser(RUN_AS);
  if (!user) {
    // The same user `prodhome up` would create, made up front so round 1 may start either way.
    spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', RUN_AS]);
    user = lookupUser(RUN_AS);
    if (!user) throw new Error(`cannot find or create the OS user "${RUN_AS}"`);
  }
  return user;
}

function portFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function freePorts(n, from) {
  const ports = [];
  for (let p = from; ports.length < n && p < from + 500; p++) if (await portFree(p)) ports.push(p);
  if (ports.length < n) throw new Error(`no ${n} free ports from ${from}`);
  return ports;
}

// ---- prodhome -------------------------------------------------------------------------------

/** One fresh lab: up, down, destroy, each timed spawn-to-exit. Always destroys what it made. */
async function benchProdhome(mode) {
  const template = path.join(templateDir(templateRoot(user), { ...found, binDir }, user), 'data');
  // Set the scene off the clock: no template at all; the template without spares; or spares ready.
  if (mode === 'first') removeDir(path.dirname(template));
  if (mode !== 'later') removeDir(sparesDir(template));
  if (mode !== 'first') await ensureTemplate(templateRoot(user), { ...found, binDir }, user, prodhomeServerEnv(os.tmpdir()), () => {});
  if (mode === 'later') await makeSpares(template, { ...found, binDir }, NODES, user, prodhomeServerEnv(os.tmpdir()));
  const cwd = makeTempDir('prodhome-bench-');
  const cli = (...args) => mustRun(`prodhome ${args.join(' ')}`, process.execPath, [CLI, ...args], { cwd });
  let destroyed = false;
  try {
    const up = await cli('up');
    checkInterrupted();
    const down = await cli('down');
    checkInterrupted();
    const destroy = await cli('destroy', '--yes');
    destroyed = true;
    return { up: up.ms, down: down.ms, destroy: destroy.ms };
  } finally {
    try {
      if (!destroyed) await rescueLab(cwd, 'prodhome').catch((e) => console.error(`bench: cleaning up the lab: ${e.message}`));
    } finally {
      removeDir(cwd);
    }
  }
}

// ---- reference: bare initdb + pg_ctl start ----------------------------------------------------

const asUser = (user) => (user ? { uid: user.uid, gid: user.gid } : {});

/** The environment prodhome gives initdb and postgres (serverEnv in src/runtime/local.ts). */
const serverEnv = (home) => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LC_ALL: 'C', ...(process.env.TZ ? { TZ: process.env.TZ } : {}) });

/** Four clusters, initdb then start, in parallel; timed from first spawn to the last pg_ctl start. */
async function benchReference(binDir, user) {
  const root = makeTempDir('prodhome-bench-ref-');
  const ports = await freePorts(NODES, REF_PORTS_FROM);
  const clusters = ports.map((port, i) => {
    const dir = path.join(root, `node${i}`);
    fs.mkdirSync(dir, { mode: 0o700 });
    const pwfile = path.join(dir, '.initdb-pw');
    fs.writeFileSync(pwfile, 'bench-password\n', { mode: 0o600 });
    if (user) for (const f of [dir, pwfile]) fs.chownSync(f, user.uid, user.gid);
    return { dir, data: path.join(dir, 'data'), log: path.join(dir, 'postgres.log'), pwfile, port };
  });
  const opts = (c) => ({ ...asUser(user), env: serverEnv(c.dir) });
  try {
    const started = performance.now();
    // allSettled, not all: on a failure the others must finish before the finally below stops
    // and deletes them, or a late pg_ctl start would leave a server running in a deleted dir.
    const settled = await Promise.allSettled(
      clusters.map(async (c) => {
        // The flags initCluster (src/runtime/local.ts) gives initdb, so both sides do the same work.
        await mustRun(`initdb (port ${c.port})`, path.join(binDir, 'initdb'), [
          '-D', c.data, '-U', 'postgres', `--pwfile=${c.pwfile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions',
        ], opts(c));
        await mustRun(`pg_ctl start (port ${c.port})`, path.join(binDir, 'pg_ctl'), [
          '-D', c.data, '-l', c.log, '-o', `-p ${c.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`, '-w', 'start',
        ], opts(c));
      }),
    );
    const elapsed = performance.now() - started;
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return elapsed;
  } finally {
    // Stop whatever did start (a failed round may leave some clusters up), then delete it all.
    await Promise.all(
      clusters.map((c) =>
        fs.existsSync(path.join(c.data, 'postmaster.pid'))
          ? run(path.join(binDir, 'pg_ctl'), ['-D', c.data, '-m', 'fast', '-w', 'stop'], opts(c)).catch(() => {})
          : undefined,
      ),
    );
    await stopStragglers(root); // a postmaster that had not yet written postmaster.pid
    removeDir(root);
  }
}

// ---- main -----------------------------------------------------------------------------------

let user;
let found;
let binDir;
try {
  user = serverUser();
  found = resolveBinaries({}, 'bench');
  binDir = reachableBinDir(found.binDir, user, SYSTEM_ROOT);
} catch (e) {
  console.error(`bench: ${e.message.replace(/^bench: /, '')}`);
  process.exit(1);
}
log(`Postgres ${found.version} (${found.source}) from ${binDir}${user ? `; servers run as ${user.name} (uid ${user.uid})` : ''}`);
log(`${rounds} round(s) of ${NODES} nodes on ${os.cpus().length} CPU(s); order alternates each round`);
log('');
log('round  order                          first up  later up  copied up  reference  ratios first later copied  down    destroy');

const results = [];
try {
  for (let i = 1; i <= rounds; i++) {
    // Rotate who goes first, so no side always gets the warmer (or colder) caches.
    const sides = ['first', 'later', 'copied', 'reference'];
    const order = [...sides.slice((i - 1) % sides.length), ...sides.slice(0, (i - 1) % sides.length)];
    const got = {};
    for (const side of order) {
      got[side] = side === 'reference' ? await benchReference(binDir, user) : await benchProdhome(side);
      checkInterrupted();
    }
    const row = {
      round: i, order: order.join(','), firstUpMs: got.first.up, laterUpMs: got.later.up, copiedUpMs: got.copied.up, referenceMs: got.reference,
      firstRatio: got.first.up / got.reference, laterRatio: got.later.up / got.reference, copiedRatio: got.copied.up / got.reference,
      downMs: got.later.down, destroyMs: got.later.destroy,
    };
    results.push(row);
    log(
      `${String(i).padStart(5)}  ${row.order.padEnd(30)}  ${`${secs(row.firstUpMs)} s`.padStart(8)}  ${`${secs(row.laterUpMs)} s`.padStart(8)}  ${`${secs(row.copiedUpMs)} s`.padStart(9)}  ${`${secs(row.referenceMs)} s`.padStart(9)}  ${row.firstRatio.toFixed(2).padStart(12)} ${row.laterRatio.toFixed(2).padStart(5)} ${row.copiedRatio.toFixed(2).padStart(6)}  ${`${secs(row.downMs)} s`.padStart(6)}  ${`${secs(row.destroyMs)} s`.padStart(7)}`,
    );
  }
} catch (e) {
  console.error(`bench: ${e.message}`);
  process.exitCode = 1;
} finally {
  removeDir(TEMPLATES);
}

if (results.length === rounds) {
  const first = median(results.map((r) => r.firstUpMs));
  const later = median(results.map((r) => r.laterUpMs));
  const copied = median(results.map((r) => r.copiedUpMs));
  const ref = median(results.map((r) => r.referenceMs));
  const down = median(results.map((r) => r.downMs));
  const firstRatio = first / ref;
  const ratio = later / ref;
  const firstOk = firstRatio <= TARGET_FIRST_RATIO;
  const ratioOk = ratio <= TARGET_RATIO;
  const downOk = down < TARGET_DOWN_S * 1000;
  log('');
  log(`first up ever (template made): ${secs(first)} s vs bare initdb+pg_ctl ${secs(ref)} s, ratio ${firstRatio.toFixed(2)} (target <= ${TARGET_FIRST_RATIO}) ${firstOk ? 'PASS' : 'MISS'}`);
  log(`later up (spares claimed):     ${secs(later)} s vs bare initdb+pg_ctl ${secs(ref)} s, ratio ${ratio.toFixed(2)} (target <= ${TARGET_RATIO}) ${ratioOk ? 'PASS' : 'MISS'}`);
  log(`later up, no spares (copied):  ${secs(copied)} s vs bare initdb+pg_ctl ${secs(ref)} s, ratio ${(copied / ref).toFixed(2)} (no target: what up costs when the spares were used up)`);
  log(`down: ${secs(down)} s (target < ${TARGET_DOWN_S} s) ${downOk ? 'PASS' : 'MISS'}`);
  if (json) {
    const summary = {
      postgres: { version: found.version, source: found.source, binDir },
      runAs: user?.name ?? null,
      nodes: NODES,
      rounds: results,
      median: { firstUpMs: first, laterUpMs: later, copiedUpMs: copied, referenceMs: ref, firstRatio, ratio, copiedRatio: copied / ref, downMs: down, destroyMs: median(results.map((r) => r.destroyMs)) },
      targets: { firstRatio: { max: TARGET_FIRST_RATIO, pass: firstOk }, ratio: { max: TARGET_RATIO, pass: ratioOk }, downMs: { below: TARGET_DOWN_S * 1000, pass: downOk } },
    };
    console.log(JSON.stringify(summary, null, 2));
  }
}
