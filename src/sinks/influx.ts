import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { encodePoints, type Precision } from './line-protocol.js';
import type { Point } from './point.js';
import type { Sink, SinkStats } from './types.js';

const gzip = promisify(gzipCallback);

/** Which InfluxDB write API, and where. */
export type InfluxTarget =
  | { version: 1; baseUrl: string; db: string; rp?: string; precision: Precision }
  | { version: 2; baseUrl: string; org: string; bucket: string; precision: Precision };

export interface InfluxTuning {
  /** send as soon as this many points are buffered… */
  batchSize: number;
  /** …or this long after the first of them arrived, whichever comes first */
  flushIntervalMs: number;
  /** the buffer's bound; past it the oldest points are dropped */
  maxBuffered: number;
  /** retry delays double from min to max */
  minBackoffMs: number;
  maxBackoffMs: number;
  requestTimeoutMs: number;
  /** how long close() keeps trying to deliver what is left */
  closeTimeoutMs: number;
}

export const INFLUX_DEFAULTS: InfluxTuning = {
  batchSize: 5000,
  flushIntervalMs: 1000,
  maxBuffered: 100_000,
  minBackoffMs: 250,
  maxBackoffMs: 30_000,
  requestTimeoutMs: 10_000,
  closeTimeoutMs: 5000,
};

export interface InfluxSinkOptions extends Partial<InfluxTuning> {
  /** 2.x: the API token. 1.x: `user:password` when the server has auth on. Never logged. */
  token?: string;
  /** gzip request bodies (default true): line protocol shrinks ~10x */
  gzip?: boolean;
  /** Told when writing starts failing, recovers, or drops points; not about normal writes. */
  warn?: (message: string) => void;
}

type Outcome = 'ok' | 'retry' | 'rejected';

/**
 * InfluxDB over HTTP: 1.x `POST /write?db=&rp=&precision=`, 2.x `POST /api/v2/write?org=&bucket=
 * &precision=` (VictoriaMetrics accepts both). Points are encoded on write and buffered; a batch
 * goes out at `batchSize` points or `flushIntervalMs` after the first one. A failed send (no
 * connection, 5xx, 429) puts the batch back at the front and retries with exponential backoff
 * (no jitter: one lab, one writer, no herd to spread); meanwhile the buffer holds at most
 * `maxBuffered` points, dropping the oldest first. A 4xx other than 408/429 means the store
 * refuses these points (bad data, no such database, bad token): retrying cannot help, so the
 * batch is counted as rejected and reported through `warn`.
 */
export class InfluxSink implements Sink {
  readonly name: string;
  readonly #token: string | undefined; // private field: not shown by console.log or JSON
  readonly #url: string;
  readonly #tuning: InfluxTuning;
  readonly #gzip: boolean;
  readonly #warn: (message: string) => void;
  #buffer: string[] = [];
  #inFlight = 0;
  #draining: Promise<boolean> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #closed = false;
  /** set by close(): no request may outlive it */
  #deadline: number | undefined;
  #stats = { written: 0, dropped: 0, rejected: 0, retries: 0, lastError: undefined as string | undefined };

  constructor(
    readonly target: InfluxTarget,
    options: InfluxSinkOptions = {},
  ) {
    const { token, gzip: useGzip = true, warn = () => {}, ...tuning } = options;
    this.#token = token;
    this.#gzip = useGzip;
    this.#warn = warn;
    this.#tuning = { ...INFLUX_DEFAULTS, ...withoutUndefined(tuning) };
    const host = new URL(target.baseUrl).host;
    if (target.version === 1) {
      this.name = `influx://${host}/${target.db}`;
      const q = new URLSearchParams({ db: target.db, precision: target.precision === 'ns' ? 'n' : target.precision });
      if (target.rp) q.set('rp', target.rp);
      this.#url = `${target.baseUrl}/write?${q}`;
    } else {
      this.name = `influx2://${host}?${new URLSearchParams({ org: target.org, bucket: target.bucket })}`;
      const q = new URLSearchParams({ org: target.org, bucket: target.bucket, precision: target.precision });
      this.#url = `${target.baseUrl}/api/v2/write?${q}`;
    }
  }

