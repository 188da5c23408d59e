#!/usr/bin/env node
// Benchmark: `prodhome import goodreads FILE.csv` against psql `\copy` of the same file into a
// table of the same shape on the same server. The file is a Goodreads-like export (ISBNs written
// Excel-style as ="…", quoted titles with commas, dates, ratings), generated beforehand, outside
// the timing: ~200 MB for the default 2.35M rows. Both are timed spawn-to-exit, as a user would run
// them, with their peak RSS (from /usr/bin/time); a CHECKPOINT and TRUNCATE come before each timed
// load, and the order alternates each round. Reports medians, the ratio and PASS/MISS against the
// targets (speed >= 0.8x \copy's; RSS flat: a tenth of the file peaks about as high); exits non-zero only when
// something fails to run, never on speed.
//
//   node bench/import.mjs [--rounds N] [--rows N] [--cli PATH] [--json]      (needs `npm run build`)
//   --cli times another build's bin/prodhome.js (a checkout from before a change, say)

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchArgs, CLI as OWN_CLI, logger, median, watchInterrupts, alternately } from './lib.mjs';

const PSQL_CANDIDATES = ['/usr/lib/postgresql/15/bin/psql', 'psql'];
const TIME = '/usr/bin/time';
const PORTS = { from: 55510, to: 55519 }; // clear of the default lab, the tests and the other benches
const TARGET_RATIO = 0.8;
const RSS_GROWTH_MAX_MB = 16; // flat: the peak RSS for the whole file against a tenth of it
const COLUMNS = 'book_id bigint PRIMARY KEY, title text, author text, isbn text, my_rating int, average_rating numeric, number_of_pages int, year_published int, date_added date, exclusive_shelf text';
const HEADER = 'Book Id,Title,Author,ISBN,My Rating,Average Rating,Number of Pages,Year Published,Date Added,Exclusive Shelf';

const { rounds, json, rows, cli: otherCli } = benchArgs({
  usage: 'node bench/import.mjs [--rounds N] [--rows N] [--cli PATH] [--json]',
  options: { rows: { type: 'string', default: '2350000' }, cli: { type: 'string' } },
  integers: ['rows'],
  defaultRounds: 5,
  needs: 'data/index.js',
});
const { nodeConnection } = await import('../dist/lab/index.js');
const { loadConfig } = await import('../dist/config/index.js');
const { withConnection } = await import('../dist/pg/index.js');

const CLI = otherCli ? path.resolve(otherCli) : OWN_CLI;
const log = logger(json);
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const checkInterrupted = watchInterrupts();

/** Runs a command under /usr/bin/time; `ms` is spawn-to-exit wall-clock, `rssMb` its peak RSS. */
function run(what, command, argv, opts = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(TIME, ['-f', 'maxrss=%M', command, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      const ms = performance.now() - started;
      setTimeout(() => {
        const rss = /maxrss=(\d+)/.exec(stderr);
        if (code === 0) return resolve({ ms, stdout, rssMb: rss ? Number(rss[1]) / 1024 : NaN });
        const tail = (stderr || stdout).trim().split('\n').slice(-6).join('\n    ');
        reject(new Error(`${what} failed (${signal ?? `exit ${code}`}):\n    ${tail}`));
      }, 50);
    });
  });
}

function findPsql() {
  for (const p of PSQL_CANDIDATES) {
    if (p.includes('/') ? fs.existsSync(p) : (process.env.PATH ?? '').split(':').some((d) => fs.existsSync(path.join(d, p)))) return p;
  }
  return undefined;
}

