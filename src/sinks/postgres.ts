import { connect, copyFrom, copyTextValue, quoteIdent, type ConnectionInfo, type Sql } from '../pg/index.js';
import type { Point } from './point.js';
import type { Sink, SinkStats } from './types.js';

/**
 * Points into Postgres — by default the lab's `metrics` node — shaped for Grafana's Postgres
 * data source: one table per measurement in schema `metrics`, a `time timestamptz` column, one
 * text column per tag and one typed column per field (added as new fields appear), range-
 * partitioned by day. Writes are buffered and flushed with COPY at `batchSize` points or every
 * `flushMs`, whichever comes first; while the server is away the buffer keeps up to `maxBuffer`
 * points (oldest dropped first, counted). Retention drops whole partitions past `retentionDays`.
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

interface TableShape {
  columns: Map<string, ColumnType>;
  partitions: Set<string>;
}

const DAY = 86_400_000;

export class PostgresSink implements Sink {
  readonly name: string;
  readonly stats: SinkStats = { written: 0, buffered: 0, dropped: 0, rejected: 0, retries: 0 };
  private sql?: Sql;
  private buffer: Point[] = [];
  private readonly tables = new Map<string, TableShape>();
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  private lastRetention = 0;
  private readonly o: Required<Omit<PostgresSinkOptions, 'warn'>> & Pick<PostgresSinkOptions, 'warn'>;

  constructor(private readonly connection: ConnectionInfo, options: PostgresSinkOptions = {}) {
    this.name = `postgres://${connection.user}@${connection.host}:${connection.port}/${connection.database}`;
    this.o = { schema: 'metrics', retentionDays: 7, batchSize: 5000, flushMs: 1000, maxBuffer: 200_000, ...options };
  }

  async open(): Promise<void> {
    this.sql = connect(this.connection, { max: 1, applicationName: 'prodhome-sink' });
    await this.sql.unsafe(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(this.o.schema)}`);
    // Retention runs now and then hourly, from flush.
    await this.dropExpired().catch(() => {});
    this.timer = setInterval(() => void this.flush(), this.o.flushMs);
    this.timer.unref();
  }

  async write(points: Point[]): Promise<void> {
    this.buffer.push(...points);
    if (this.buffer.length > this.o.maxBuffer) {
      const excess = this.buffer.length - this.o.maxBuffer;
      this.buffer.splice(0, excess);
      this.stats.dropped += excess;
    }
    this.stats.buffered = this.buffer.length;
    if (this.buffer.length >= this.o.batchSize) await this.flush();
  }

  /** Writes what is buffered; true when the buffer is empty afterwards. */
  async flush(): Promise<boolean> {
    while (this.flushing) await this.flushing;
    if (!this.buffer.length || !this.sql) return this.buffer.length === 0;
    const batch = this.buffer;
    this.buffer = [];
    this.flushing = this.writeBatch(batch)
      .then(() => {
        this.stats.written += batch.length;
      })
      .catch((e: Error) => {
        // Keep the points for the next try (newest last), within the buffer's bound.
        this.buffer = [...batch, ...this.buffer].slice(-this.o.maxBuffer);
        this.stats.retries++;
        this.stats.lastError = e.message;
        this.tables.clear(); // the server may have restarted or lost tables: look again
        // postgres 3.4.9 can leave a pool hanging after a COPY failed to connect: start afresh.
        const broken = this.sql;
        this.sql = connect(this.connection, { max: 1, applicationName: 'prodhome-sink' });
        void broken?.end({ timeout: 0 }).catch(() => {});
        this.o.warn?.(`${this.name}: write failed, will retry: ${e.message}`);
      })
      .finally(() => {
        this.flushing = undefined;
        this.stats.buffered = this.buffer.length;
      });
    await this.flushing;
    if (Date.now() - this.lastRetention > 3_600_000) await this.dropExpired().catch(() => {});
    return this.buffer.length === 0;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
    await this.sql?.end({ timeout: 2 });
    this.sql = undefined;
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

  private async writeBatch(batch: Point[]): Promise<void> {
    const byMeasurement = new Map<string, Point[]>();
    for (const p of batch) {
      const list = byMeasurement.get(p.measurement) ?? [];
      list.push(p);
      byMeasurement.set(p.measurement, list);
    }
    for (const [measurement, points] of byMeasurement) {
      const columns = await this.ensureTable(measurement, points);
      const names = [...columns.keys()];
      let data = '';
      let lastTime = NaN;
      let timeText = '';
      for (const p of points) {
        // A sample's points share one time: format it once.
        if (p.time !== lastTime) timeText = new Date((lastTime = p.time)).toISOString();
        data += timeText;
        for (const c of names) data += `\t${copyValue(p.tags[c] ?? p.fields[c])}`;
        data += '\n';
      }
      const table = `${quoteIdent(this.o.schema)}.${quoteIdent(measurement)}`;
      await copyFrom(this.sql!, `COPY ${table} (time, ${names.map(quoteIdent).join(', ')}) FROM STDIN`, [{ data, rows: points.length }]);
    }
  }

  /** Creates the table, its new columns and the day partitions this batch needs. */
  private async ensureTable(measurement: string, points: Point[]): Promise<Map<string, ColumnType>> {
    const schema = quoteIdent(this.o.schema);
    const table = `${schema}.${quoteIdent(measurement)}`;
    let shape = this.tables.get(measurement);
    if (!shape) {
      await this.sql!.unsafe(`CREATE TABLE IF NOT EXISTS ${table} (time timestamptz NOT NULL) PARTITION BY RANGE (time)`);
      await this.sql!.unsafe(`CREATE INDEX IF NOT EXISTS ${quoteIdent(`${measurement}_time`)} ON ${table} (time)`);
      const existing = await this.sql!<{ name: string; type: string }[]>`
        select attname as name, format_type(atttypid, atttypmod) as type from pg_attribute
        where attrelid = ${`${schema}.${quoteIdent(measurement)}`}::regclass and attnum > 0 and not attisdropped and attname <> 'time'`;
      shape = { columns: new Map(existing.map((c) => [c.name, c.type as ColumnType])), partitions: new Set() };
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
function newColumns(points: Point[], columns: Map<string, ColumnType>): Map<string, ColumnType> {
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

/** A value in COPY's text format. */
function copyValue(v: unknown): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
  return copyTextValue(String(v));
}
