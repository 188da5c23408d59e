#!/usr/bin/env node
// Benchmark: the live dashboard over 1 h and 24 h of the default 4-node lab at 1 s. Brings up a
// lab, lets the agent sample, then fills the store's past by copying the newest sample of every
// raw table back in time (one row set per second) and runs the store's rollup job over it, so
// every panel has a full range to read, stored as the agent's store keeps it.
// Reports, with the targets of issue 13:
//   - navigation → every panel drawn in headless Chromium, 1 h (≤ 1 s) and 24 h (≤ 1.5 s);
//   - each API series query over 24 h, p95 (≤ 50 ms), beside the same SQL run directly (the
//     reference: what the store itself costs);
//   - page weight, HTML+JS+CSS uncompressed (≤ 300 kB);
//   - the agent's extra CPU with one page open in live mode (≤ 2 % of a core);
//   - uPlot drawing 100k points in this Chromium.
// Exits non-zero only when something fails to run, never on speed.
//
//   node bench/dashboard.mjs [--rounds N] [--json]      (needs `npm run build` and /usr/bin/chromium)

import fs from 'node:fs';
import path from 'node:path';
import { benchArgs, CLI, ROOT, logger, makeTempDir, median, mustRun, removeDir, rescueLab, sleep } from './lib.mjs';

const { rounds, json } = benchArgs({ usage: 'node bench/dashboard.mjs [--rounds N] [--json]', defaultRounds: 5, needs: 'dashboard/index.js' });
const log = logger(json);
const CHROMIUM = '/usr/bin/chromium';
if (!fs.existsSync(CHROMIUM)) {
  console.error(`${CHROMIUM} is missing: apt-get install chromium`);
  process.exit(1);
}
const { chromium } = await import('playwright-core');
const { DEFAULT_CONFIG_YAML } = await import('../dist/config/index.js');
const { nodeConnection, readSecrets, readAgentStatus, agentPid } = await import('../dist/lab/index.js');
const { connect, quoteIdent } = await import('../dist/pg/index.js');
const { loadPanels, seriesSql, chooseStep } = await import('../dist/dashboard/index.js');
const { chooseTier, KEEP_DEFAULTS, maintainStore, storedColumns } = await import('../dist/sinks/index.js');
const { loadCatalog } = await import('../dist/metrics/index.js');
// Each family at its own sampling interval (pg_table every 5 s…), as the agent stores it.
const everySeconds = new Map(loadCatalog().map((m) => [m.name, (m.everyMs ?? 1000) / 1000]));

