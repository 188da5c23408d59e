#!/usr/bin/env node
// Benchmark: a replication link through prodhome's network-fault proxy against the same link
// going straight to the publisher, on the same servers, in one run.
//
//   1. catch-up   from empty, checkpointed tables: the subscription paused, 1,000,000 rows (20
//                 transactions of 50,000) on the publisher, resumed; time until the subscriber has them all — once direct, once
//                 through a `fault-proxy` with no toxics (alternating which goes first).
//                 Ratio = proxy rows/s ÷ direct rows/s, target ≥ 0.9.
//   2. latency    `fault net LINK --latency 200ms`, measured by the lab's heartbeat: a beat is
//                 stamped on the publisher (the sampler's own statement) and the subscriber's
//                 ENABLE ALWAYS trigger stamps its apply; applied_at − beat, one beat at a time,
//                 through the proxy minus the same direct. Target: within 10 % of 200 ms.
//
// Each round is a fresh two-node lab in a temp dir, destroyed at the end. Prints medians and
// PASS/MISS; exits non-zero only when something fails to run, never on speed.
//
//   node bench/net.mjs [--rounds N] [--json]   (needs `npm run build`)

import fs from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { benchArgs, CLI, logger, makeTempDir, median, mustRun, removeDir, rescueLab, secs, sleep, stopStragglers, watchInterrupts } from './lib.mjs';

const LAB = 'benchnet';
const SUB = 'events_sub';
const ROWS = 1_000_000;
const TX = 20;
const LATENCY_MS = 200;
const LATENCY_SAMPLES = 15;
const WAIT_MS = 300_000;
const TARGET_THROUGHPUT = 0.9;
const TARGET_LATENCY = 0.1;

const { rounds, json } = benchArgs({ usage: 'node bench/net.mjs [--rounds N] [--json]', needs: 'faults/proxy.js', defaultRounds: 2 });
const say = logger(json);
const checkInterrupt = watchInterrupts();

const { loadConfig } = await import('../dist/config/index.js');
const { nodeConnection } = await import('../dist/lab/index.js');
const { spawnDetached, stopHolder } = await import('../dist/faults/holder.js');
const { HEARTBEAT_BEAT_SQL } = await import('../dist/replication/index.js');
const PUB = 'events_pub';

const YAML = `lab: ${LAB}
ports: { from: 60350, to: 60399 }
nodes:
  publisher: { role: publisher }
  subscriber1: { role: subscriber }
metrics: { store: false, prometheus: false }
schema:
  - sql: CREATE TABLE IF NOT EXISTS events (id bigint PRIMARY KEY, payload text);
publications:
  events_pub:
    node: publisher
    tables: { events: {} }
subscriptions:
  ${SUB}:
    node: subscriber1
    publications: [events_pub]
`;

const pg = (info) => postgres({ ...info, max: 1, onnotice: () => {}, connect_timeout: 10 });

async function waitUntil(check, what) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Pause, write ROWS, resume; ms from resume until the subscriber has every row. */
async function catchUp(pub, sub, from) {
  // The same start each time: empty tables (the TRUNCATE replicates), checkpointed, so the second
  // run pays for no bigger index and no checkpoint of the first one's writes.
  await pub`truncate events`;
  await waitUntil(async () => (await sub`select count(*)::int as n from events`)[0].n === 0, 'the truncate to replicate');
  await pub`checkpoint`;
  await sub`checkpoint`;
  await sub.unsafe(`alter subscription ${SUB} disable`);
  await waitUntil(async () => (await pub`select count(*)::int as n from pg_stat_replication where application_name = ${SUB}`)[0].n === 0, 'the walsender to go');
  const per = ROWS / TX;
  for (let t = 0; t < TX; t++) {
    const lo = from + t * per;
    await pub`insert into events select g, md5(g::text) from generate_series(${lo}::bigint, ${lo + per - 1}::bigint) g`;
  }
  const want = (await pub`select count(*)::bigint as n from events`)[0].n;
  const started = performance.now();
  await sub.unsafe(`alter subscription ${SUB} enable`);
  await waitUntil(async () => (await sub`select count(*)::bigint as n from events`)[0].n === want, 'catch-up');
  return performance.now() - started;
}

/** Median heartbeat latency, ms: applied_at − beat of beats sent one at a time (the replication_heartbeat metric's lag). */
async function heartbeat(pub, sub) {
  const samples = [];
  while (samples.length < LATENCY_SAMPLES) {
    const [{ beat }] = await pub.unsafe(`${HEARTBEAT_BEAT_SQL} RETURNING extract(epoch from beat)::text AS beat`, [[PUB]]);
    const t0 = performance.now();
    for (;;) {
      const [row] = await sub`select extract(epoch from beat)::text as beat, (extract(epoch from applied_at - beat) * 1000)::float8 as ms
        from public.prodhome_heartbeat where publication = ${PUB}`;
      if (row?.beat === beat) {
        samples.push(row.ms);
        break;
      }
      if (row && Number(row.beat) > Number(beat)) break; // overtaken by another beat (an agent's): take the next
      if (performance.now() - t0 > 30_000) throw new Error('a heartbeat did not arrive within 30 s');
      await sleep(5);
    }
    await sleep(50);
  }
  return median(samples);
}

