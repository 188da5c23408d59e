import type { Command } from 'commander';
import { formatBytes, parseTableRef } from '../config/index.js';
import {
  DEFAULT_TOPICS, ImportRejected, describeBadRow, importCsv, parseTopics, seedBooks, seedPgbench,
  type ImportResult, type OnProgress, type Progress, type SeedBooksResult, type SeedPgbenchResult,
} from '../data/index.js';
import { ProdhomeError } from '../errors.js';
import { dataTarget, type WriteIntent } from '../lab/index.js';
import { printJson } from './render.js';
import { configFrom } from './shared.js';

/** seed books, seed pgbench, import: data into a lab node. */
export function registerDataCommands(program: Command): void {
  const seed = program.command('seed').description("load synthetic data into a node: `seed books` (the lab's table) or `seed pgbench` (pgbench -i's tables)");
  seed
    .command('books')
    .description('add N realistic books to books, deterministic for a seed, streamed with COPY')
    .requiredOption('--rows <n>', 'how many books (1000000, 10M, 500k)')
    .option('--node <node>', 'node to load (default: the first publisher)')
    .option('--force', "write even into tables a subscription feeds on that node (their keys collide with the publisher's)")
    .option('--seed <n>', 'seed: the same seed gives the same rows', '42')
    .option('--truncate', 'empty books first, so ids start at 1 (default: after the current max id)')
    .option('--topics <mix>', 'topic=weight,… (default: leadership=2,technical=3)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { rows: string; node?: string; force?: boolean; seed: string; truncate?: boolean; topics?: string; json?: boolean }, cmd: Command) => {
      const rows = parseCount(opts.rows, '--rows');
      const seedValue = parseSeed(opts.seed);
      const topics = opts.topics === undefined ? [...DEFAULT_TOPICS] : parseTopics(opts.topics);
      const target = writeTarget(cmd, opts, 'seed books', [{ schema: 'public', name: 'books' }]);
      printResult(opts.json, await interruptible((signal) => seedBooks(target, { rows, seed: seedValue, topics, truncate: opts.truncate, onProgress: progressLine(), signal })), renderBooks);
    });
  seed
    .command('pgbench')
    .description('create pgbench_accounts, _branches, _tellers and _history as `pgbench -i -s S` does')
    .requiredOption('-s, --scale <s>', 'scale factor: 100,000 accounts per unit')
    .option('--node <node>', 'node to load (default: the first publisher)')
    .option('--force', "write even into tables a subscription feeds on that node (their keys collide with the publisher's)")
    .option('--json', 'print the result as JSON')
    .action(async (opts: { scale: string; node?: string; force?: boolean; json?: boolean }, cmd: Command) => {
      const scale = parseCount(opts.scale, '--scale', { suffixes: false });
      const target = writeTarget(cmd, opts, 'seed pgbench', ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history'].map((name) => ({ schema: 'public', name })));
      printResult(opts.json, await interruptible((signal) => seedPgbench(target, scale, progressLine(), signal)), renderPgbench);
    });

  program
    .command('import')
    .description('load a CSV file (header row first) into a table, in one transaction')
    .argument('<table>', 'table or schema.table')
    .argument('<file>', 'the CSV file')
    .option('--create', 'create the table, with column types inferred from the data')
    .option('--node <node>', 'node to load (default: the first publisher)')
    .option('--force', "write even into tables a subscription feeds on that node (their keys collide with the publisher's)")
    .option('--max-errors <n>', 'skip and report up to N bad rows instead of loading nothing', '0')
    .option('--delimiter <c>', 'field delimiter: one character, or \\t / tab', ',')
    .option('--json', 'print the result as JSON')
    .action(async (tableArg: string, file: string, opts: { create?: boolean; node?: string; force?: boolean; maxErrors: string; delimiter: string; json?: boolean }, cmd: Command) => {
      const maxErrors = parseCount(opts.maxErrors, '--max-errors', { zero: true, suffixes: false });
      const delimiter = parseDelimiter(opts.delimiter);
      const target = writeTarget(cmd, opts, `import ${tableArg}`, [parseTableRef(tableArg)]);
      try {
        const result = await importCsv(target, { table: parseTableRef(tableArg), file, create: opts.create, maxErrors, delimiter, onProgress: progressLine() });
        if (opts.json) return printJson(result);
        for (const b of result.badRows) process.stderr.write(`skipped ${describeBadRow(b)}\n`);
        if (result.rowsSkipped > result.badRows.length) process.stderr.write(`skipped ${result.rowsSkipped - result.badRows.length} more bad rows\n`);
        console.log(renderImport(result));
      } catch (e) {
        if (opts.json && e instanceof ImportRejected) printJson({ ok: false, ...e.report });
        throw e;
      }
    });
}

/** The node a data command writes (--node, else the first publisher), with the guard's warnings on stderr. */
function writeTarget(cmd: Command, opts: { node?: string; force?: boolean }, what: string, tables: WriteIntent['tables']): ReturnType<typeof dataTarget> {
  return dataTarget(configFrom(cmd), opts.node, { what, tables, force: opts.force, warn: (l) => process.stderr.write(`warning: ${l}\n`) });
}

/** A command's result as JSON (--json), or rendered for a person. */
function printResult<T>(json: boolean | undefined, result: T, render: (result: T) => string): void {
  if (json) printJson(result);
  else console.log(render(result));
}

