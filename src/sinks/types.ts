import type { Point } from './point.js';

/**
 * Where points go. One interface for every store, chosen by URI scheme (see index.ts).
 *
 * Lifecycle:
 * 1. A factory makes the sink from its URI and options. It checks the URI and reads secrets
 *    (a token file) but does no I/O towards the store.
 * 2. `open()`, when the sink has it, is called once before the first write; it prepares what
 *    the sink needs (opens the file) and throws a ProdhomeError when the sink cannot work.
 * 3. `write(points)` is called any number of times, one call at a time (the caller awaits each).
 *    It resolves once the points are accepted — written, or queued by a buffering sink — and
 *    should not wait out a slow or absent store: a buffering sink keeps the points and retries
 *    in the background, dropping its oldest points when its buffer is full. It rejects only on
 *    a failure the caller must hear about (the file cannot be written).
 * 4. `close()` is called once, last: it flushes what is buffered (a buffering sink tries for a
 *    bounded time and counts what it could not deliver), stops timers and releases files and
 *    sockets. Calling it twice is harmless; writing after it is an error.
 *
 * `name` names the sink in messages; it never contains a secret.
 */
export interface Sink {
  readonly name: string;
  open?(): Promise<void>;
  write(points: Point[]): Promise<void>;
  close(): Promise<void>;
}

/** What a buffering sink reports about itself. */
export interface SinkStats {
  /** points the store accepted */
  written: number;
  /** points waiting in the buffer (or in flight) */
  buffered: number;
  /** oldest points thrown away because the buffer was full, or left over at close */
  dropped: number;
  /** points refused as invalid — by the serializer or by the store (HTTP 4xx) */
  rejected: number;
  /** failed attempts that will be retried */
  retries: number;
  /** the last failure, for status displays */
  lastError?: string;
}
