import { connect, quoteIdent, serverVersion } from '../pg/index.js';
import { CopyBatcher, copyFrom, type CopyChunk } from '../pg/index.js';
import { ProdhomeError } from '../errors.js';
import { Interrupted, count, meter, untilAborted, type OnProgress } from './progress.js';
import { loadFailure, stallGuard, type DataTarget, type Db } from './target.js';

// What `pgbench -i -s S` (Postgres 15, default steps "dtgvp") makes, copied from its source so the
// tpcb workload finds exactly the tables it expects: per scale unit 1 branch, 10 tellers and
// 100,000 accounts; aid becomes bigint from scale 20,000 on.
const BRANCHES = 1;
const TELLERS = 10;
const ACCOUNTS = 100_000;
const SCALE_32BIT_THRESHOLD = 20_000;
const FILLFACTOR = 100;

/** Tables in pgbench's creation order, with its column definitions (unqualified, like pgbench). */
function tables(scale: number): { name: string; columns: string; fillfactor: boolean }[] {
  const big = scale >= SCALE_32BIT_THRESHOLD;
  return [
    { name: 'pgbench_history', columns: `tid int,bid int,aid ${big ? 'bigint' : 'int'},delta int,mtime timestamp,filler char(22)`, fillfactor: false },
    { name: 'pgbench_tellers', columns: 'tid int not null,bid int,tbalance int,filler char(84)', fillfactor: true },
    { name: 'pgbench_accounts', columns: `aid ${big ? 'bigint' : 'int'} not null,bid int,abalance int,filler char(84)`, fillfactor: true },
    { name: 'pgbench_branches', columns: 'bid int not null,bbalance int,filler char(88)', fillfactor: true },
  ];
}

const KEYS: [table: string, column: string][] = [
  ['pgbench_branches', 'bid'],
  ['pgbench_tellers', 'tid'],
  ['pgbench_accounts', 'aid'],
];

export interface SeedPgbenchResult {
  node: string;
  scale: number;
  rows: { pgbench_branches: number; pgbench_tellers: number; pgbench_accounts: number; pgbench_history: number };
  /** Seconds per step, named as pgbench -i reports them. */
  steps: { dropTables: number; createTables: number; generate: number; vacuum: number; primaryKeys: number };
  seconds: number;
}

/** Rows in chunks of ~64 KB: `line(i)` for i = 0 … n-1. */
function* lines(n: number, line: (i: number) => string): Generator<CopyChunk> {
  const batch = new CopyBatcher();
  for (let i = 0; i < n; i++) {
    const full = batch.add(line(i));
    if (full) yield full;
  }
  const rest = batch.flush();
  if (rest) yield rest;
}

/**
 * `prodhome seed pgbench`: pgbench's four tables and rows, as `pgbench -i -s scale` makes them —
 * drop, create, generate (one transaction: truncate, then COPY; accounts WITH (FREEZE) on 14+),
 * vacuum analyze, primary keys.
 */
export async function seedPgbench(target: DataTarget, scale: number, onProgress?: OnProgress, signal?: AbortSignal): Promise<SeedPgbenchResult> {
  const sql = connect(target.connection);
  const guard = stallGuard(sql);
  const started = performance.now();
  let step = 'dropping tables';
  const accounts = { sent: 0 };
  const timed = async (what: string, fn: () => Promise<unknown>) => {
    if (signal?.aborted) throw new Interrupted();
    step = what;
    const t0 = performance.now();
    await fn();
    return (performance.now() - t0) / 1000;
  };
  const n = { pgbench_branches: BRANCHES * scale, pgbench_tellers: TELLERS * scale, pgbench_accounts: ACCOUNTS * scale, pgbench_history: 0 };
  const defs = tables(scale);
  try {
    const { major } = await serverVersion(sql);
    const dropTables = await timed('dropping tables', () =>
      sql.unsafe(`drop table if exists ${['pgbench_accounts', 'pgbench_branches', 'pgbench_history', 'pgbench_tellers'].map(quoteIdent).join(', ')}`),
    );
    const createTables = await timed('creating tables', async () => {
      for (const t of defs) await sql.unsafe(`create table ${quoteIdent(t.name)}(${t.columns})${t.fillfactor ? ` with (fillfactor=${FILLFACTOR})` : ''}`);
    });
    const generate = await timed('generating data', () => sql.begin((tx) => generateRows(tx, n, major, accounts, guard.onStall, onProgress, signal)));
    const vacuum = await timed('vacuuming', async () => {
      for (const t of ['pgbench_branches', 'pgbench_tellers', 'pgbench_accounts', 'pgbench_history']) await sql.unsafe(`vacuum analyze ${quoteIdent(t)}`);
    });
    const primaryKeys = await timed('creating primary keys', async () => {
      for (const [t, c] of KEYS) await sql.unsafe(`alter table ${quoteIdent(t)} add primary key (${quoteIdent(c)})`);
    });
    return { node: target.node, scale, rows: n, steps: { dropTables, createTables, generate, vacuum, primaryKeys }, seconds: (performance.now() - started) / 1000 };
  } catch (e) {
    if (e instanceof Interrupted) {
      // Each step but the data's own transaction commits as it goes: say what is left.
      const left: Record<string, string> = {
        'dropping tables': 'its tables may be dropped, nothing else changed',
        'creating tables': 'the old tables are dropped; some new ones may be there, empty',
        'generating data': `${count(accounts.sent)} of ${count(n.pgbench_accounts)} pgbench_accounts rows sent, rolled back: the tables are there, empty`,
      };
      const what = left[step] ?? `the rows are kept (committed); ${step} was not finished`;
      throw new ProdhomeError('INTERRUPTED', `interrupted: seed pgbench on ${target.node} while ${step}: ${what}. Run it again to finish.`, { exitCode: 130 });
    }
    throw loadFailure(target, `seed pgbench (${step})`, guard.error(e));
  } finally {
    await sql.end({ timeout: 2 });
  }
}

async function generateRows(tx: Db, n: SeedPgbenchResult['rows'], major: number, accounts: { sent: number }, onStall: (e: Error) => void, onProgress?: OnProgress, signal?: AbortSignal): Promise<void> {
  await tx.unsafe(`truncate table ${['pgbench_accounts', 'pgbench_branches', 'pgbench_history', 'pgbench_tellers'].map(quoteIdent).join(', ')}`);
  // pgbench leaves filler NULL in branches and tellers, and '' (blank-padded) in accounts.
  await copyFrom(tx, `copy ${quoteIdent('pgbench_branches')} from stdin`, lines(n.pgbench_branches, (i) => `${i + 1}\t0\t\\N\n`), { onStall });
  await copyFrom(tx, `copy ${quoteIdent('pgbench_tellers')} from stdin`, lines(n.pgbench_tellers, (i) => `${i + 1}\t${Math.floor(i / TELLERS) + 1}\t0\t\\N\n`), { onStall });
  const progress = meter(onProgress, 'pgbench_accounts', { totalRows: n.pgbench_accounts });
  // FREEZE works because the table was truncated in this transaction; pgbench uses it from 14 on.
  const freeze = major >= 14 ? ' with (freeze on)' : '';
  const sent = await copyFrom(
    tx,
    `copy ${quoteIdent('pgbench_accounts')} from stdin${freeze}`,
    untilAborted(lines(n.pgbench_accounts, (i) => `${i + 1}\t${Math.floor(i / ACCOUNTS) + 1}\t0\t\n`), signal),
    { onRows: (rows) => progress.update((accounts.sent = rows)), onStall },
  );
  progress.finish(sent);
}
