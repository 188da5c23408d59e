import fs from 'node:fs';
import type postgres from 'postgres';
import type { TableRef } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { connect, quoteIdent, serverVersion } from '../pg/index.js';
import { CopyBatcher, copyFrom, copyTextValue, type CopyChunk } from '../pg/index.js';
import type { CsvOptions, CsvRecord } from './csv.js';
import { csvBatches, csvFileSize } from './csv-file.js';
import { findTable, mapHeader, similarTable, tableColumns, type TargetColumn } from './import-table.js';
import { TypeGuesser, columnNames, type InferredType } from './infer.js';
import { Abandon, CsvToCopy } from './csv-copy.js';
import { meter, type OnProgress } from './progress.js';
import { displayName, loadFailure, qualifiedName, stallGuard, type DataTarget, type Db } from './target.js';
import { BAD, STAGE, badValues, findBadValues } from './validate.js';

export interface ImportOptions {
  table: TableRef;
  file: string;
  /** Create the table, with column types inferred from the data. */
  create?: boolean;
  /** Bad rows to skip (reported) before the whole import is refused; default 0. */
  maxErrors?: number;
  delimiter?: string;
  onProgress?: OnProgress;
}

export interface ImportColumn {
  header: string;
  column: string;
  type: string;
}

/** A row that was not loaded: where it is in the file, why, and the text at fault. */
export interface BadRow {
  line: number;
  endLine: number;
  reason: string;
  /** The column whose value did not fit, when that was the trouble. */
  column?: string;
  /** The record as written (for malformed rows) or the value that did not fit. */
  text: string | null;
}

export interface ImportResult {
  node: string;
  table: string;
  file: string;
  created: boolean;
  columns: ImportColumn[];
  rowsRead: number;
  rowsLoaded: number;
  rowsSkipped: number;
  /** The skipped rows (the first 1,000 at most), by line. */
  badRows: BadRow[];
  /** How the rows went in: `copy` (the file streamed into COPY … CSV, as \copy does) or `staged` (the careful path: staged, checked, inserted). */
  method: 'copy' | 'staged';
  seconds: number;
}

/** An import refused for its bad rows: nothing was loaded. Carries every detail for --json. */
export class ImportRejected extends ProdhomeError {
  constructor(
    message: string,
    hint: string,
    readonly report: { table: string; file: string; rowsRead: number; badRowsTotal: number; badRows: BadRow[] },
  ) {
    super('IMPORT_BAD_ROWS', message, { hint });
  }
}

const KEEP_BAD_ROWS = 1000;
const SHOW_BAD_ROWS = 20;
const TEXT_MAX = 300;

/**
 * `prodhome import TABLE FILE.csv`: one transaction. First the fast path (fastImport): the file
 * streamed straight into the table with COPY, as \copy does. Should any row be bad, that is rolled
 * back and the careful path runs: rows are staged as text with their line numbers, then inserted
 * with Postgres's own casts; when some do not fit, Postgres finds which (see validate.ts); up to
 * `maxErrors` bad rows are skipped, more and nothing is loaded.
 */
