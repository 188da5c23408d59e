import { connect } from '../pg/index.js';

import { bookChunks, bookChunksBinary, type TopicWeight } from './books.js';
import { copyFrom } from '../pg/index.js';
import { ProdhomeError } from '../errors.js';
import { Interrupted, count, meter, untilAborted, type OnProgress } from './progress.js';
import { loadFailure, qualifiedName, stallGuard, type DataTarget } from './target.js';

export interface SeedBooksOptions {
  rows: number;
  seed: number;
  topics: readonly TopicWeight[];
  /** Empty the table first (in the same transaction), so ids start at 1. */
  truncate?: boolean;
  onProgress?: OnProgress;
  /** Ctrl-C: the COPY stops, its transaction rolls back, and the error says how far it came. */
  signal?: AbortSignal;
}

export interface SeedBooksResult {
  node: string;
  table: string;
  rows: number;
  /** Ids given to the new rows, or null when none were added. */
  firstId: number | null;
  lastId: number | null;
  seed: number;
  topics: TopicWeight[];
  truncated: boolean;
  /** True when books did not exist and was created with the lab's definition. */
  createdTable: boolean;
  /** How the rows went: COPY binary (the lab's column types) or text; frozen when created or truncated first. */
  format: string;
  seconds: number;
  rowsPerSecond: number;
}

const BOOKS = { schema: 'public', name: 'books' };
// The lab's books table (src/config/default-lab.ts): made here too when a lab has no schema for it.
const BOOKS_DDL = `CREATE TABLE ${qualifiedName(BOOKS)} (id bigint PRIMARY KEY, sku int, title text, topic text)`;

/**
 * `prodhome seed books`: `rows` synthetic books COPYed into books in one transaction, ids after
 * the current max(id) (or from 1 with `truncate`).
 */
export async function seedBooks(target: DataTarget, opts: SeedBooksOptions): Promise<SeedBooksResult> {
  const sql = connect(target.connection);
  const guard = stallGuard(sql);
  const progress = meter(opts.onProgress, 'books', { totalRows: opts.rows });
  let rowsSent = 0;
  try {
    const { firstId, createdTable, format } = await sql.begin(async (tx) => {
      const [found] = await tx<{ relkind: string }[]>`select relkind from pg_class where oid = to_regclass(${qualifiedName(BOOKS)})`;
      const createdTable = !found;
      if (createdTable) await tx.unsafe(BOOKS_DDL);
      else if (opts.truncate) await tx.unsafe(`TRUNCATE ${qualifiedName(BOOKS)}`);
      const [max] = (await tx.unsafe(`select coalesce(max(id), 0)::text as max from ${qualifiedName(BOOKS)}`)) as { max: string }[];
      const firstId = Number(max!.max) + 1;
      // Binary COPY when the columns are exactly the lab's types; text (which any compatible type reads) otherwise.
      const types = await tx<{ name: string; type: string }[]>`
        select attname as name, format_type(atttypid, atttypmod) as type from pg_attribute
        where attrelid = ${qualifiedName(BOOKS)}::regclass and attnum > 0 and not attisdropped`;
      const typeOf = (c: string) => types.find((t) => t.name === c)?.type;
      const binary = typeOf('id') === 'bigint' && typeOf('sku') === 'integer' && typeOf('title') === 'text' && typeOf('topic') === 'text';
      // A table created or truncated in this transaction may be loaded frozen, as pgbench -i does:
      // no hint-bit rewrite or anti-wraparound vacuum of every page later.
      const freeze = (createdTable || opts.truncate) && (found?.relkind ?? 'r') === 'r';
      const options = [binary ? 'FORMAT binary' : '', freeze ? 'FREEZE' : ''].filter(Boolean).join(', ');
      const rows = { rows: opts.rows, firstId, seed: opts.seed, topics: opts.topics };
      const sent = await copyFrom(
        tx,
        `COPY ${qualifiedName(BOOKS)} (id, sku, title, topic) FROM STDIN${options ? ` (${options})` : ''}`,
        untilAborted(binary ? bookChunksBinary(rows) : bookChunks(rows), opts.signal),
        { onRows: (n) => progress.update((rowsSent = n)), onStall: guard.onStall },
      );
      progress.finish(sent);
      return { firstId, createdTable, format: `${binary ? 'binary' : 'text'}${freeze ? ', frozen' : ''}` };
    });
    const seconds = progress.elapsedMs() / 1000;
    return {
      node: target.node,
      table: 'books',
      rows: opts.rows,
      firstId: opts.rows ? firstId : null,
      lastId: opts.rows ? firstId + opts.rows - 1 : null,
      seed: opts.seed,
      topics: [...opts.topics],
      truncated: !!opts.truncate && !createdTable,
      createdTable,
      format,
      seconds,
      rowsPerSecond: seconds > 0 ? opts.rows / seconds : 0,
    };
  } catch (e) {
    if (e instanceof Interrupted) {
      throw new ProdhomeError('INTERRUPTED', `interrupted: seed books on ${target.node}: ${count(rowsSent)} of ${count(opts.rows)} rows sent, rolled back (nothing kept)`, { exitCode: 130 });
    }
    throw loadFailure(target, 'seeding books', guard.error(e));
  } finally {
    await sql.end({ timeout: 2 });
  }
}
