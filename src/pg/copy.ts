import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type postgres from 'postgres';

/** A pool or a transaction. */
type Db = postgres.ISql;

const SPECIAL = /[\\\t\n\r]/;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** One value in COPY's text format: NULL is \N; backslash, tab, newline and CR are escaped. */
export function copyTextValue(v: string | null): string {
  if (v === null) return '\\N';
  return SPECIAL.test(v) ? v.replace(/[\\\t\n\r]/g, (c) => ESCAPES[c]!) : v;
}

/** Rows ready for COPY, and how many there are (for progress). */
export interface CopyChunk {
  data: string | Buffer;
  rows: number;
}

/**
 * Streams `chunks` into `statement` (a `COPY … FROM STDIN`), one CopyData message per chunk,
 * waiting for the socket to drain whenever the driver's buffer is full — so memory stays flat
 * however many rows go by. Resolves with the rows sent once the server has accepted them all.
 * When `chunks` throws, the COPY is aborted (CopyFail) and the error rethrown once the server has
 * answered, so the connection is usable (or its transaction can roll back) afterwards.
 */
export async function copyFrom(
  sql: Db,
  statement: string,
  chunks: Iterable<CopyChunk> | AsyncIterable<CopyChunk>,
  onRows?: (rows: number) => void,
): Promise<number> {
  const query = sql.unsafe(statement);
  // postgres 3.4.9 never settles the writable when the server rejects the data after CopyDone
  // (porsager/postgres#1173): the error only reaches the query's own reject. Listen there too.
  let fail: (e: unknown) => void = () => {};
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => {});
  const internal = query as unknown as { reject: (e: unknown) => void };
  const reject = internal.reject;
  internal.reject = (e) => {
    fail(e);
    reject(e);
  };
  const stream: Writable = await query.writable();
  const finished = new Promise<void>((resolve, rej) => {
    stream.once('finish', resolve);
    stream.once('error', rej);
  });
  finished.catch(() => {});
  let rows = 0;
  try {
    for await (const chunk of chunks) {
      if (!stream.write(chunk.data)) await Promise.race([once(stream, 'drain'), finished, failed]);
      rows += chunk.rows;
      onRows?.(rows);
    }
  } catch (e) {
    if (!stream.destroyed) stream.destroy(e instanceof Error ? e : new Error(String(e)));
    await failed.catch(() => {}); // the server's answer to CopyFail (or its own error)
    throw e;
  }
  stream.end();
  await Promise.race([finished, failed]);
  return rows;
}

/** Gathers COPY text rows into chunks of about 64 KB (the size COPY likes its messages). */
export class CopyBatcher {
  private text = '';
  private rows = 0;

  /** Adds one row (its text ends in a newline); returns a full chunk when there is one. */
  add(row: string): CopyChunk | undefined {
    this.text += row;
    this.rows++;
    return this.text.length >= 65_536 ? this.flush() : undefined;
  }

  /** What is gathered so far, if anything. */
  flush(): CopyChunk | undefined {
    if (!this.rows) return undefined;
    const chunk = { data: this.text, rows: this.rows };
    this.text = '';
    this.rows = 0;
    return chunk;
  }
}