/** CPU seconds a process has used (user + system), from /proc. */
function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').slice(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Until the link's walsender streams (one started after `since`, when given: the link through a new proxy). */
async function streaming(pub, since = new Date(0)) {
  await waitUntil(async () => {
    const [w] = await pub`select state, backend_start from pg_stat_replication where application_name = ${SUB} order by backend_start desc limit 1`;
    return w?.state === 'streaming' && w.backend_start > since;
  }, 'streaming');
}

const results = [];
for (let round = 1; round <= rounds; round++) {
  const cwd = makeTempDir('prodhome-bench-net-');
  fs.writeFileSync(path.join(cwd, 'prodhome.yaml'), YAML);
  const cli = (...a) => mustRun(`prodhome ${a.join(' ')}`, process.execPath, [CLI, ...a], { cwd });
  let destroyed = false;
  let proxy;
  let pub;
  let sub;
  try {
    await cli('up');
    checkInterrupt();
    const config = loadConfig({ file: path.join(cwd, 'prodhome.yaml') });
    const pubInfo = nodeConnection(config, 'publisher');
    const subInfo = nodeConnection(config, 'subscriber1');
    pub = pg(pubInfo);
    sub = pg(subInfo);
    await streaming(pub);

    // 1. catch-up, direct and through a proxy with no toxics; which goes first alternates.
    const spec = { upstream: { host: pubInfo.host, port: pubInfo.port }, toxics: {}, node: 'subscriber1', subscriber: subInfo, subscription: SUB };
    const times = {};
    let next = 1;
    for (const how of round % 2 ? ['direct', 'proxy'] : ['proxy', 'direct']) {
      if (how === 'proxy') {
        // It points the subscription at itself before it answers.
        proxy = (await spawnDetached('fault-proxy', spec, path.join(cwd, 'proxy.log'))).ref;
      }
      times[how] = await catchUp(pub, sub, next);
      next += ROWS;
      if (how === 'proxy') {
        times.proxyCpu = cpuSeconds(proxy.pid);
        await stopHolder(proxy); // it points the subscription back as it ends
        proxy = undefined;
      }
      checkInterrupt();
      say(`round ${round}: catch-up of ${ROWS} rows ${how}: ${secs(times[how])} s${how === 'proxy' ? ` (the proxy used ${times.proxyCpu.toFixed(2)} s of CPU)` : ''}`);
    }

    // 2. latency by the heartbeat: direct, then through `fault net --latency 200ms`.
    await streaming(pub);
    const direct = await heartbeat(pub, sub);
    const injected = new Date();
    await cli('fault', 'net', SUB, '--latency', `${LATENCY_MS}ms`);
    await streaming(pub, injected);
    const through = await heartbeat(pub, sub);
    await cli('fault', 'clear');
    say(`round ${round}: heartbeat latency direct ${direct.toFixed(1)} ms, with --latency ${LATENCY_MS}ms ${through.toFixed(1)} ms (added ${(through - direct).toFixed(1)} ms)`);
    results.push({ direct: times.direct, proxy: times.proxy, proxyCpu: times.proxyCpu, latencyDirect: direct, latencyThrough: through });
    await pub.end();
    await sub.end();
    pub = sub = undefined;
    await cli('destroy', '--yes');
    destroyed = true;
  } finally {
    await pub?.end({ timeout: 1 }).catch(() => {});
    await sub?.end({ timeout: 1 }).catch(() => {});
    if (proxy) await stopHolder(proxy).catch(() => {});
    if (!destroyed) {
      await rescueLab(cwd, LAB).catch((e) => console.error(`bench: cleaning up the lab: ${e.message}`));
      await stopStragglers(cwd);
    }
    removeDir(cwd);
  }
}

const throughput = median(results.map((r) => r.direct / r.proxy));
const added = median(results.map((r) => r.latencyThrough - r.latencyDirect));
const off = Math.abs(added - LATENCY_MS) / LATENCY_MS;
const summary = {
  rows: ROWS,
  rounds,
  catchUpDirectSeconds: median(results.map((r) => r.direct)) / 1000,
  catchUpProxySeconds: median(results.map((r) => r.proxy)) / 1000,
  throughputRatio: throughput,
  proxyCpuSeconds: median(results.map((r) => r.proxyCpu)),
  addedLatencyMs: added,
  latencyAskedMs: LATENCY_MS,
};
if (json) console.log(JSON.stringify(summary, null, 2));
say(`catch-up through the proxy: ${throughput.toFixed(2)}× direct (target ≥ ${TARGET_THROUGHPUT}) ${throughput >= TARGET_THROUGHPUT ? 'PASS' : 'MISS'}`);
say(`added latency: ${added.toFixed(1)} ms for ${LATENCY_MS} ms asked (${(off * 100).toFixed(1)} % off, target ≤ ${TARGET_LATENCY * 100} %) ${off <= TARGET_LATENCY ? 'PASS' : 'MISS'}`);