export async function importCsv(target: DataTarget, opts: ImportOptions): Promise<ImportResult> {
  const table = displayName(opts.table);
  const csv: CsvOptions = { delimiter: opts.delimiter ?? ',' };
  const maxErrors = opts.maxErrors ?? 0;
  const size = csvFileSize(opts.file);
  const headers = await readHeader(opts.file, csv);
  const sql = connect(target.connection);
  const guard = stallGuard(sql);
  const started = performance.now();
  try {
    const { major } = await serverVersion(sql);
    const oid = await findTable(sql, opts.table, target.node);
    if (oid && opts.create) {
      throw new ProdhomeError('TABLE_EXISTS', `${target.node}: table ${table} already exists; --create makes a new table`, {
        hint: 'Leave out --create to load into the existing table (the header must name its columns).',
      });
    }
    if (!oid && !opts.create) {
      const like = await similarTable(sql, opts.table);
      throw new ProdhomeError('TABLE_NOT_FOUND', `${target.node}: table ${table} does not exist${like ? ` (did you mean ${like}?)` : ''}`, {
        hint: `Add --create to create it with column types inferred from ${opts.file}, or create it first.`,
      });
    }
    // --create: types from a sample first (the fast path checks them against every row); the
    // careful path, when it comes to that, infers from the whole file as it always did.
    const names = opts.create ? columnNames(headers) : [];
    const created = (types: InferredType[]) => names.map((name, i): TargetColumn => ({ name, type: types[i]!, base: types[i]!, typid: 0, typmod: -1, notNull: false, hasDefault: false, generated: false }));
    const createSql = (cols: TargetColumn[]) => `CREATE TABLE ${qualifiedName(opts.table)} (${cols.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(', ')})`;
    let columns: TargetColumn[] = opts.create
      ? created(await inferTypes(opts.file, csv, headers.length, meter(undefined, table), SAMPLE_ROWS))
      : mapHeader(headers, await tableColumns(sql, oid!), { file: opts.file, table });

    const outcome = await sql.begin(async (tx) => {
      const fast = await fastImport(tx, opts, table, size, headers.length, columns, createSql, guard.onStall);
      if ('loaded' in fast) {
        columns = fast.columns; // with --create, the types the whole file gave
        return { ...fast, method: 'copy' as const };
      }
      if (opts.create) {
        columns = created(fast.types ?? (await inferTypes(opts.file, csv, headers.length, meter(opts.onProgress, `${table} (inferring column types)`, { totalBytes: size }))));
        await tx.unsafe(createSql(columns));
        // The new columns' type oids, which the pre-16 validator needs.
        const made = await tableColumns(tx, (await findTable(tx, opts.table, target.node))!);
        columns = columns.map((c, i) => ({ ...c, typid: made[i]!.typid }));
      }
      await tx.unsafe(`create temp table ${STAGE} (line bigint, end_line bigint, ${columns.map((_, i) => `${quoteIdent(`c${i}`)} text`).join(', ')}) on commit drop`);
      await tx.unsafe(`create temp table ${BAD} (line bigint, end_line bigint, col int, value text, message text) on commit drop`);
      const stage = new Stager(headers.length);
      const progress = meter(opts.onProgress, table, { totalBytes: size });
      await copyFrom(tx, `copy ${STAGE} from stdin`, stage.chunks(opts.file, csv, (bytes) => progress.update(stage.rowsRead, bytes)), { onStall: guard.onStall });
      progress.finish(stage.rowsRead, size);

      const insert = (db: Db) => insertStaged(db, opts.table, columns);
      let loaded: number | undefined;
      if (stage.badTotal <= maxErrors) {
        try {
          loaded = await tx.savepoint((sp) => insert(sp));
        } catch (e) {
          if (!isRowError(e)) throw e;
        }
      }
      let bad = stage.bad;
      let badTotal = stage.badTotal;
      if (loaded === undefined) {
        await findBadValues(tx, major, columns);
        const found = await badValues(tx, KEEP_BAD_ROWS);
        badTotal += found.total;
        bad = [...bad, ...found.first.map((b) => typeBadRow(b, columns))].sort((a, b) => a.line - b.line).slice(0, KEEP_BAD_ROWS);
        if (badTotal > maxErrors) throw rejected(opts, table, stage.rowsRead, badTotal, bad, maxErrors, !!opts.create);
        await tx.unsafe(`delete from ${STAGE} s using ${BAD} b where s.line = b.line`);
        loaded = await insert(tx);
      }
      return { loaded, bad, badTotal, rowsRead: stage.rowsRead, method: 'staged' as const };
    });
    return {
      node: target.node,
      table,
      file: opts.file,
      created: !!opts.create,
      columns: columns.map((c, i) => ({ header: headers[i]!, column: c.name, type: c.type })),
      rowsRead: outcome.rowsRead,
      rowsLoaded: outcome.loaded,
      rowsSkipped: outcome.badTotal,
      badRows: outcome.bad,
      method: outcome.method,
      seconds: (performance.now() - started) / 1000,
    };
  } catch (e) {
    throw loadFailure(target, `importing ${opts.file} into ${table}`, guard.error(e));
  } finally {
    await sql.end({ timeout: 2 });
  }
}

async function readHeader(file: string, csv: CsvOptions): Promise<string[]> {
  for await (const batch of csvBatches(file, csv)) {
    const header = batch[0]!;
    if (header.error) throw new ProdhomeError('CSV_INVALID', `${file}: line ${header.line}: the header row is malformed: ${header.error}`);
    return header.values.map((v) => v ?? '');
  }
  throw new ProdhomeError('CSV_INVALID', `${file} is empty: expected a header row naming the columns`);
}