/** A Goodreads-like export: deterministic (a small LCG), ~85 bytes a row. */
async function writeCsv(file, rows) {
  const out = fs.createWriteStream(file);
  const words = ['Quiet', 'Harbor', 'Systems', 'Candor', 'Leading', 'Data', 'River', 'Garden', 'Designing', 'Lost', 'Art', 'Trust', 'Winter', 'Queries', 'Teams'];
  const first = ['Ada', 'Bo', 'Cy', 'Dee', 'Eve', 'Finn', 'Gus', 'Hana'];
  const last = ['Lindqvist', 'Tanaka', 'Moreau', 'Alvarez', 'Park', 'Okafor', 'Chen', 'Novak'];
  const shelves = ['read', 'to-read', 'currently-reading'];
  let s = 12345;
  const r = (n) => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % n;
  let text = `${HEADER}\n`;
  for (let i = 1; i <= rows; i++) {
    const title = `${words[r(15)]} ${words[r(15)]}${r(4) === 0 ? `, ${words[r(15)]}` : ''}`;
    const quoted = title.includes(',') ? `"${title}"` : title;
    const isbn = String(r(1e9)).padStart(10, '0');
    const date = `20${10 + r(15)}/${String(1 + r(12)).padStart(2, '0')}/${String(1 + r(28)).padStart(2, '0')}`;
    text += `${i},${quoted},${first[r(8)]} ${last[r(8)]},="${isbn}",${r(6)},${(3 + r(200) / 100).toFixed(2)},${r(5) ? 50 + r(900) : ''},${1950 + r(75)},${date},${shelves[r(3)]}\n`;
    if (text.length > 1 << 20) {
      if (!out.write(text)) await new Promise((res) => out.once('drain', res));
      text = '';
    }
  }
  out.write(text);
  await new Promise((resolve, reject) => out.end((e) => (e ? reject(e) : resolve())));
}

