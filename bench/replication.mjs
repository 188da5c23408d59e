#!/usr/bin/env node
// Benchmark: prodhome's replication against what Postgres does on the same servers, in one run.
//
//   1. initial sync   `prodhome replicate` adding a subscription to a 1,000,000-row table, until
//                     the subscriber has every row and the table is ready (pg_subscription_rel
//                     'r'), against a bare COPY of the same rows piped publisher → subscriber
//                     by two psql processes. Ratio = prodhome rows/s ÷ COPY rows/s, target ≥ 0.7.
//   2. catch-up       `replication pause`, 500,000 rows on the publisher, `replication resume`,
//                     until the subscriber has them all. The apply is Postgres's own, so the
//                     reference is "the same backlog applied by Postgres alone": the figure is
//                     printed from resume and from the first row arriving, with no target.
//   3. verify         verify of 2,000,000 rows against `select count(*)` on the publisher then the
//                     subscriber. Ratio = verify time ÷ counts time, target ≤ 3. Like the counts,
//                     which run on connections the bench holds open, the verify timed for the
//                     ratio runs in-process on connections opened beforehand: the operation
//                     (catch-up check, catalog, hashing both sides), not connecting. Also timed
//                     and printed: the in-process call that loads the config and connects (about
//                     +40 ms) and the `prodhome verify --json` command (about +0.2 s of Node).
//
// Each round is a fresh two-node lab (publisher, subscriber1; no memory caps) in a temp dir,
// destroyed at the end of the round. Reports medians and PASS/MISS against the targets; exits
// non-zero only when something fails to run, never on speed.
//
//   node bench/replication.mjs [--rounds N] [--json]   (or BENCH_ROUNDS=N; needs `npm run build`
//                                                        and psql, default /usr/lib/postgresql/15/bin/psql,
//                                                        or BENCH_PSQL=/path/to/psql)

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { benchArgs, CLI, failure, logger, makeTempDir, median, mustRun, removeDir, rescueLab, run, secs, sleep, stopStragglers, watchInterrupts } from './lib.mjs';

const PSQL = process.env.BENCH_PSQL ?? '/usr/lib/postgresql/15/bin/psql';
const LAB = 'benchrepl';
const RUN_AS = 'prodhome';
const PORTS = { from: 57000, to: 57049 };
const SUB = 'books_sub';
const PUB = 'books_pub';
const INITIAL_ROWS = 1_000_000;
const BACKLOG_ROWS = 500_000;
const BACKLOG_TX = 50; // the backlog arrives as 50 transactions of 10,000 rows, like a real one
const VERIFY_ROWS = 2_000_000;
const POLL_MS = 50;
const WAIT_MS = 180_000; // give up on any wait after this long: something is broken, not slow
const TARGET_SYNC_RATIO = 0.7;
const TARGET_VERIFY_RATIO = 3;

// ---- arguments ------------------------------------------------------------------------------

const { rounds, json } = benchArgs({ usage: 'node bench/replication.mjs [--rounds N] [--json]', needs: 'lab/index.js' });
if (!fs.existsSync(PSQL)) {
  console.error(`bench: psql not found at ${PSQL} (the COPY reference needs it); set BENCH_PSQL=/path/to/psql`);
  process.exit(2);
}

const { loadConfig } = await import('../dist/config/index.js');
const { labVerify, nodeConnection, readSecrets, readState } = await import('../dist/lab/index.js');
const { planNodes, verifyScanSettings } = await import('../dist/lab/replication.js');
const { pools, verify } = await import('../dist/replication/index.js');

// ---- helpers --------------------------------------------------------------------------------

const log = logger(json);
const rate = (rows, ms) => rows / (ms / 1000);
const krows = (r) => `${Math.round(r / 1000).toLocaleString('en-US')}k rows/s`;

const checkInterrupted = watchInterrupts();