/**
 * Runs `fn` with Ctrl-C turned into an abort: the first stops it cleanly (it says what it did and
 * exits 130), a second quits at once.
 */
async function interruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const stop = new AbortController();
  const onSigint = () => {
    if (stop.signal.aborted) process.exit(130);
    process.stderr.write('\ninterrupted: stopping (Ctrl-C again to quit at once)\n');
    stop.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    return await fn(stop.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

function parseCount(text: string, flag: string, { zero = false, suffixes = true } = {}): number {
  const m = /^(\d+)([kKmM]?)$/.exec(text.trim().replace(/_/g, ''));
  const n = m && (suffixes || !m[2]) ? Number(m[1]) * (m[2] ? (m[2].toLowerCase() === 'k' ? 1e3 : 1e6) : 1) : NaN;
  if (!Number.isSafeInteger(n) || (!zero && n < 1)) {
    throw new ProdhomeError('USAGE', `${flag} ${text}: expected a whole number${zero ? '' : ' above 0'}${suffixes ? ' (k and M suffixes allowed: 500k, 10M)' : ''}`);
  }
  return n;
}

function parseSeed(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n > 0xffffffff) throw new ProdhomeError('USAGE', `--seed ${text}: expected a whole number from 0 to 4294967295`);
  return n;
}

function parseDelimiter(text: string): string {
  const d = text === '\\t' || text.toLowerCase() === 'tab' ? '\t' : text;
  if (d.length !== 1 || d === '"' || d === '\n' || d === '\r') throw new ProdhomeError('USAGE', `--delimiter ${JSON.stringify(text)}: expected one character other than a quote or a line break (or \\t for tab)`);
  return d;
}

const num = (n: number) => Math.round(n).toLocaleString('en-US');
const secs = (s: number) => (s < 10 ? s.toFixed(2) : s.toFixed(1));

/** A progress line on stderr: redrawn ~10 times a second on a terminal, one line a second otherwise. */
function progressLine(): OnProgress {
  const tty = !!process.stderr.isTTY;
  let last = performance.now();
  let printed = false;
  return (p: Progress) => {
    const now = performance.now();
    if (!p.done && now - last < (tty ? 100 : 1000)) return;
    if (p.done && !printed) return; // quick loads stay quiet; the result says it all
    last = now;
    printed = true;
    const line = renderProgress(p);
    process.stderr.write(tty ? `\r\x1b[K${line}${p.done ? '\n' : ''}` : `${line}\n`);
  };
}

function renderProgress(p: Progress): string {
  const s = p.elapsedMs / 1000;
  const rate = s > 0 ? p.rows / s : 0;
  if (p.done) return `${p.what}: ${num(p.rows)} rows in ${secs(s)} s (${num(rate)} rows/s)`;
  let share: number | undefined;
  let of = '';
  if (p.totalRows) {
    share = p.rows / p.totalRows;
    of = `/${num(p.totalRows)}`;
  } else if (p.totalBytes && p.bytes !== undefined) share = p.bytes / p.totalBytes;
  const eta = share && share > 0 ? ` ETA ${secs((s / share) * (1 - share))} s` : '';
  const pct = share !== undefined ? ` ${(share * 100).toFixed(0)}%` : '';
  const bytes = p.totalBytes && p.bytes !== undefined ? ` of ${formatBytes(p.totalBytes)}` : '';
  return `${p.what}: ${num(p.rows)}${of} rows${pct}${bytes}, ${num(rate)} rows/s,${eta}`.replace(/,$/, '');
}

function renderBooks(r: SeedBooksResult): string {
  const ids = r.firstId === null ? 'none added' : `ids ${r.firstId}-${r.lastId}`;
  const mix = r.topics.map((t) => `${t.topic}=${t.weight}`).join(',');
  const notes = [r.createdTable ? 'created table books' : '', r.truncated ? 'truncated it first' : ''].filter(Boolean).join(', ');
  return `seeded ${num(r.rows)} books on ${r.node} (${ids}; seed ${r.seed}; topics ${mix}${notes ? `; ${notes}` : ''}) in ${secs(r.seconds)} s: ${num(r.rowsPerSecond)} rows/s`;
}

function renderPgbench(r: SeedPgbenchResult): string {
  const t = r.steps;
  return [
    `pgbench tables on ${r.node}, scale ${r.scale}: ${Object.entries(r.rows).map(([k, v]) => `${k} ${num(v)}`).join(', ')} rows`,
    // pgbench -i's own closing line, so the two read the same.
    `done in ${secs(r.seconds)} s (drop tables ${secs(t.dropTables)} s, create tables ${secs(t.createTables)} s, client-side generate ${secs(t.generate)} s, vacuum ${secs(t.vacuum)} s, primary keys ${secs(t.primaryKeys)} s).`,
  ].join('\n');
}

function renderImport(r: ImportResult): string {
  const made = r.created ? ` (created: ${r.columns.map((c) => `${c.column} ${c.type}`).join(', ')})` : '';
  const skipped = r.rowsSkipped ? `, skipped ${num(r.rowsSkipped)} bad row${r.rowsSkipped === 1 ? '' : 's'}` : '';
  return `imported ${num(r.rowsLoaded)} of ${num(r.rowsRead)} rows from ${r.file} into ${r.table} on ${r.node}${made}${skipped} in ${secs(r.seconds)} s`;
}