const psql = findPsql();
if (!psql) {
  console.error(`bench: psql not found (looked for ${PSQL_CANDIDATES.join(', ')})`);
  process.exit(1);
}
if (!fs.existsSync(TIME)) {
  console.error(`bench: ${TIME} not found (it measures each command's peak RSS)`);
  process.exit(1);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-bench-import-'));
fs.chmodSync(dir, 0o755); // the server user must reach the lab's data dir
const results = [];
let lab;
try {
  fs.writeFileSync(
    path.join(dir, 'prodhome.yaml'),
    `lab: benchimport\nports: { from: ${PORTS.from}, to: ${PORTS.to} }\nnodes:\n  publisher: { role: publisher }\nschema:\n  - sql: |\n      CREATE TABLE IF NOT EXISTS goodreads (${COLUMNS});\n      CREATE TABLE IF NOT EXISTS goodreads_ref (${COLUMNS});\n`,
  );
  lab = true;
  await run('prodhome up', process.execPath, [CLI, 'up'], { cwd: dir });
  const info = nodeConnection(loadConfig({ file: path.join(dir, 'prodhome.yaml') }), 'publisher');
  const sql = (text) => withConnection(info, (db) => db.unsafe(text));
  const env = { ...process.env, PGHOST: info.host, PGPORT: String(info.port), PGUSER: info.user, PGDATABASE: info.database, PGPASSWORD: info.password };
  const [{ version }] = await sql('select version()');

  const csv = path.join(dir, 'goodreads.csv');
  const generated = performance.now();
  await writeCsv(csv, rows);
  const small = path.join(dir, 'goodreads-tenth.csv');
  await writeCsv(small, Math.ceil(rows / 10));
  const mb = fs.statSync(csv).size / 1048576;
  log(`${version.split(',')[0]}; ${fmt(rows)} rows; CSV of ${mb.toFixed(1)} MiB written in ${((performance.now() - generated) / 1000).toFixed(2)} s (not timed)`);
  log(`${rounds} round(s) on ${os.cpus().length} CPU(s), load average ${os.loadavg()[0].toFixed(1)}; order alternates each round; psql is ${psql}`);
  log('');
  log('round  first     prodhome import         psql \\copy             ratio  method');

  const timeProdhome = async () => {
    await sql('truncate goodreads; checkpoint');
    const r = await run('prodhome import', process.execPath, [CLI, 'import', 'goodreads', csv, '--json'], { cwd: dir });
    const result = JSON.parse(r.stdout);
    if (result.rowsLoaded !== rows) throw new Error(`prodhome import loaded ${result.rowsLoaded} rows, not ${rows}`);
    return { s: r.ms / 1000, rssMb: r.rssMb, method: result.method };
  };
  const timePsql = async () => {
    await sql('truncate goodreads_ref; checkpoint');
    const r = await run('psql \\copy', psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', `\\copy goodreads_ref from '${csv}' with (format csv, header true)`], { env });
    return { s: r.ms / 1000, rssMb: r.rssMb };
  };

  for (let i = 1; i <= rounds; i++) {
    const { prodhomeFirst, p, ref } = await alternately(i, timeProdhome, timePsql, checkInterrupted);
    if (i === 1) {
      // The same rows: COPY reads ="0123" as =0123 (a quote mid-field starts quoting), prodhome as Excel does: 0123.
      const cols = 'book_id, title, author, my_rating, average_rating, number_of_pages, year_published, date_added, exclusive_shelf';
      const [a] = await sql(`select count(*)::int as n, md5(string_agg(row(${cols})::text || isbn, ',' order by book_id)) as sum from goodreads`);
      const [b] = await sql(`select count(*)::int as n, md5(string_agg(row(${cols})::text || substr(isbn, 2), ',' order by book_id)) as sum from goodreads_ref`);
      if (a.n !== rows || a.sum !== b.sum) throw new Error(`the two loads differ: goodreads ${a.n} rows (${a.sum}), goodreads_ref ${b.n} rows (${b.sum})`);
    }
    const row = { round: i, first: prodhomeFirst ? 'prodhome' : 'psql', prodhomeSeconds: p.s, psqlSeconds: ref.s, ratio: ref.s / p.s, prodhomeRssMb: p.rssMb, psqlRssMb: ref.rssMb, method: p.method };
    results.push(row);
    log(
      `${String(i).padStart(5)}  ${row.first.padEnd(8)}  ${`${p.s.toFixed(2)} s ${p.rssMb.toFixed(0)} MB`.padStart(18)}  ${`${ref.s.toFixed(2)} s ${ref.rssMb.toFixed(0)} MB`.padStart(18)}  ${row.ratio.toFixed(2).padStart(9)}  ${p.method ?? '-'}`,
    );
  }

  if (results.length === rounds) {
    const p = median(results.map((r) => r.prodhomeSeconds));
    const ref = median(results.map((r) => r.psqlSeconds));
    const ratio = ref / p;
    const rss = Math.max(...results.map((r) => r.prodhomeRssMb));
    const refRss = Math.max(...results.map((r) => r.psqlRssMb));
    // Flat memory: the same import of a tenth of the file, once, for its peak RSS.
    await sql('truncate goodreads; checkpoint');
    const tenth = await run('prodhome import (a tenth)', process.execPath, [CLI, 'import', 'goodreads', small, '--json'], { cwd: dir });
    const growth = rss - tenth.rssMb;
    const pass = ratio >= TARGET_RATIO && growth <= RSS_GROWTH_MAX_MB;
    log('');
    log(`import ${mb.toFixed(0)} MiB: prodhome ${p.toFixed(2)} s (${fmt(rows / p)} rows/s), psql \\copy ${ref.toFixed(2)} s; speed ratio ${ratio.toFixed(2)} (target >= ${TARGET_RATIO})`);
    log(`(median of the rounds' own ratios: ${median(results.map((r) => r.ratio)).toFixed(2)})`);
    log(`peak RSS: prodhome ${rss.toFixed(0)} MB (${tenth.rssMb.toFixed(0)} MB for a tenth of the file: ${growth >= 0 ? '+' : ''}${growth.toFixed(0)} MB, target <= +${RSS_GROWTH_MAX_MB} MB), psql ${refRss.toFixed(0)} MB; ${pass ? 'PASS' : 'MISS'}`);
    if (json) {
      console.log(JSON.stringify({ rows, mib: mb, rounds: results, median: { prodhomeSeconds: p, psqlSeconds: ref, ratio }, peakRssMb: { prodhome: rss, prodhomeTenth: tenth.rssMb, psql: refRss }, target: { ratio: TARGET_RATIO, rssGrowthMb: RSS_GROWTH_MAX_MB, pass } }, null, 2));
    }
  }
} catch (e) {
  console.error(`bench: ${e.message}`);
  process.exitCode = 1;
} finally {
  if (lab) await run('prodhome destroy', process.execPath, [CLI, 'destroy', '--yes'], { cwd: dir }).catch((e) => console.error(`bench: cleaning up: ${e.message}`));
  fs.rmSync(dir, { recursive: true, force: true });
}
