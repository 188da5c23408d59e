import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type postgres from 'postgres';
import { ProdhomeError } from '../errors.js';

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

export interface CopyOptions {
  /** Hears the rows sent so far, after each chunk. */
  onRows?: (rows: number) => void;
  /** How long the server may take no data (or not answer the end of it) before the COPY is given up; default 5 minutes. */
  stallMs?: number;
  /**
   * Called when the COPY is given up: it should close the connection (e.g. `sql.end({ timeout: 0 })`),
   * since the driver would wait on a server that stopped reading for ever — even to roll back.
   */
  onStall?: (e: CopyStalled) => void;
}

/** The server stopped reading a COPY (stopped, or waiting on a lock): given up rather than waited on for ever. */
export class CopyStalled extends ProdhomeError {
  constructor(ms: number) {
    super('LOAD_FAILED', `the server took no COPY data for ${Math.round(ms / 1000)} s; gave up (rolled back)`, {
      hint: 'Is it stopped, or waiting on a lock? `prodhome psql NODE` and: select pid, state, wait_event_type, wait_event, query from pg_stat_activity',
    });
  }
}

const STALL_MS = 300_000;
const ANSWER_MS = 5_000; // for the server's answer to a CopyFail

/** `p`, or `onTimeout()`'s error after `ms`. */
async function within<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(onTimeout()), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Streams `chunks` into `statement` (a `COPY … FROM STDIN`), one CopyData message per chunk,
 * waiting for the socket to drain whenever the driver's buffer is full — so memory stays flat
 * however many rows go by. Resolves with the rows sent once the server has accepted them all.
 * When `chunks` throws, the COPY is aborted (CopyFail) and the error rethrown once the server has
 * answered, so the connection is usable (or its transaction can roll back) afterwards. Every wait
 * on the server is bounded (`stallMs`): a server that stops reading is given up on (CopyStalled).
 */
export async function copyFrom(
  sql: Db,
  statement: string,
  chunks: Iterable<CopyChunk> | AsyncIterable<CopyChunk>,
  { onRows, stallMs = STALL_MS, onStall }: CopyOptions = {},
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
  const stalled = () => {
    const e = new CopyStalled(stallMs);
    onStall?.(e);
    return e;
  };
  let rows = 0;
  try {
    for await (const chunk of chunks) {
      if (!stream.write(chunk.data)) await within(Promise.race([once(stream, 'drain'), finished, failed]), stallMs, stalled);
      rows += chunk.rows;
      onRows?.(rows);
    }
    stream.end();
    await within(Promise.race([finished, failed]), stallMs, stalled);
  } catch (e) {
    if (e instanceof CopyStalled) throw e;
    if (!stream.destroyed) stream.destroy(e instanceof Error ? e : new Error(String(e)));
    // The server's answer to CopyFail (or its own error): bounded, as a stopped server never gives one.
    await within(failed, ANSWER_MS, () => new Error('no answer')).catch(() => {});
    throw e;
  }
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
