import { connect, copyFrom, copyTextValue, quoteIdent, type ConnectionInfo, type Sql } from '../pg/index.js';
import { SinkLedger } from './ledger.js';
import type { Point } from './point.js';
import type { Sink, SinkStats } from './types.js';

/**
 * Points into Postgres — by default the lab's `metrics` node — shaped for Grafana's Postgres
 * data source: one table per measurement in schema `metrics`, a `time timestamptz` column, one
 * text column per tag and one typed column per field (added as new fields appear), range-
 * partitioned by day. Writes are buffered and flushed with COPY at `batchSize` points or every
 * `flushMs`, whichever comes first; while the server is away the buffer keeps up to `maxBuffer`
 * points (oldest dropped first, counted). Retention drops whole partitions past `retentionDays`.
 *
 * Each measurement of a batch is its own COPY, so one table that refuses its rows (a column of
 * another type than the points carry, a permission missing) costs only that measurement's
 * points, counted as rejected by SQLSTATE; the rest is written. A server that is away, restarting
 * or out of connections is retried, as is a table or column someone dropped (it is made again).
 * A value goes into an existing column of another type when that loses nothing (a boolean into
 * a number column as 1 or 0, as stores made before fields were typed have them).
 */

export interface PostgresSinkOptions {
  schema?: string;
  retentionDays?: number;
  batchSize?: number;
  flushMs?: number;
  maxBuffer?: number;
  warn?: (message: string) => void;
}

type ColumnType = 'double precision' | 'bigint' | 'text' | 'boolean';
/** Column types the sink finds in an existing table are whatever format_type() says. */
type FoundType = ColumnType | (string & {});

interface TableShape {
  columns: Map<string, FoundType>;
  partitions: Set<string>;
}

const DAY = 86_400_000;

export class PostgresSink implements Sink {
  readonly name: string;
  private readonly ledger = new SinkLedger();
  private sql?: Sql;
  private schemaReady = false;
  /** Points of the batch being written that are not yet accounted for (still "buffered"). */
  private inFlight = 0;
  private buffer: Point[] = [];
  private readonly tables = new Map<string, TableShape>();
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  private lastRetention = 0;
  private readonly o: Required<Omit<PostgresSinkOptions, 'warn'>> & Pick<PostgresSinkOptions, 'warn'>;
  /** Set while writes fail, so a long outage warns once, not every second. */
  private failing = false;

  constructor(private readonly connection: ConnectionInfo, options: PostgresSinkOptions = {}) {
    this.name = `postgres://${connection.user}@${connection.host}:${connection.port}/${connection.database}`;
    this.o = { schema: 'metrics', retentionDays: 7, batchSize: 5000, flushMs: 1000, maxBuffer: 200_000, ...options };
  }

  get stats(): SinkStats {
    return this.ledger.stats(this.buffer.length + this.inFlight);
  }

  /**
   * Connects and makes the schema. A store that is away does not stop the sink: it buffers and
   * makes the schema on its first write that gets through. Anything else (no right to create
   * the schema) is thrown: the sink cannot work.
   */
  async open(): Promise<void> {
    this.sql = connect(this.connection, { max: 1, applicationName: 'prodhome-sink' });
    try {
      await this.ensureSchema();
    } catch (e) {
      if (!retryable(e)) throw e;
      this.reconnect();
      this.ledger.failed(messageOf(e));
      this.o.warn?.(`${this.name}: the store is not answering (${messageOf(e)}); buffering up to ${this.o.maxBuffer} points until it does`);
      this.failing = true;
    }
    this.timer = setInterval(() => void this.flush(), this.o.flushMs);
    this.timer.unref();
  }

  async write(points: Point[]): Promise<void> {
    this.ledger.offer(points.length);
    this.buffer.push(...points);
    this.trim();
    if (this.buffer.length >= this.o.batchSize) await this.flush();
  }

  /** Writes what is buffered; true when the buffer is empty afterwards. */
  async flush(): Promise<boolean> {
    while (this.flushing) await this.flushing;
    if (!this.buffer.length || !this.sql) return this.buffer.length === 0;
    const batch = this.buffer;
    this.buffer = [];
    this.inFlight = batch.length;
    this.flushing = this.writeBatch(batch).finally(() => {
      this.inFlight = 0;
      this.flushing = undefined;
    });
    await this.flushing;
    if (this.schemaReady && Date.now() - this.lastRetention > 3_600_000) await this.dropExpired().catch(() => {});
    return this.buffer.length === 0;
  }

