#!/usr/bin/env node
// Benchmark: `prodhome seed books --rows N` against psql `\copy` of an equivalent CSV (the same
// rows, generated beforehand, outside the timing) into a table of the same shape on the same
// server. Both are timed spawn-to-exit, as a user would run them; a CHECKPOINT and TRUNCATE come
// before each timed load. Reports rows/s medians and their ratio, PASS/MISS against the target;
// exits non-zero only when something fails to run, never on speed.
//
// --lab lone (the default): one node, books and books_ref side by side. --lab default: the default
// lab's topology (publisher, two subscribers, metrics; books published to both subscribers, the
// agent sampling every node), and both tools load the same replicated books in turn; between
// loads the bench waits for the subscribers to catch up, outside the timing.
//
//   node bench/seed.mjs [--rounds N] [--rows N] [--lab lone|default] [--cli PATH] [--json]      (needs `npm run build`)
//   --cli times another build's bin/prodhome.js (a checkout from before a change, say)

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchArgs, CLI as OWN_CLI, logger, median, watchInterrupts, alternately } from './lib.mjs';

const PSQL_CANDIDATES = ['/usr/lib/postgresql/15/bin/psql', 'psql'];
const PORTS = { from: 55500, to: 55509 }; // clear of the default lab, the tests and bench/up.mjs
const DEFAULT_LAB_PORTS = { from: 55520, to: 55539 };
const TARGET_RATIO = 0.8;
const SEED = 42;
const TABLE_DDL = (name) => `CREATE TABLE IF NOT EXISTS ${name} (id bigint PRIMARY KEY, sku int, title text, topic text);`;

// ---- arguments ------------------------------------------------------------------------------

const { rounds, json, rows, lab: labKind, cli: otherCli } = benchArgs({
  usage: 'node bench/seed.mjs [--rounds N] [--rows N] [--lab lone|default] [--cli PATH] [--json]',
  options: { rows: { type: 'string', default: '1000000' }, lab: { type: 'string', default: 'lone' }, cli: { type: 'string' } },
  integers: ['rows'],
  defaultRounds: 5,
  needs: 'data/index.js',
});
const { bookChunks, DEFAULT_TOPICS } = await import('../dist/data/index.js');
const { nodeConnection } = await import('../dist/lab/index.js');
const { loadConfig, DEFAULT_CONFIG_YAML } = await import('../dist/config/index.js');
if (labKind !== 'lone' && labKind !== 'default') {
  console.error(`bench: --lab wants lone or default, got ${labKind}`);
  process.exit(2);
}
const replicated = labKind === 'default';
const { withConnection } = await import('../dist/pg/index.js');

// ---- helpers --------------------------------------------------------------------------------

const CLI = otherCli ? path.resolve(otherCli) : OWN_CLI;
const log = logger(json);
const fmt = (n) => Math.round(n).toLocaleString('en-US');

const checkInterrupted = watchInterrupts();

