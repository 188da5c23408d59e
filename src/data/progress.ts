/** How far a long load has come; the CLI turns it into a progress line. */
export interface Progress {
  /** What is being loaded, e.g. "books" or "pgbench_accounts". */
  what: string;
  rows: number;
  /** Rows expected, when known up front (seeding). */
  totalRows?: number;
  /** Bytes of input read and in all, when the rows come from a file (import). */
  bytes?: number;
  totalBytes?: number;
  elapsedMs: number;
  /** True on the last report of a phase. */
  done: boolean;
}

export type OnProgress = (p: Progress) => void;

/** Calls `onProgress` at most every `everyMs` (and always at the end): cheap to call per chunk. */
export function meter(onProgress: OnProgress | undefined, what: string, fixed: { totalRows?: number; totalBytes?: number } = {}, everyMs = 100) {
  const started = performance.now();
  let last = -Infinity;
  const report = (rows: number, bytes: number | undefined, done: boolean) => {
    const now = performance.now();
    if (!onProgress || (!done && now - last < everyMs)) return;
    last = now;
    onProgress({ what, rows, bytes, ...fixed, elapsedMs: now - started, done });
  };
  return {
    update: (rows: number, bytes?: number) => report(rows, bytes, false),
    finish: (rows: number, bytes?: number) => report(rows, bytes, true),
    elapsedMs: () => performance.now() - started,
  };
}

/** Thrown into a COPY's chunks when the user interrupts (Ctrl-C): copyFrom aborts the COPY. */
export class Interrupted extends Error {
  constructor() {
    super('interrupted');
    this.name = 'Interrupted';
  }
}

/** `chunks` until `signal` aborts, then Interrupted (so the transaction around the COPY rolls back). */
export async function* untilAborted<T>(chunks: Iterable<T> | AsyncIterable<T>, signal: AbortSignal | undefined): AsyncGenerator<T> {
  for await (const chunk of chunks) {
    if (signal?.aborted) throw new Interrupted();
    yield chunk;
  }
  if (signal?.aborted) throw new Interrupted();
}

export const count = (n: number) => Math.round(n).toLocaleString('en-US');