  get stats(): SinkStats {
    const { lastError, ...counts } = this.#stats;
    return { ...counts, buffered: this.#buffer.length + this.#inFlight, ...(lastError ? { lastError } : {}) };
  }

  async write(points: Point[]): Promise<void> {
    if (this.#closed) throw new Error(`${this.name}: write after close`);
    const lines = encodePoints(points, this.target.precision, (e) => {
      this.#stats.rejected++;
      this.#warn(`${this.name}: ${e.message}`);
    });
    for (const line of lines) this.#buffer.push(line);
    this.#trim();
    if (this.#attempt > 0) return; // backing off: the retry timer sends
    if (this.#buffer.length >= this.#tuning.batchSize) void this.#drain();
    else if (this.#buffer.length > 0) this.#schedule(this.#tuning.flushIntervalMs, false);
  }

  /** Sends everything buffered now, ignoring any backoff; true when all of it was delivered. */
  async flush(): Promise<boolean> {
    while (this.#draining) await this.#draining;
    return this.#drain();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    const deadline = Date.now() + this.#tuning.closeTimeoutMs;
    this.#deadline = deadline;
    // retry at the backoff's pace while a retry still fits before the deadline
    while (!(await this.flush()) && Date.now() + this.#backoff() < deadline) {
      await new Promise((r) => setTimeout(r, this.#backoff()));
    }
    const left = this.#buffer.length;
    if (left > 0) {
      this.#stats.dropped += left;
      this.#buffer = [];
      this.#warn(`${this.name}: ${left} points not written at close (${this.#stats.lastError ?? 'no answer'}).`);
    }
  }

  /** One drain at a time: batches go out in order until the buffer is empty or a send fails. */
  #drain(): Promise<boolean> {
    this.#draining ??= this.#drainLoop().finally(() => {
      this.#draining = undefined;
    });
    return this.#draining;
  }

  async #drainLoop(): Promise<boolean> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#buffer.length > 0) {
      const batch = this.#buffer.splice(0, this.#tuning.batchSize);
      this.#inFlight = batch.length;
      const outcome = await this.#send(batch);
      this.#inFlight = 0;
      if (outcome === 'retry') {
        this.#buffer = batch.concat(this.#buffer);
        this.#trim(); // now the oldest points are this batch's
        this.#stats.retries++;
        this.#attempt++;
        if (!this.#closed) this.#schedule(this.#backoff(), true);
        return false;
      }
      if (this.#attempt > 0) this.#warn(`${this.name}: writing again after ${this.#attempt} failed attempts; ${this.#stats.dropped} points dropped so far.`);
      this.#attempt = 0;
      if (outcome === 'ok') this.#stats.written += batch.length;
      else this.#stats.rejected += batch.length;
    }
    return true;
  }

  async #send(batch: string[]): Promise<Outcome> {
    const text = batch.join('');
    const headers: Record<string, string> = { 'Content-Type': 'text/plain; charset=utf-8' };
    if (this.#gzip) headers['Content-Encoding'] = 'gzip';
    if (this.#token !== undefined) {
      headers.Authorization = this.target.version === 2 ? `Token ${this.#token}` : `Basic ${Buffer.from(this.#token).toString('base64')}`;
    }
    try {
      const res = await fetch(this.#url, {
        method: 'POST',
        headers,
        body: this.#gzip ? await gzip(text) : text,
        signal: AbortSignal.timeout(Math.max(1, Math.min(this.#tuning.requestTimeoutMs, (this.#deadline ?? Infinity) - Date.now()))),
      });
      const answer = (await res.text()).trim().slice(0, 300);
      if (res.ok) return 'ok';
      const problem = `HTTP ${res.status}${answer ? ` ${answer}` : ''}`;
      if (res.status >= 500 || res.status === 408 || res.status === 429) return this.#failed(problem);
      this.#stats.lastError = problem;
      this.#warn(`${this.name}: the server refused ${batch.length} points: ${problem}`);
      return 'rejected';
    } catch (e) {
      return this.#failed(networkProblem(e));
    }
  }

  #failed(problem: string): Outcome {
    this.#stats.lastError = problem;
    if (this.#attempt === 0) this.#warn(`${this.name}: cannot write (${problem}); buffering up to ${this.#tuning.maxBuffered} points and retrying.`);
    return 'retry';
  }

  #trim(): void {
    const over = this.#buffer.length + this.#inFlight - this.#tuning.maxBuffered;
    if (over <= 0) return;
    const n = Math.min(over, this.#buffer.length);
    this.#buffer.splice(0, n);
    this.#stats.dropped += n;
  }

  #backoff(): number {
    const { minBackoffMs, maxBackoffMs } = this.#tuning;
    return Math.min(maxBackoffMs, minBackoffMs * 2 ** Math.max(0, this.#attempt - 1));
  }

  /** A timer to drain later; `replace` moves an existing one (a backoff overrides a flush). */
  #schedule(ms: number, replace: boolean): void {
    if (this.#timer && !replace) return;
    clearTimeout(this.#timer);
    // unref: a forgotten sink must not keep the process alive; close() is the way to deliver
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#drain();
    }, ms).unref();
  }
}

/** fetch hides the reason in `cause` (ECONNREFUSED, a timeout…); name it, not "fetch failed". */
function networkProblem(e: unknown): string {
  if (e instanceof Error && e.name === 'TimeoutError') return 'no answer in time';
  const cause = e instanceof Error ? (e.cause as { code?: string; message?: string } | undefined) : undefined;
  return cause?.code ?? cause?.message ?? (e instanceof Error ? e.message : String(e));
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