/** Runs a command to completion; `ms` is spawn-to-exit wall-clock. Throws with its last words on failure. */
function run(what, command, argv, opts = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      const ms = performance.now() - started;
      // Give the pipes a moment, but never wait on a detached grandchild (the lab's agent) holding them.
      setTimeout(() => {
        if (code === 0) return resolve({ ms, stdout, stderr });
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

/** The same rows `seed books --seed 42` makes (ids 1..rows), as CSV: the words need no quoting. */
async function writeCsv(file) {
  const out = fs.createWriteStream(file);
  for (const chunk of bookChunks({ rows, firstId: 1, seed: SEED, topics: DEFAULT_TOPICS })) {
    if (!out.write(chunk.data.replaceAll('\t', ','))) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((resolve, reject) => out.end((e) => (e ? reject(e) : resolve())));
}

// ---- main -----------------------------------------------------------------------------------

const psql = findPsql();
if (!psql) {
  console.error(`bench: psql not found (looked for ${PSQL_CANDIDATES.join(', ')})`);
  process.exit(1);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-bench-seed-'));
fs.chmodSync(dir, 0o755); // the server user must reach the lab's data dir
const results = [];
let lab;
try {
  const lone = `lab: benchseed\nports: { from: ${PORTS.from}, to: ${PORTS.to} }\nnodes:\n  publisher: { role: publisher }\nschema:\n  - sql: |\n      ${TABLE_DDL('books')}\n      ${TABLE_DDL('books_ref')}\n`;
  // The default lab as `prodhome up` makes it with no config, under another name and ports.
  const full = DEFAULT_CONFIG_YAML.replace(/^lab: .*$/m, 'lab: benchseeddefault').replace(/^ports:\n  from: \d+\n  to: \d+$/m, `ports:\n  from: ${DEFAULT_LAB_PORTS.from}\n  to: ${DEFAULT_LAB_PORTS.to}`);
  if (replicated && !full.includes(`from: ${DEFAULT_LAB_PORTS.from}`)) throw new Error('could not move the default lab to its own ports');
  fs.writeFileSync(path.join(dir, 'prodhome.yaml'), replicated ? full : lone);
  lab = true;
  await run('prodhome up', process.execPath, [CLI, 'up'], { cwd: dir });
  const info = nodeConnection(loadConfig({ file: path.join(dir, 'prodhome.yaml') }), 'publisher');
  const sql = (text) => withConnection(info, (db) => db.unsafe(text));
  const env = { ...process.env, PGHOST: info.host, PGPORT: String(info.port), PGUSER: info.user, PGDATABASE: info.database, PGPASSWORD: info.password };
  const [{ version }] = await sql('select version()');
  const refTable = replicated ? 'books' : 'books_ref';
  /** Until every subscription has confirmed all WAL written so far (outside the timing). */
  const caughtUp = async () => {
    if (!replicated) return;
    for (const deadline = Date.now() + 300_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      const [r] = await sql("select count(*)::int as slots, coalesce(bool_and(confirmed_flush_lsn >= pg_current_wal_lsn()), false) as done from pg_replication_slots where slot_type = 'logical'");
      if (r.slots === 0) throw new Error('the default lab has no logical replication slots: is books replicated?');
      if (r.done) return;
    }
    throw new Error('subscribers did not catch up within 300 s');
  };
  const checksum = async (table) => (await sql(`select count(*)::int as n, md5(string_agg(b::text, ',' order by id)) as sum from ${table} b`))[0];
  const sums = {};

  const csv = path.join(dir, 'books.csv');
  const generated = performance.now();
  await writeCsv(csv);
  log(`${version.split(',')[0]}; ${fmt(rows)} rows; CSV of ${(fs.statSync(csv).size / 1048576).toFixed(1)} MiB written in ${((performance.now() - generated) / 1000).toFixed(2)} s (not timed)`);
  log(`${replicated ? 'the default lab (books replicated to two subscribers)' : 'a lone node'}; ${rounds} round(s) on ${os.cpus().length} CPU(s), load average ${os.loadavg()[0].toFixed(1)}; order alternates each round; psql is ${psql}`);
  log('');
  log('round  first     prodhome seed      psql \\copy        ratio  (prodhome in-process)');

  const timeProdhome = async () => {
    await sql('truncate books');
    await caughtUp();
    await sql('checkpoint');
    const r = await run('prodhome seed books', process.execPath, [CLI, 'seed', 'books', '--rows', String(rows), '--seed', String(SEED), '--json'], { cwd: dir });
    // Also what prodhome measures itself, from its connection to the commit: the gap to the
    // spawn-to-exit figure is Node starting and loading the CLI.
    sums.prodhome ??= await checksum('books');
    await caughtUp();
    return { wall: rows / (r.ms / 1000), inProcess: JSON.parse(r.stdout).rowsPerSecond };
  };
  const timePsql = async () => {
    await sql(`truncate ${refTable}`);
    await caughtUp();
    await sql('checkpoint');
    const r = await run('psql \\copy', psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', `\\copy ${refTable} from '${csv}' with (format csv)`], { env });
    sums.psql ??= await checksum(refTable);
    await caughtUp();
    return rows / (r.ms / 1000);
  };

  for (let i = 1; i <= rounds; i++) {
    const { prodhomeFirst, p, ref } = await alternately(i, timeProdhome, timePsql, checkInterrupted);
    if (i === 1) {
      // Equivalent input: both tables must hold exactly the same rows.
      const { prodhome: a, psql: b } = sums;
      if (a.n !== rows || a.sum !== b.sum) throw new Error(`the two loads differ: prodhome's ${a.n} rows (${a.sum}), psql's ${b.n} rows (${b.sum})`);
    }
    const row = { round: i, first: prodhomeFirst ? 'prodhome' : 'psql', prodhomeRowsPerSec: p.wall, prodhomeInProcessRowsPerSec: p.inProcess, psqlRowsPerSec: ref, ratio: p.wall / ref };
    results.push(row);
    log(
      `${String(i).padStart(5)}  ${row.first.padEnd(8)}  ${`${fmt(p.wall)} rows/s`.padStart(16)}  ${`${fmt(ref)} rows/s`.padStart(16)}  ${row.ratio.toFixed(2).padStart(5)}  (${fmt(p.inProcess)} rows/s)`,
    );
  }
} catch (e) {
  console.error(`bench: ${e.message}`);
  process.exitCode = 1;
} finally {
  if (lab) await run('prodhome destroy', process.execPath, [CLI, 'destroy', '--yes'], { cwd: dir }).catch((e) => console.error(`bench: cleaning up: ${e.message}`));
  fs.rmSync(dir, { recursive: true, force: true });
}

if (results.length === rounds) {
  const p = median(results.map((r) => r.prodhomeRowsPerSec));
  const ref = median(results.map((r) => r.psqlRowsPerSec));
  const inProcess = median(results.map((r) => r.prodhomeInProcessRowsPerSec));
  const ratio = p / ref;
  const pass = ratio >= TARGET_RATIO;
  log('');
  log(`seed books: prodhome ${fmt(p)} rows/s, psql \\copy ${fmt(ref)} rows/s, ratio ${ratio.toFixed(2)} (target >= ${TARGET_RATIO}) ${pass ? 'PASS' : 'MISS'}`);
  log(`(median of the rounds' own ratios: ${median(results.map((r) => r.ratio)).toFixed(2)}; prodhome in-process, without Node's start-up: ${fmt(inProcess)} rows/s, ${(inProcess / ref).toFixed(2)}x)`);
  if (json) {
    console.log(JSON.stringify({ rows, rounds: results, median: { prodhomeRowsPerSec: p, prodhomeInProcessRowsPerSec: inProcess, psqlRowsPerSec: ref, ratio }, target: { ratio: { min: TARGET_RATIO, pass } } }, null, 2));
  }
}