  /** Flushes, and tries once more after a second if the store is away; what is left is counted dropped. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (!(await this.flush()) && this.sql) {
      await new Promise((r) => setTimeout(r, 1000));
      await this.flush();
    }
    const left = this.buffer.length;
    if (left > 0) {
      this.ledger.dropped(left, 'unsent_at_close');
      this.buffer = [];
      this.o.warn?.(`${this.name}: ${left} points not written at close (${this.stats.lastError ?? 'no answer'}).`);
    }
    await this.sql?.end({ timeout: 2 }).catch(() => {});
    this.sql = undefined;
  }

  private trim(): void {
    const excess = this.buffer.length - this.o.maxBuffer;
    if (excess <= 0) return;
    this.buffer.splice(0, excess);
    this.ledger.dropped(excess, 'buffer_full');
  }

  private async ensureSchema(): Promise<void> {
    if (this.schemaReady) return;
    await this.sql!.unsafe(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(this.o.schema)}`);
    this.schemaReady = true;
    // Retention runs now and then hourly, from flush.
    await this.dropExpired().catch(() => {});
  }

  /** Drops daily partitions that end before now − retention; returns their names. */
  async dropExpired(now = Date.now()): Promise<string[]> {
    this.lastRetention = now;
    const cutoff = dayKey(now - this.o.retentionDays * DAY);
    const rows = await this.sql!<{ parent: string; child: string }[]>`
      select p.relname as parent, c.relname as child from pg_inherits i
      join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
      join pg_namespace n on n.oid = p.relnamespace where n.nspname = ${this.o.schema}`;
    const dropped: string[] = [];
    for (const r of rows) {
      const day = /_(\d{8})$/.exec(r.child)?.[1];
      if (!day || day >= cutoff) continue;
      await this.sql!.unsafe(`DROP TABLE IF EXISTS ${quoteIdent(this.o.schema)}.${quoteIdent(r.child)}`);
      this.tables.get(r.parent)?.partitions.delete(r.child);
      dropped.push(r.child);
    }
    return dropped;
  }

  /**
   * One COPY per measurement. Each one's points are written, refused (counted rejected), or —
   * when the store is away — put back in the buffer with every measurement not yet written,
   * so nothing is written twice.
   */
  private async writeBatch(batch: Point[]): Promise<void> {
    const byMeasurement = new Map<string, Point[]>();
    for (const p of batch) {
      const list = byMeasurement.get(p.measurement);
      if (list) list.push(p);
      else byMeasurement.set(p.measurement, [p]);
    }
    const groups = [...byMeasurement];
    let whole = true;
    for (let i = 0; i < groups.length; i++) {
      const [measurement, points] = groups[i]!;
      try {
        await this.ensureSchema();
        await this.copy(measurement, points);
        this.inFlight -= points.length;
        this.ledger.wrote(points.length, false);
      } catch (e) {
        whole = false;
        this.tables.delete(measurement); // its shape may not be what we thought: look again
        if (retryable(e)) {
          this.inFlight = 0;
          this.retryLater(groups.slice(i).flatMap(([, p]) => p), e);
          return;
        }
        this.inFlight -= points.length;
        const code = (e as { code?: string }).code ?? 'unknown';
        const problem = `COPY ${this.o.schema}.${measurement}: ${messageOf(e)}`;
        this.ledger.rejected(points.length, `sqlstate_${code}`, problem);
        this.o.warn?.(`${this.name}: the store refused ${points.length} points: ${problem} (SQLSTATE ${code}) — fix or drop the table ${this.o.schema}.${measurement}`);
      }
    }
    if (whole) {
      if (this.failing) this.o.warn?.(`${this.name}: writing again; ${this.stats.dropped} points dropped and ${this.stats.rejected} refused so far.`);
      this.failing = false;
      this.ledger.wrote(0, true);
    }
  }

  /** Puts points back in front of the buffer, within its bound, and starts afresh on a new connection. */
  private retryLater(points: Point[], e: unknown): void {
    this.buffer = [...points, ...this.buffer];
    this.trim();
    this.ledger.retry(messageOf(e));
    this.tables.clear(); // the server may have restarted or lost tables: look again
    if (!isServerError(e)) this.schemaReady = false;
    this.reconnect();
    if (!this.failing) this.o.warn?.(`${this.name}: write failed, will retry: ${messageOf(e)}`);
    this.failing = true;
  }

  /** postgres 3.4.9 can leave a pool hanging after it failed to connect: start afresh. */
  private reconnect(): void {
    const broken = this.sql;
    this.sql = connect(this.connection, { max: 1, applicationName: 'prodhome-sink' });
    void broken?.end({ timeout: 0 }).catch(() => {});
  }