/** Polls `check` every POLL_MS until it returns something truthy; throws after WAIT_MS. */
async function pollUntil(what, check) {
  const deadline = performance.now() + WAIT_MS;
  for (;;) {
    checkInterrupted();
    const v = await check();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`gave up after ${WAIT_MS / 1000} s waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

// ---- the lab ----------------------------------------------------------------------------------

const BOOKS_DDL = 'CREATE TABLE IF NOT EXISTS books (id bigint PRIMARY KEY, sku int, title text, topic text);';
const rowsSql = (from, to) =>
  `insert into books select g, g, 'title ' || g, case when g % 2 = 0 then 'technical' else 'leadership' end from generate_series(${from}, ${to}) g`;

/** The lab's prodhome.yaml: no memory caps, one publication of books, the subscription optional. */
function labYaml(withSubscription) {
  return `lab: ${LAB}
runAs: ${RUN_AS}
ports: { from: ${PORTS.from}, to: ${PORTS.to} }
nodes:
  publisher:
    role: publisher
  subscriber1:
    role: subscriber
schema:
  - sql: |
      ${BOOKS_DDL}
publications:
  ${PUB}:
    node: publisher
    tables:
      books: {}
${withSubscription ? `subscriptions:\n  ${SUB}:\n    node: subscriber1\n    publications: [${PUB}]\n` : ''}`;
}

const connectTo = (info) =>
  postgres({
    host: info.host,
    port: info.port,
    user: info.user,
    password: info.password,
    database: info.database,
    max: 1,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: 'prodhome-bench' },
  });

/** PG* variables for psql: the password only ever in the environment. */
const pgEnv = (info) => ({
  ...process.env,
  PGHOST: info.host,
  PGPORT: String(info.port),
  PGUSER: info.user,
  PGDATABASE: info.database,
  PGPASSWORD: info.password ?? '',
  PGAPPNAME: 'prodhome-bench',
});

const count = async (sql, table = 'books') => Number((await sql.unsafe(`select count(*)::bigint as n from ${table}`))[0].n);

/** Untimed: a settled starting point for each measure (no pending checkpoint, no hint bits to set). */
async function settle(pub, sub, { vacuum = false } = {}) {
  if (vacuum) {
    await pub.unsafe('vacuum (analyze) books');
    if (await sub`select to_regclass('public.books') is not null as ok`.then((r) => r[0].ok)) await sub.unsafe('vacuum (analyze) books');
  }
  await Promise.all([pub.unsafe('checkpoint'), sub.unsafe('checkpoint')]);
}

// ---- 1. initial sync --------------------------------------------------------------------------

/** `prodhome replicate` with the subscription added, until every row is there and the table is 'r'. */
async function prodhomeInitialSync(ctx) {
  fs.writeFileSync(ctx.configFile, labYaml(true));
  const seen = {}; // first time each pg_subscription_rel state was seen, ms after the command started
  const cmd = run(process.execPath, [CLI, 'replicate'], { cwd: ctx.cwd });
  const started = performance.now();
  let exited;
  cmd.then((r) => (exited = r), () => {});
  const doneAt = await pollUntil('the initial sync', async () => {
    if (exited && exited.code !== 0) throw failure('prodhome replicate', exited);
    const [row] = await ctx.sub`
      select r.srsubstate as state from pg_subscription_rel r join pg_subscription s on s.oid = r.srsubid
      where s.subname = ${SUB} and r.srrelid = to_regclass('public.books')`;
    const now = performance.now();
    if (row && seen[row.state] === undefined) seen[row.state] = now - started;
    if (row?.state !== 'r') return undefined;
    return (await count(ctx.sub)) === INITIAL_ROWS ? now : undefined;
  });
  const r = await cmd;
  if (r.code !== 0) throw failure('prodhome replicate', r);
  return { ms: doneAt - started, commandMs: r.ms, states: seen };
}

/** COPY (select * from books) TO STDOUT on the publisher | COPY books_ref FROM STDIN on the subscriber. */
async function referenceCopy(ctx) {
  await ctx.sub.unsafe('drop table if exists books_ref');
  await ctx.sub.unsafe('create table books_ref (id bigint primary key, sku int, title text, topic text)');
  const started = performance.now();
  const [out, into] = await new Promise((resolve, reject) => {
    const from = spawn(PSQL, ['-X', '-v', 'ON_ERROR_STOP=1', '-c', 'copy (select * from books) to stdout'], { env: pgEnv(ctx.pubInfo), stdio: ['ignore', 'pipe', 'pipe'] });
    const to = spawn(PSQL, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', 'copy books_ref from stdin'], { env: pgEnv(ctx.subInfo), stdio: ['pipe', 'pipe', 'pipe'] });
    from.stdout.pipe(to.stdin);
    const collect = (child, name) =>
      new Promise((res, rej) => {
        let stderr = '';
        let stdout = '';
        if (child !== from) child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.on('error', rej);
        child.on('close', (code, signal) => res({ name, code, signal, stdout, stderr }));
      });
    Promise.all([collect(from, 'psql copy to stdout (publisher)'), collect(to, 'psql copy from stdin (subscriber)')]).then(resolve, reject);
  });
  const ms = performance.now() - started;
  for (const r of [out, into]) if (r.code !== 0) throw failure(r.name, r);
  const n = await count(ctx.sub, 'books_ref');
  if (n !== INITIAL_ROWS) throw new Error(`the reference COPY loaded ${n} rows, expected ${INITIAL_ROWS}`);
  await ctx.sub.unsafe('drop table books_ref');
  return { ms };
}

// ---- 2. catch-up ------------------------------------------------------------------------------

const applyWorkerPid = async (sub) =>
  (await sub`select pid from pg_stat_subscription where subname = ${SUB} and relid is null and pid is not null limit 1`)[0]?.pid;

async function catchUp(ctx) {
  const before = await count(ctx.pub);
  const first = before + 1;
  const last = before + BACKLOG_ROWS;
  await mustRun('prodhome replication pause', process.execPath, [CLI, 'replication', 'pause', SUB], { cwd: ctx.cwd });
  // DISABLE takes effect when the apply worker notices: wait for it to be gone, so the whole
  // backlog waits for the resume.
  const pauseStarted = performance.now();
  await pollUntil('the apply worker to stop after pause', async () => !(await applyWorkerPid(ctx.sub)));
  const pauseMs = performance.now() - pauseStarted;
  const per = BACKLOG_ROWS / BACKLOG_TX;
  await ctx.pub.unsafe(`do $$ begin
    for i in 0..${BACKLOG_TX - 1} loop
      ${rowsSql(`${first} + i * ${per}`, `${first} + (i + 1) * ${per} - 1`)};
      commit;
    end loop; end $$`);
  const target = await count(ctx.pub);
  if (target !== last) throw new Error(`the publisher has ${target} rows after the backlog, expected ${last}`);
  await settle(ctx.pub, ctx.sub);

  const marks = {};
  const cmd = run(process.execPath, [CLI, 'replication', 'resume', SUB], { cwd: ctx.cwd });
  const started = performance.now();
  let exited;
  cmd.then((r) => (exited = r), () => {});
  const doneAt = await pollUntil('the catch-up', async () => {
    if (exited && exited.code !== 0) throw failure('prodhome replication resume', exited);
    // Point lookups on the primary key: cheap, so 50 ms polling does not compete with the apply.
    const [row] = await ctx.sub`
      select (select pid from pg_stat_subscription where subname = ${SUB} and relid is null and pid is not null limit 1) as pid,
             exists (select from books where id = ${first}) as first, exists (select from books where id = ${last}) as last`;
    const now = performance.now() - started;
    if (row.pid && marks.worker === undefined) marks.worker = now;
    if (row.first && marks.firstRow === undefined) marks.firstRow = now;
    if (!row.last) return undefined;
    return (await count(ctx.sub)) === target ? performance.now() : undefined;
  });
  const r = await cmd;
  if (r.code !== 0) throw failure('prodhome replication resume', r);
  const ms = doneAt - started;
  return { ms, fromFirstRowMs: ms - marks.firstRow, workerMs: marks.worker ?? null, firstRowMs: marks.firstRow, commandMs: r.ms, pauseMs };
}

// ---- 3. verify --------------------------------------------------------------------------------

async function grow(ctx) {
  const before = await count(ctx.pub);
  await ctx.pub.unsafe(rowsSql(before + 1, VERIFY_ROWS));
  await pollUntil('the subscriber to catch up to 2,000,000 rows', async () => {
    const [row] = await ctx.sub`select exists (select from books where id = ${VERIFY_ROWS}) as last`;
    return row.last && (await count(ctx.sub)) === VERIFY_ROWS;
  });
}

async function verifyCommand(ctx) {
  const r = await run(process.execPath, [CLI, 'verify', '--json'], { cwd: ctx.cwd });
  if (r.code !== 0) throw failure('prodhome verify --json', r);
  let result;
  try {
    result = JSON.parse(r.stdout);
  } catch (e) {
    throw new Error(`prodhome verify --json printed no JSON (${e.message}): ${r.stdout.slice(0, 200)}`);
  }
  const t = result.tables?.[0];
  if (!result.ok || result.tables?.length !== 1 || !t.match || t.publisherRows !== VERIFY_ROWS || t.subscriberRows !== VERIFY_ROWS) {
    throw new Error(`prodhome verify did not report a ${VERIFY_ROWS}-row match: ${JSON.stringify(result).slice(0, 400)}`);
  }
  // In-process, as `prodhome verify` runs it without Node's start-up: config, connect, verify.
  let started = performance.now();
  const cold = await labVerify(loadConfig({ cwd: ctx.cwd }), { waitMs: 30_000, maxKeys: 10 });
  const coldMs = performance.now() - started;
  if (!cold.ok) throw new Error('in-process verify did not report a match');
  // The operation alone, on connections opened first (as the counts' are), with the settings
  // labVerify gives its pools. Two connections a node: verify runs queries side by side.
  const config = loadConfig({ cwd: ctx.cwd });
  const db = pools(planNodes(config, readState(config.stateDir), readSecrets(config.stateDir)), (n) => (n.runtime === 'local' ? verifyScanSettings() : undefined));
  try {
    await Promise.all(['publisher', 'subscriber1'].flatMap((n) => [db.sql(n)`select pg_sleep(0.01)`, db.sql(n)`select pg_sleep(0.01)`]));
    started = performance.now();
    const warm = await verify(config.replication, db.sql, { waitMs: 30_000, maxKeys: 10 });
    const warmMs = performance.now() - started;
    if (!warm.ok) throw new Error('verify on open connections did not report a match');
    return { ms: warmMs, inProcessMs: coldMs, cliMs: r.ms, waitedMs: warm.caughtUp?.[0]?.waitedMs ?? null };
  } finally {
    await db.end();
  }
}

async function referenceCounts(ctx) {
  const started = performance.now();
  const p = await count(ctx.pub);
  const s = await count(ctx.sub);
  const ms = performance.now() - started;
  if (p !== VERIFY_ROWS || s !== VERIFY_ROWS) throw new Error(`count(*) gave ${p} on the publisher and ${s} on the subscriber, expected ${VERIFY_ROWS}`);
  return { ms };
}

// ---- one round --------------------------------------------------------------------------------

async function benchRound(i) {
  const cwd = makeTempDir('prodhome-bench-repl-');
  const configFile = path.join(cwd, 'prodhome.yaml');
  fs.writeFileSync(configFile, labYaml(false));
  const cli = (...a) => mustRun(`prodhome ${a.join(' ')}`, process.execPath, [CLI, ...a], { cwd });
  const ctx = { cwd, configFile };
  let destroyed = false;
  try {
    await cli('up');
    checkInterrupted();
    const config = loadConfig({ cwd });
    ctx.pubInfo = nodeConnection(config, 'publisher');
    ctx.subInfo = nodeConnection(config, 'subscriber1');
    ctx.pub = connectTo(ctx.pubInfo);
    ctx.sub = connectTo(ctx.subInfo);
    ctx.version = (await ctx.pub`select current_setting('server_version') as v`)[0].v;

    await ctx.pub.unsafe(rowsSql(1, INITIAL_ROWS));
    await settle(ctx.pub, ctx.sub, { vacuum: true });
    checkInterrupted();

    // 1. Alternate who goes first, so neither side always gets the warmer (or colder) caches.
    const prodhomeFirst = i % 2 === 1;
    let sync;
    let copy;
    if (prodhomeFirst) {
      sync = await prodhomeInitialSync(ctx);
      await settle(ctx.pub, ctx.sub);
      copy = await referenceCopy(ctx);
    } else {
      copy = await referenceCopy(ctx);
      await settle(ctx.pub, ctx.sub);
      sync = await prodhomeInitialSync(ctx);
    }
    checkInterrupted();

    // 2.
    await settle(ctx.pub, ctx.sub, { vacuum: true });
    const catchup = await catchUp(ctx);
    checkInterrupted();

    // 3. Hint bits set and caches warm on both sides first, so neither pays for the other.
    await grow(ctx);
    await settle(ctx.pub, ctx.sub, { vacuum: true });
    await count(ctx.pub);
    await count(ctx.sub);
    let verify;
    let counts;
    if (prodhomeFirst) {
      verify = await verifyCommand(ctx);
      counts = await referenceCounts(ctx);
    } else {
      counts = await referenceCounts(ctx);
      verify = await verifyCommand(ctx);
    }
    checkInterrupted();

    await Promise.all([ctx.pub.end({ timeout: 2 }), ctx.sub.end({ timeout: 2 })]);
    ctx.pub = ctx.sub = undefined;
    await cli('destroy', '--yes');
    destroyed = true;
    return { round: i, first: prodhomeFirst ? 'prodhome' : 'reference', version: ctx.version, sync, copy, catchup, verify, counts };
  } finally {
    try {
      await Promise.all([ctx.pub?.end({ timeout: 2 }), ctx.sub?.end({ timeout: 2 })]).catch(() => {});
      if (!destroyed) await rescueLab(cwd, LAB).catch((e) => console.error(`bench: cleaning up the lab: ${e.message}`));
      // Whatever happened, no server may outlive the round.
      await stopStragglers(cwd);
    } finally {
      removeDir(cwd);
    }
  }
}

// ---- main -------------------------------------------------------------------------------------

if (process.getuid?.() === 0 && spawnSync('id', ['-u', RUN_AS]).status !== 0) {
  // prodhome creates it too; made up front so every round starts the same way.
  spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', RUN_AS]);
}
log(`${rounds} round(s) on ${os.cpus().length} CPU(s), each a fresh lab: publisher + subscriber1, no memory caps, ports ${PORTS.from}-${PORTS.to}`);
log(`initial sync ${INITIAL_ROWS.toLocaleString('en-US')} rows; catch-up ${BACKLOG_ROWS.toLocaleString('en-US')} rows in ${BACKLOG_TX} transactions; verify at ${VERIFY_ROWS.toLocaleString('en-US')} rows`);
log('');
log('round  first      sync      COPY      ratio  resume→caught  1st row→caught  worker  verify   counts   ratio');

const results = [];
try {
  for (let i = 1; i <= rounds; i++) {
    const r = await benchRound(i);
    results.push(r);
    if (i === 1) log(`       (Postgres ${r.version} on both nodes)`);
    log(
      [
        String(i).padStart(5),
        r.first.padEnd(9),
        `${secs(r.sync.ms)} s`.padStart(8),
        `${secs(r.copy.ms)} s`.padStart(8),
        (rate(INITIAL_ROWS, r.sync.ms) / rate(INITIAL_ROWS, r.copy.ms)).toFixed(2).padStart(5),
        `${secs(r.catchup.ms)} s`.padStart(13),
        `${secs(r.catchup.fromFirstRowMs)} s`.padStart(14),
        `${r.catchup.workerMs === null ? '-' : secs(r.catchup.workerMs)} s`.padStart(6),
        `${secs(r.verify.ms)} s`.padStart(7),
        `${secs(r.counts.ms)} s`.padStart(7),
        (r.verify.ms / r.counts.ms).toFixed(2).padStart(6),
      ].join('  '),
    );
    log(
      `       sync detail: replicate exited ${secs(r.sync.commandMs)} s; table states first seen ${Object.entries(r.sync.states).map(([s, ms]) => `${s}@${secs(ms)}`).join(' ')} s` +
        `; catch-up: pause took ${secs(r.catchup.pauseMs)} s, resume exited ${secs(r.catchup.commandMs)} s, first row ${secs(r.catchup.firstRowMs)} s; verify waited ${r.verify.waitedMs ?? '-'} ms for catch-up`,
    );
  }
} catch (e) {
  console.error(`bench: ${e.message}`);
  process.exitCode = 1;
}

if (results.length === rounds) {
  const m = (f) => median(results.map(f));
  const syncMs = m((r) => r.sync.ms);
  const copyMs = m((r) => r.copy.ms);
  const syncRatio = m((r) => rate(INITIAL_ROWS, r.sync.ms) / rate(INITIAL_ROWS, r.copy.ms));
  const catchMs = m((r) => r.catchup.ms);
  const catchFirstMs = m((r) => r.catchup.fromFirstRowMs);
  const workerMs = m((r) => r.catchup.workerMs ?? NaN);
  const verifyMs = m((r) => r.verify.ms);
  const countsMs = m((r) => r.counts.ms);
  const verifyRatio = m((r) => r.verify.ms / r.counts.ms);
  const syncOk = syncRatio >= TARGET_SYNC_RATIO;
  const verifyOk = verifyRatio <= TARGET_VERIFY_RATIO;
  log('');
  log(`medians over ${rounds} round(s) (ratios are the median of each round's ratio):`);
  log(
    `initial sync: prodhome replicate ${krows(rate(INITIAL_ROWS, syncMs))} (${secs(syncMs)} s), bare COPY pipe ${krows(rate(INITIAL_ROWS, copyMs))} (${secs(copyMs)} s), ` +
      `ratio ${syncRatio.toFixed(2)} (target >= ${TARGET_SYNC_RATIO}) ${syncOk ? 'PASS' : 'MISS'}`,
  );
  log(
    `catch-up: ${krows(rate(BACKLOG_ROWS, catchMs))} from resume (${secs(catchMs)} s; the figure used), ${krows(rate(BACKLOG_ROWS, catchFirstMs))} from the first row arriving (${secs(catchFirstMs)} s); ` +
      `apply worker running ${secs(workerMs)} s after resume. Reference: the same backlog applied by Postgres alone — the apply is Postgres's own; no target`,
  );
  const verifyCliMs = m((r) => r.verify.cliMs);
  const verifyColdMs = m((r) => r.verify.inProcessMs);
  log(
    `verify: prodhome verify ${secs(verifyMs)} s on open connections, count(*) publisher then subscriber ${secs(countsMs)} s, ratio ${verifyRatio.toFixed(2)} (target <= ${TARGET_VERIFY_RATIO}) ${verifyOk ? 'PASS' : 'MISS'}; ` +
      `connecting too ${secs(verifyColdMs)} s (ratio ${(verifyColdMs / countsMs).toFixed(2)}), the \`prodhome verify\` command ${secs(verifyCliMs)} s (ratio ${(verifyCliMs / countsMs).toFixed(2)})`,
  );
  if (json) {
    const summary = {
      postgres: results[0].version,
      rows: { initial: INITIAL_ROWS, backlog: BACKLOG_ROWS, backlogTransactions: BACKLOG_TX, verify: VERIFY_ROWS },
      rounds: results,
      median: {
        initialSync: { prodhomeMs: syncMs, referenceMs: copyMs, prodhomeRowsPerSec: rate(INITIAL_ROWS, syncMs), referenceRowsPerSec: rate(INITIAL_ROWS, copyMs), ratio: syncRatio },
        catchUp: {
          fromResumeMs: catchMs,
          fromFirstRowMs: catchFirstMs,
          workerStartMs: workerMs,
          rowsPerSecFromResume: rate(BACKLOG_ROWS, catchMs),
          rowsPerSecFromFirstRow: rate(BACKLOG_ROWS, catchFirstMs),
          figureUsed: 'fromResume',
          reference: 'the same backlog applied by Postgres alone',
        },
        verify: { prodhomeMs: verifyMs, prodhomeConnectingMs: verifyColdMs, prodhomeCliMs: verifyCliMs, countsMs, ratio: verifyRatio },
      },
      targets: { initialSyncRatio: { min: TARGET_SYNC_RATIO, pass: syncOk }, verifyRatio: { max: TARGET_VERIFY_RATIO, pass: verifyOk } },
    };
    console.log(JSON.stringify(summary, null, 2));
  }
}