const dir = makeTempDir('prodhome-bench-dash-');
fs.writeFileSync(
  path.join(dir, 'prodhome.yaml'),
  DEFAULT_CONFIG_YAML.replace('lab: prodhome', 'lab: benchdash').replace(/ports:\n  from: \d+\n  to: \d+\n/, 'ports:\n  from: 58960\n  to: 58999\n'),
);
const p = (n) => [...n].sort((a, b) => a - b)[Math.min(n.length - 1, Math.ceil(n.length * 0.95) - 1)];
const results = {};
let browser;
let sql;
try {
  await mustRun('prodhome up', process.execPath, [CLI, 'up'], { cwd: dir });
  const config = (await import('../dist/config/index.js')).loadConfig({ file: path.join(dir, 'prodhome.yaml') });
  const url = (await mustRun('prodhome dashboard', process.execPath, [CLI, 'dashboard', '--print-url'], { cwd: dir })).stdout.trim();
  log(`lab up; sampling 15 s before filling the past…`);
  await sleep(15_000);

  // ---- 24 h of history: the newest sample of each raw table, once per second back in time
  // (counters counting), then the store's own rollup and retention job, as the agent runs it:
  // the last 6 h stay at full resolution, the rest is in the 1- and 10-minute tiers ----
  sql = connect(nodeConnection(config, 'metrics'), { max: 1 });
  // What the page reads (panels, overview, statements); pg_settings (1 min) and the sampler's own tables are left as sampled.
  const read = new Set([...loadPanels().map((x) => x.measurement), 'pg_up', 'pg_statements', 'pg_connections_limit']);
  const tables = (await sql`select c.relname as t from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'metrics' and c.relkind = 'p' and c.relname like '%\\_raw'`)
    .map((r) => r.t.slice(0, -4))
    .filter((t) => read.has(t));
  const DAY = 86_400_000;
  const HOUR = 3_600_000;
  const now = Date.now();
  for (const t of tables) {
    const raw = `metrics.${quoteIdent(`${t}_raw`)}`;
    for (let h = Math.floor((now - DAY) / HOUR) - 1; h <= Math.floor(now / HOUR); h++) {
      const from = new Date(h * HOUR).toISOString();
      const to = new Date((h + 1) * HOUR).toISOString();
      await sql.unsafe(`create table if not exists metrics.${quoteIdent(`${t}_raw_${from.slice(0, 13).replace(/[-T]/g, '')}`)} partition of ${raw} for values from ('${from}') to ('${to}')`);
    }
    const cols = await sql`select attname as name, format_type(atttypid, atttypmod) as type from pg_attribute where attrelid = ${raw}::regclass and attnum > 0 and not attisdropped and attname <> 'time'`;
    const list = cols.map((c) => quoteIdent(c.name)).join(', ');
    const values = cols.map((c) => (c.type === 'bigint' ? `greatest(l.${quoteIdent(c.name)} - s, 0)` : `l.${quoteIdent(c.name)}`)).join(', ');
    const started = Date.now();
    await sql.unsafe(`insert into ${raw} (time, ${list})
      select l.time - make_interval(secs => s), ${values}
      from (select * from ${raw} where time = (select max(time) from ${raw})) l,
           generate_series(20, 86400, ${Math.max(1, Math.round(everySeconds.get(t) ?? 1))}) s`);
    log(`  ${t}: filled 24 h in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  // The job, as the agent's store runs it every minute, until it has caught up with the filled past.
  await sql`delete from metrics._rollup`;
  const job = { schema: 'metrics', rawKeepMs: KEEP_DEFAULTS.rawMs, oneMinuteKeepMs: KEEP_DEFAULTS.oneMinuteMs, retentionMs: 7 * DAY, budgetMs: 60_000 };
  const rollStarted = Date.now();
  for (;;) {
    const r = await maintainStore(sql, { ...job, now: Date.now() });
    const [{ behind }] = await sql`select count(*)::int as behind from (select distinct measurement from metrics._rollup) m
      where not exists (select 1 from metrics._rollup r where r.measurement = m.measurement and r.tier = '10m' and r.done_until > now() - interval '30 minutes')`;
    if (!r.unfinished && behind === 0 && r.rolled.length === 0) break;
    if (!r.rolled.length) await sleep(1000);
  }
  log(`  rolled up by the store's job in ${((Date.now() - rollStarted) / 1000).toFixed(0)} s`);
  await sql`analyze`;
  const [{ n }] = await sql`select sum(n_live_tup)::bigint as n from pg_stat_user_tables where schemaname = 'metrics'`;
  log(`store: ${n} rows (raw for the last 6 h, 1-minute and 10-minute rollups before)`);

  // ---- API: each panel's query over 24 h, and the same SQL direct ----
  const token = new URL(url).searchParams.get('token');
  const base = url.slice(0, url.indexOf('/?'));
  const reader = connect({ ...nodeConnection(config, 'metrics'), user: readSecrets(config.stateDir).dashboard.user, password: readSecrets(config.stateDir).dashboard.password }, { max: 1 });
  const api = [];
  const direct = [];
  const perPanel = [];
  const failed = [];
  const stored = new Set(tables);
  for (const panel of loadPanels()) {
    if (!stored.has(panel.measurement)) continue; // no load run in this bench: nothing stored
    const mine = [];
    for (let i = 0; i < rounds; i++) {
      const to = Date.now();
      const from = to - DAY;
      let t0 = performance.now();
      const res = await fetch(`${base}/api/series?panel=${panel.id}&from=${from}&to=${to}&token=${token}`);
      await res.json();
      if (!res.ok) failed.push(`${panel.id}: HTTP ${res.status}`);
      api.push(performance.now() - t0);
      mine.push(performance.now() - t0);
      t0 = performance.now();
      const step = chooseStep(DAY, 1000);
      await reader.unsafe(seriesSql(panel, await storedColumns(reader, panel.measurement), chooseTier(step, from, to)), [new Date(from), new Date(to), `${step} seconds`, null]);
      direct.push(performance.now() - t0);
    }
    perPanel.push([panel.id, median(mine)]);
  }
  perPanel.sort((a, b) => b[1] - a[1]);
  if (failed.length) log(`  API answers that were not 200: ${failed.join(', ')}`);
  log(`  slowest panels over 24 h (median): ${perPanel.slice(0, 5).map(([id, ms]) => `${id} ${ms.toFixed(0)} ms`).join(', ')}`);
  await reader.end();
  results.apiP95Ms = p(api);
  results.directSqlP95Ms = p(direct);
  log(`API over 24 h, every panel × ${rounds}: p95 ${results.apiP95Ms.toFixed(1)} ms (the same SQL direct: p95 ${results.directSqlP95Ms.toFixed(1)} ms) — target ≤ 50 ms`);

  // ---- page: navigation → every panel drawn ----
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  for (const range of ['1h', '24h']) {
    const times = [];
    for (let i = 0; i < rounds; i++) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      const t0 = Date.now();
      await page.goto(`${url}&range=${range}&live=0`);
      await page.waitForFunction(() => Number(document.body.dataset.refreshes || 0) >= 1, null, { timeout: 60_000 });
      times.push(Date.now() - t0);
      const banner = await page.evaluate(() => (document.getElementById('banner').hidden ? '' : document.getElementById('banner').textContent));
      if (banner) log(`  ${range}: the page ended with a banner: ${banner}`);
      await page.close();
    }
    results[`draw${range}Ms`] = median(times);
    log(`navigation → every panel drawn, ${range}: median ${median(times)} ms of ${rounds} — target ≤ ${range === '1h' ? 1000 : 1500} ms`);
  }

  // ---- page weight ----
  const files = ['src/dashboard/static/index.html', 'src/dashboard/static/app.js', 'src/dashboard/static/app.css', 'node_modules/uplot/dist/uPlot.iife.min.js', 'node_modules/uplot/dist/uPlot.min.css'];
  results.pageBytes = files.reduce((s, f) => s + fs.statSync(path.join(ROOT, f)).size, 0);
  log(`page weight: ${(results.pageBytes / 1024).toFixed(1)} kB uncompressed (HTML+JS+CSS, uPlot included) — target ≤ 300 kB`);

  // ---- agent CPU, idle vs one page live ----
  const pid = agentPid(config.stateDir);
  const cpu = () => {
    const rest = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(rest[11]) + Number(rest[12])) / 100;
  };
  const measure = async (ms) => {
    const c0 = cpu();
    const t0 = Date.now();
    await sleep(ms);
    return ((cpu() - c0) / ((Date.now() - t0) / 1000)) * 100;
  };
  const idle = await measure(20_000);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(`${url}&range=15m`);
  await page.waitForFunction(() => Number(document.body.dataset.updates || 0) >= 1, null, { timeout: 30_000 });
  const live = await measure(20_000);
  const updates = await page.evaluate(() => Number(document.body.dataset.updates));
  await page.close();
  results.agentCpuIdlePct = idle;
  results.agentCpuLivePct = live;
  log(`agent CPU: ${idle.toFixed(2)} % of a core sampling alone, ${live.toFixed(2)} % with one page live at 15 m (${updates} refreshes): +${(live - idle).toFixed(2)} % — target ≤ 2 %`);

  // ---- uPlot, 100k points ----
  const chart = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await chart.goto(`${url}&range=5m&live=0`);
  await chart.waitForFunction(() => Number(document.body.dataset.updates || 0) >= 1);
  const drawMs = await chart.evaluate(async () => {
    const n = 100_000;
    const xs = new Float64Array(n);
    const ys = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      xs[i] = 1.7e9 + i;
      ys[i] = Math.sin(i / 500) * 100 + Math.random() * 10;
    }
    const host = document.createElement('div');
    document.body.append(host);
    const out = [];
    // uPlot draws after construction (batched): time until its draw hook has run.
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      const ms = await new Promise((resolve) => {
        const u = new uPlot({ width: 1200, height: 300, series: [{}, { stroke: 'red' }], hooks: { draw: [() => resolve([performance.now() - t0, u])] } }, [xs, ys], host);
      });
      out.push(ms[0]);
      ms[1].destroy();
    }
    return out.sort((a, b) => a - b)[2];
  });
  results.uplot100kMs = drawMs;
  log(`uPlot, 100k points, one line, 1200×300: median ${drawMs.toFixed(1)} ms in this Chromium (CONVENTIONS.md's figure for uPlot here: "a few hundred ms")`);
} finally {
  await browser?.close();
  await sql?.end({ timeout: 1 });
  await rescueLab(dir, 'benchdash').catch(() => {});
  removeDir(dir);
}
if (json) console.log(JSON.stringify(results, null, 2));
