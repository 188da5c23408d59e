import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { encodePoints, type Precision } from './line-protocol.js';
import { SinkLedger } from './ledger.js';
import type { Point } from './point.js';
import type { Sink, SinkStats } from './types.js';

const gzip = promisify(gzipCallback);

/** Which InfluxDB write API, and where. */
export type InfluxTarget =
  /** `create`: make the database when the server says it is missing (default true, as Telegraf does) */
  | { version: 1; baseUrl: string; db: string; rp?: string; precision: Precision; create?: boolean }
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

/** What one send of a batch came to: all written, retry later, send again now, or (some) refused. */
type Outcome = { kind: 'ok' } | { kind: 'retry' } | { kind: 'again' } | { kind: 'refused'; count: number; reason: string };

/**
 * InfluxDB over HTTP: 1.x `POST /write?db=&rp=&precision=`, 2.x `POST /api/v2/write?org=&bucket=
 * &precision=` (VictoriaMetrics accepts both). Points are encoded on write and buffered; a batch
 * goes out at `batchSize` points or `flushIntervalMs` after the first one. A failed send (no
 * connection, 5xx, 429) puts the batch back at the front and retries with exponential backoff
 * (no jitter: one lab, one writer, no herd to spread); meanwhile the buffer holds at most
 * `maxBuffered` points, dropping the oldest first. A 4xx other than 408/429 means the store
 * refuses these points (bad data, bad token): retrying cannot help, so the batch is counted as
 * rejected — only the points it names when the server wrote the rest (`partial write …
 * dropped=N`) — and reported through `warn` with what to do. One exception: 1.x answering
 * "database not found" gets the database created (`CREATE DATABASE`, which is idempotent, as
 * Telegraf does) and the batch sent again, unless the target says `create: false`.
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
  readonly #ledger = new SinkLedger();

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
    return this.#ledger.stats(this.#buffer.length + this.#inFlight);
  }

  async write(points: Point[]): Promise<void> {
    if (this.#closed) throw new Error(`${this.name}: write after close`);
    const lines = encodePoints(points, this.target.precision, (e) => {
      this.#ledger.offer(1);
      this.#ledger.rejected(1, 'invalid_point', e.message);
      this.#warn(`${this.name}: ${e.message}`);
    });
    this.#ledger.offer(lines.length);
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
      this.#ledger.dropped(left, 'unsent_at_close');
      this.#buffer = [];
      this.#warn(`${this.name}: ${left} points not written at close (${this.stats.lastError ?? 'no answer'}).`);
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
      let outcome = await this.#send(batch);
      if (outcome.kind === 'again') outcome = await this.#send(batch, false); // the database is there now
      this.#inFlight = 0;
      if (outcome.kind === 'retry' || outcome.kind === 'again') {
        this.#buffer = batch.concat(this.#buffer);
        this.#trim(); // now the oldest points are this batch's
        this.#attempt++;
        if (!this.#closed) this.#schedule(this.#backoff(), true);
        return false;
      }
      if (this.#attempt > 0) this.#warn(`${this.name}: writing again after ${this.#attempt} failed attempts; ${this.stats.dropped} points dropped and ${this.stats.rejected} refused so far.`);
      this.#attempt = 0;
      if (outcome.kind === 'ok') this.#ledger.wrote(batch.length);
      else {
        this.#ledger.wrote(batch.length - outcome.count, false);
        this.#ledger.rejected(outcome.count, outcome.reason, this.stats.lastError ?? outcome.reason);
      }
    }
    return true;
  }

  /** One POST of a batch; `mayCreate`: a missing 1.x database may be created (once per batch). */
  async #send(batch: string[], mayCreate = true): Promise<Outcome> {
    const text = batch.join('');
    const headers: Record<string, string> = { 'Content-Type': 'text/plain; charset=utf-8' };
    if (this.#gzip) headers['Content-Encoding'] = 'gzip';
    Object.assign(headers, this.#auth());
    try {
      const res = await fetch(this.#url, {
        method: 'POST',
        headers,
        body: this.#gzip ? await gzip(text) : text,
        signal: this.#timeout(),
      });
      const answer = (await res.text()).trim().slice(0, 300);
      if (res.ok) return { kind: 'ok' };
      const problem = `HTTP ${res.status}${answer ? ` ${answer}` : ''}`;
      if (res.status >= 500 || res.status === 408 || res.status === 429) return this.#failed(problem);
      if (this.target.version === 1 && res.status === 404 && /database not found/i.test(answer)) {
        if (this.target.create === false) {
          return this.#refused(batch.length, 'database_not_found', problem, `the database "${this.target.db}" does not exist and the URI says create=false: create it (CREATE DATABASE ${influxIdent(this.target.db)}) or leave create=false out`);
        }
        if (mayCreate) return this.#createDatabase(batch.length, problem);
      }
      // A partial write names how many points the server refused; it wrote the others.
      const partial = /dropped=(\d+)/.exec(answer);
      const count = partial ? Math.min(batch.length, Number(partial[1])) : batch.length;
      return this.#refused(count, refusalReason(res.status, answer), problem, this.#advice(res.status, answer));
    } catch (e) {
      return this.#failed(networkProblem(e));
    }
  }

  /** `CREATE DATABASE` (1.x; a no-op when it exists), then the batch goes again. */
  async #createDatabase(points: number, problem: string): Promise<Outcome> {
    if (this.target.version !== 1) return this.#failed(problem);
    const q = `CREATE DATABASE ${influxIdent(this.target.db)}`;
    try {
      const res = await fetch(`${this.target.baseUrl}/query`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...this.#auth() },
        body: new URLSearchParams({ q }).toString(),
        signal: this.#timeout(),
      });
      const answer = (await res.text()).trim().slice(0, 300);
      // /query answers 200 with {"results":[{"error":…}]} for a statement that failed
      const error = res.ok ? /"error":\s*"((?:[^"\\]|\\.)*)"/.exec(answer)?.[1] : `HTTP ${res.status}${answer ? ` ${answer}` : ''}`;
      if (res.status >= 500) return this.#failed(`${problem}; ${q}: ${error}`);
      if (error !== undefined) {
        return this.#refused(points, 'database_not_found', `${problem}; ${q}: ${error}`, `the database "${this.target.db}" does not exist and could not be created (${error}): create it (${q}) as a user allowed to, or give such a user's credentials`);
      }
      this.#warn(`${this.name}: created the database "${this.target.db}" (the server had none by that name).`);
      return { kind: 'again' };
    } catch (e) {
      return this.#failed(networkProblem(e));
    }
  }

  /** What a user can do about a refusal, as precisely as the answer lets us say. */
  #advice(status: number, answer: string): string | undefined {
    if (this.target.version === 2) {
      const { org, bucket } = this.target;
      if (status === 401) {
        return this.#token === undefined
          ? 'no token was given: set PRODHOME_INFLUX_TOKEN, or token_file= / PRODHOME_INFLUX_TOKEN_FILE pointing at a file holding it'
          : `the token was refused: give a valid API token with write access to bucket "${bucket}" of org "${org}"`;
      }
      if (status === 403) return `the token may not write to bucket "${bucket}" of org "${org}": give it write permission there`;
      if (status === 404 && /org/i.test(answer) && !/bucket/i.test(answer)) return `the org "${org}" does not exist: check org= in the URI (influx org list)`;
      if (status === 404) return `the bucket "${bucket}" does not exist in org "${org}": create it (influx bucket create --name ${bucket} --org ${org}) or check bucket= and org= in the URI`;
    } else {
      if (status === 401) return this.#token === undefined ? 'the server wants credentials: put user:password in PRODHOME_INFLUX_TOKEN or a token_file' : 'the server refused the credentials given (user:password)';
      if (status === 403) return `the user may not write to the database "${this.target.db}": GRANT WRITE ON ${influxIdent(this.target.db)} TO it`;
    }
    if (/field type conflict/i.test(answer)) return 'a field was written before with another type: write into a new database or measurement, or drop the old one';
    return undefined;
  }

  #refused(count: number, reason: string, problem: string, advice?: string): Outcome {
    this.#ledger.failed(problem);
    this.#warn(`${this.name}: the server refused ${count} points: ${problem}${advice ? ` — ${advice}` : ''}`);
    return { kind: 'refused', count, reason };
  }

  #failed(problem: string): Outcome {
    if (this.#attempt === 0) this.#warn(`${this.name}: cannot write (${problem}); buffering up to ${this.#tuning.maxBuffered} points and retrying.`);
    this.#ledger.retry(problem);
    return { kind: 'retry' };
  }

  #auth(): Record<string, string> {
    if (this.#token === undefined) return {};
    return { Authorization: this.target.version === 2 ? `Token ${this.#token}` : `Basic ${Buffer.from(this.#token).toString('base64')}` };
  }

  #timeout(): AbortSignal {
    return AbortSignal.timeout(Math.max(1, Math.min(this.#tuning.requestTimeoutMs, (this.#deadline ?? Infinity) - Date.now())));
  }

  #trim(): void {
    const over = this.#buffer.length + this.#inFlight - this.#tuning.maxBuffered;
    if (over <= 0) return;
    const n = Math.min(over, this.#buffer.length);
    this.#buffer.splice(0, n);
    this.#ledger.dropped(n, 'buffer_full');
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

/** An InfluxQL identifier: double-quoted, `"` and `\` escaped. */
function influxIdent(s: string): string {
  return `"${s.replace(/[\\"]/g, '\\$&')}"`;
}

/** A short, bounded reason for a refusal, for counts by reason (a label, so no free text). */
function refusalReason(status: number, answer: string): string {
  if (/field type conflict/i.test(answer)) return 'field_type_conflict';
  if (/beyond retention policy/i.test(answer)) return 'beyond_retention';
  if (/database not found/i.test(answer)) return 'database_not_found';
  if (/bucket.*not found/i.test(answer)) return 'bucket_not_found';
  if (/org.*not found/i.test(answer)) return 'org_not_found';
  return `http_${status}`;
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