  private async copy(measurement: string, points: Point[]): Promise<void> {
    const columns = await this.ensureTable(measurement, points);
    const names = [...columns.keys()];
    const types = names.map((c) => columns.get(c)!);
    let data = '';
    let lastTime = NaN;
    let timeText = '';
    for (const p of points) {
      // A sample's points share one time: format it once.
      if (p.time !== lastTime) timeText = new Date((lastTime = p.time)).toISOString();
      data += timeText;
      for (let k = 0; k < names.length; k++) data += `\t${copyValue(p.tags[names[k]!] ?? p.fields[names[k]!], types[k]!)}`;
      data += '\n';
    }
    const table = `${quoteIdent(this.o.schema)}.${quoteIdent(measurement)}`;
    await copyFrom(this.sql!, `COPY ${table} (time, ${names.map(quoteIdent).join(', ')}) FROM STDIN`, [{ data, rows: points.length }]);
  }

  /** Creates the table, its new columns and the day partitions this batch needs. */
  private async ensureTable(measurement: string, points: Point[]): Promise<Map<string, FoundType>> {
    const schema = quoteIdent(this.o.schema);
    const table = `${schema}.${quoteIdent(measurement)}`;
    let shape = this.tables.get(measurement);
    if (!shape) {
      await this.sql!.unsafe(`CREATE TABLE IF NOT EXISTS ${table} (time timestamptz NOT NULL) PARTITION BY RANGE (time)`);
      await this.sql!.unsafe(`CREATE INDEX IF NOT EXISTS ${quoteIdent(`${measurement}_time`)} ON ${table} (time)`);
      const existing = await this.sql!<{ name: string; type: string }[]>`
        select attname as name, format_type(atttypid, atttypmod) as type from pg_attribute
        where attrelid = ${`${schema}.${quoteIdent(measurement)}`}::regclass and attnum > 0 and not attisdropped and attname <> 'time'`;
      shape = { columns: new Map(existing.map((c) => [c.name, c.type])), partitions: new Set() };
      this.tables.set(measurement, shape);
    }
    for (const [name, type] of newColumns(points, shape.columns)) {
      await this.sql!.unsafe(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS ${quoteIdent(name)} ${type}`);
      shape.columns.set(name, type);
    }
    for (const day of new Set(points.map((p) => Math.floor(p.time / DAY)))) {
      const from = new Date(day * DAY).toISOString().slice(0, 10);
      const partition = `${measurement}_${from.replace(/-/g, '')}`;
      if (shape.partitions.has(partition)) continue;
      const to = new Date((day + 1) * DAY).toISOString().slice(0, 10);
      await this.sql!.unsafe(`CREATE TABLE IF NOT EXISTS ${schema}.${quoteIdent(partition)} PARTITION OF ${table} FOR VALUES FROM ('${from}') TO ('${to}')`);
      shape.partitions.add(partition);
    }
    return shape.columns;
  }
}

/** Tags and fields of these points that the table has no column for yet, with the type each wants. */
function newColumns(points: Point[], columns: Map<string, FoundType>): Map<string, ColumnType> {
  const found = new Map<string, ColumnType>();
  const look = (values: Record<string, unknown>) => {
    for (const name in values) {
      const value = values[name];
      if (name === 'time' || value === null || value === undefined || columns.has(name) || found.has(name)) continue;
      found.set(name, columnType(value));
    }
  };
  for (const p of points) {
    look(p.tags);
    look(p.fields);
  }
  return found;
}

function dayKey(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10).replace(/-/g, '');
}

function columnType(v: unknown): ColumnType {
  if (typeof v === 'bigint') return 'bigint';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'number') return 'double precision';
  return 'text';
}

/** Errors the server sent (with a SQLSTATE), as opposed to a connection that failed. */
function isServerError(e: unknown): boolean {
  return e instanceof Error && e.name === 'PostgresError';
}

/**
 * Whether trying again can help: the server is away, restarting, out of connections or in
 * recovery; or someone dropped what the sink made (schema, table, column, partition), which it
 * makes again. Anything else the server says (a type that does not fit a column, no privilege)
 * will be said again: those points are refused.
 */
function retryable(e: unknown): boolean {
  if (!isServerError(e)) return true;
  const code = (e as { code?: string }).code ?? '';
  return /^(08|40|53|55|57|58|XX)/.test(code) || ['3F000', '42P01', '42703', '23514', '25006'].includes(code);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const NUMERIC = /^(double precision|real|bigint|integer|smallint|numeric)/;

/** A value in COPY's text format, for a column of this type. */
function copyValue(v: unknown, type: FoundType): string {
  if (v === null || v === undefined) return '\\N';
  // Stores made before fields were typed have number columns for what is now a boolean.
  if (typeof v === 'boolean' && NUMERIC.test(type)) return v ? '1' : '0';
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
  return copyTextValue(String(v));
}