/** Column types from the file's well-formed records: all of them, or the first `limit`. */
async function inferTypes(file: string, csv: CsvOptions, width: number, progress: ReturnType<typeof meter>, limit = Infinity): Promise<InferredType[]> {
  const guess = new TypeGuesser(width);
  let first = true;
  let rows = 0;
  read: for await (const batch of csvBatches(file, csv, (bytes) => progress.update(rows, bytes))) {
    for (const r of batch) {
      if (first) first = false;
      else if (!r.error && r.values.length === width) {
        guess.add(r);
        if (++rows >= limit) break read;
      }
    }
  }
  progress.finish(rows);
  return guess.types();
}

/** The sample --create's first guess at types is made from; every row is checked against it after. */
const SAMPLE_ROWS = 20_000;

type Outcome = { loaded: number; bad: BadRow[]; badTotal: number; rowsRead: number };

/** Full-file --create types that differ from the sample's: the fast path starts again with them. */
class TypesDiffer extends Error {
  constructor(readonly types: InferredType[]) {
    super('inferred types differ from the sample\'s');
  }
}

/**
 * The fast path, as psql's \copy goes: the file rewritten on the fly into COPY's CSV (csv-copy.ts)
 * and parsed by the server, straight into the table — no staging, no second pass, flat memory.
 * It is all or nothing, inside a savepoint: any bad row (malformed, the wrong width, a value the
 * column refuses) or any form COPY reads differently rolls it back, and the careful path takes
 * over to find and report every bad row by line. With --create the table is made from the sample's
 * types while every row's values are checked too; when the whole file says otherwise, it is done
 * again with those types. Returns the load, or what it learnt for the careful path.
 */
async function fastImport(
  tx: postgres.TransactionSql, opts: ImportOptions, table: string, size: number, width: number, columns: TargetColumn[], createSql: (cols: TargetColumn[]) => string, onStall: (e: Error) => void,
): Promise<(Outcome & { columns: TargetColumn[] }) | { types?: InferredType[] }> {
  const delimiter = opts.delimiter ?? ',';
  if (delimiter.length !== 1 || delimiter.charCodeAt(0) > 0x7f) return {};
  let types = opts.create ? columns.map((c) => c.type as InferredType) : undefined;
  let known: InferredType[] | undefined; // from a full pass
  for (;;) {
    const guess = types && !known ? new TypeGuesser(width) : undefined;
    const transcoder = new CsvToCopy(delimiter, width, guess);
    const progress = meter(opts.onProgress, table, { totalBytes: size });
    try {
      return await tx.savepoint(async (sp) => {
        const cols = types ? columns.map((c, i) => ({ ...c, type: types![i]!, base: types![i]! })) : columns;
        if (types) await sp.unsafe(createSql(cols));
        const list = cols.map((c) => quoteIdent(c.name)).join(', ');
        const loaded = await copyFrom(
          sp,
          `COPY ${qualifiedName(opts.table)} (${list}) FROM STDIN (FORMAT csv, DELIMITER ${quoteLiteral(delimiter)})`,
          copyChunks(opts.file, transcoder, (bytes) => progress.update(transcoder.rows, bytes)),
          { onStall },
        );
        progress.finish(transcoder.rows, size);
        if (guess) {
          known = guess.types();
          if (known.some((t, i) => t !== types![i])) throw new TypesDiffer(known);
        }
        return { loaded, bad: [], badTotal: 0, rowsRead: transcoder.rows, columns: cols };
      });
    } catch (e) {
      if (e instanceof TypesDiffer) {
        types = e.types;
        continue;
      }
      if (e instanceof Abandon || isRowError(e)) return { types: known };
      throw e;
    }
  }
}

/** The file in 1 MB reads, as COPY CSV. */
async function* copyChunks(file: string, transcoder: CsvToCopy, onBytes: (bytes: number) => void): AsyncGenerator<CopyChunk> {
  let bytes = 0;
  let rows = 0;
  const chunk = (data: Buffer) => {
    const c = { data, rows: transcoder.rows - rows };
    rows = transcoder.rows;
    return c;
  };
  for await (const buf of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
    bytes += (buf as Buffer).length;
    const out = transcoder.push(buf as Buffer);
    onBytes(bytes);
    if (out.length) yield chunk(out);
  }
  const last = transcoder.end();
  if (last.length) yield chunk(last);
}

