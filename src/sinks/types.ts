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
  /** What happened to the points so far (see SinkStats). */
  readonly stats: SinkStats;
}

/**
 * What happened to every point a sink was offered. At any moment
 * `offered = written + buffered + dropped + rejected`: a point is delivered, still waiting, thrown
 * away by the sink (its bounded buffer overflowed, or it closed with the store away), or refused
 * (the store said no — HTTP 4xx, a column of another type — or it cannot be encoded).
 */
export interface SinkStats {
  /** points handed to write() that carried something to write */
  offered: number;
  /** points the store accepted */
  written: number;
  /** points waiting in the buffer (or in flight) */
  buffered: number;
  /** points thrown away by the sink, by reason (buffer_full, unsent_at_close…) */
  dropped: number;
  droppedBy: Record<string, number>;
  /** points refused, by reason (invalid_point, http_404, sqlstate_22P02…) */
  rejected: number;
  rejectedBy: Record<string, number>;
  /** failed attempts that will be retried */
  retries: number;
  /** false from the first failed or refused write until a write goes through whole */
  healthy: boolean;
  /** when `healthy` last changed (or the sink was made), ISO 8601 */
  since: string;
  /** the last failure and when it happened, for status displays */
  lastError?: string;
  lastErrorAt?: string;
}