const quoteLiteral = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** Turns data records into COPY rows for the staging table, keeping malformed ones aside. */
class Stager {
  rowsRead = 0;
  badTotal = 0;
  readonly bad: BadRow[] = [];

  constructor(private readonly width: number) {}

  async *chunks(file: string, csv: CsvOptions, onBytes: (bytes: number) => void): AsyncGenerator<CopyChunk> {
    let first = true;
    const chunks = new CopyBatcher();
    for await (const batch of csvBatches(file, csv, onBytes)) {
      for (const r of batch) {
        if (first) {
          first = false;
          continue;
        }
        this.rowsRead++;
        const problem = this.problem(r);
        if (problem) {
          this.badTotal++;
          if (this.bad.length < KEEP_BAD_ROWS) this.bad.push({ line: r.line, endLine: r.endLine, reason: problem, text: cut(r.raw) });
          continue;
        }
        let row = `${r.line}\t${r.endLine}`;
        for (const v of r.values) row += `\t${copyTextValue(v)}`;
        const full = chunks.add(`${row}\n`);
        if (full) yield full;
      }
    }
    const rest = chunks.flush();
    if (rest) yield rest;
  }

  private problem(r: CsvRecord): string | undefined {
    if (r.error) return r.error;
    if (r.values.length !== this.width) return `expected ${this.width} fields (as in the header), found ${r.values.length}`;
    if (r.values.some((v) => v?.includes('\0'))) return 'contains a NUL character, which Postgres text cannot hold';
    return undefined;
  }
}

async function insertStaged(db: Db, table: TableRef, columns: TargetColumn[]): Promise<number> {
  const values = columns.map((c, i) => (c.base === 'text' ? quoteIdent(`c${i}`) : `${quoteIdent(`c${i}`)}::${c.base}`));
  const result = await db.unsafe(`insert into ${qualifiedName(table)} (${columns.map((c) => quoteIdent(c.name)).join(', ')}) select ${values.join(', ')} from ${STAGE} order by line`);
  return result.count;
}

/** A value that does not fit its column (class 22) or a NULL in a NOT NULL one: find the rows. */
function isRowError(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('22') || code === '23502');
}

function typeBadRow(b: { line: number; endLine: number; col: number; value: string | null; message: string }, columns: TargetColumn[]): BadRow {
  const col = columns[b.col]!;
  return { line: b.line, endLine: b.endLine, column: col.name, reason: `column ${col.name} (${col.type}): ${b.message}`, text: b.value === null ? null : cut(b.value) };
}

function cut(s: string): string {
  return s.length > TEXT_MAX ? `${s.slice(0, TEXT_MAX)}…` : s;
}

function rejected(opts: ImportOptions, table: string, rowsRead: number, total: number, bad: BadRow[], maxErrors: number, created: boolean): ImportRejected {
  const lines = bad.slice(0, SHOW_BAD_ROWS).map((b) => `  ${describeBadRow(b)}`);
  if (total > lines.length) lines.push(`  … and ${total - lines.length} more`);
  const allowed = maxErrors ? ` (--max-errors allows ${maxErrors})` : '';
  const message = `import of ${opts.file} into ${table} refused: ${total} bad row${total === 1 ? '' : 's'}${allowed}; nothing was loaded${created ? ' and the table was not created' : ''}:\n${lines.join('\n')}`;
  return new ImportRejected(message, `Fix those rows, or pass --max-errors ${total} to skip them and load the rest.`, { table, file: opts.file, rowsRead, badRowsTotal: total, badRows: bad });
}

/** `line 7: why: "text"` — the way bad rows are shown everywhere. */
export function describeBadRow(b: BadRow): string {
  const where = b.endLine > b.line ? `lines ${b.line}-${b.endLine}` : `line ${b.line}`;
  // Postgres's own message often quotes the value already; then it is not repeated.
  const shown = b.text === null || b.reason.includes(`"${b.text}"`) ? '' : `: ${JSON.stringify(b.text)}`;
  return `${where}: ${b.reason}${shown}`;
}
