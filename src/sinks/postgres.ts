import { connect, copyFrom, copyTextValue, quoteIdent, type ConnectionInfo, type Sql } from '../pg/index.js';
import { SinkLedger } from './ledger.js';
import { maintainStore, type MaintenanceReport } from './rollup.js';
import { KEEP_DEFAULTS, TEXT_ID, columnsOf, ensureLayout, ensureRollupTables, isTextId, makeView, partitionBounds, tierTable } from './store-layout.js';
import type { Point } from './point.js';
import type { Sink, SinkStats } from './types.js';

/**
 * Points into Postgres — by default the lab's `metrics` node — in the compact layout of
 * store-layout.ts: per measurement a raw table of (time, series id, one typed column per field)
 * in hourly partitions, rolled up into 1-minute and 10-minute min/avg/max tables by a small job
 * this sink runs every `maintainEveryMs` (rollup.ts), which also drops what is past each tier's
 * keep. A view named as the measurement shows the raw rows with their tags, as the first layout's
 * tables did. Rates that can be derived from the counter beside them are not stored.
 *
 * Writes are buffered and flushed with COPY at `batchSize` points or every `flushMs`, whichever
 * comes first; while the server is away the buffer keeps up to `maxBuffer` points (oldest
 * dropped first, counted).
 *
 * Each measurement of a batch is its own COPY, so one table that refuses its rows (a column of
 * another type than the points carry, a permission missing) costs only that measurement's
 * points, counted as rejected by SQLSTATE; the rest is written. A server that is away, restarting
 * or out of connections is retried, as is a table or column someone dropped (it is made again).
 * A value goes into an existing column of another type when that loses nothing (a boolean into
 * a number column as 1 or 0).
 */

export interface PostgresSinkOptions {
  schema?: string;
  retentionDays?: number;
  batchSize?: number;
  flushMs?: number;
  maxBuffer?: number;
  /** How long full resolution is kept (then only the rollups); default 6 h. */
  rawKeepMs?: number;
  /** How long 1-minute rollups are kept (then only the 10-minute ones); default 2 days. */
  oneMinuteKeepMs?: number;
  /** How often the rollup and retention job runs (from flush); default 60 s. */
  maintainEveryMs?: number;
  warn?: (message: string) => void;
}

type ColumnType = 'double precision' | 'bigint' | 'boolean' | typeof TEXT_ID;
/** Column types the sink finds in an existing table are whatever format_type() says. */
type FoundType = ColumnType | (string & {});

interface TableShape {
  /** field columns of the raw table (not time, sid) */
  columns: Map<string, FoundType>;
  partitions: Set<string>;
  /** tag names the view shows */
  tags: Set<string>;
  /** canonical tags → series id */
  series: Map<string, number>;
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
  private lastMaintenance = 0;
  /** Per measurement, the oldest time written since the last rollup: late points make it roll that part again. */
  private readonly written = new Map<string, number>();
  /** What the rollup job knows it made (tables, partitions), between its runs. */
  private readonly made = new Map<string, string>();
  /** String → id in `_text`, bounded. */
  private readonly texts = new Map<string, number>();
  private readonly o: Required<Omit<PostgresSinkOptions, 'warn'>> & Pick<PostgresSinkOptions, 'warn'>;
  /** Set while writes fail, so a long outage warns once, not every second. */
  private failing = false;

  constructor(private readonly connection: ConnectionInfo, options: PostgresSinkOptions = {}) {
    this.name = `postgres://${connection.user}@${connection.host}:${connection.port}/${connection.database}`;
    this.o = {
      schema: 'metrics',
      retentionDays: 7,
      batchSize: 5000,
      flushMs: 1000,
      maxBuffer: 200_000,
      rawKeepMs: KEEP_DEFAULTS.rawMs,
      oneMinuteKeepMs: KEEP_DEFAULTS.oneMinuteMs,
      maintainEveryMs: 60_000,
      ...options,
    };
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
    this.lastMaintenance = Date.now(); // the first run a `maintainEveryMs` after opening, not on the first write
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
    if (this.schemaReady && !this.failing && Date.now() - this.lastMaintenance >= this.o.maintainEveryMs) {
      await this.maintain().catch((e: unknown) => this.o.warn?.(`${this.name}: rollup and retention failed, will try again: ${messageOf(e)}`));
    }
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
    const { dropped } = await ensureLayout(this.sql!, this.o.schema);
    if (dropped.length) {
      this.o.warn?.(`${this.name}: the metrics store had the first layout (a table per measurement with every rate stored); made it again in the compact layout — ${dropped.length} old tables and their history dropped`);
    }
    this.schemaReady = true;
  }

  /**
   * Rolls up what is due and drops what is past each tier's keep (rollup.ts): bounded in time,
   * idempotent, run from flush every `maintainEveryMs`. `now` is for tests.
   */
  async maintain(now = Date.now()): Promise<MaintenanceReport> {
    this.lastMaintenance = Date.now();
    if (!this.sql) throw new Error('the sink is not open');
    await this.ensureSchema();
    const late = new Map(this.written);
    this.written.clear();
    return maintainStore(this.sql, {
      schema: this.o.schema,
      now,
      late,
      rawKeepMs: this.o.rawKeepMs,
      oneMinuteKeepMs: this.o.oneMinuteKeepMs,
      retentionMs: this.o.retentionDays * DAY,
      made: this.made,
    });
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
        const table = `${this.o.schema}.${measurement}_raw`;
        const problem = `COPY ${table}: ${messageOf(e)}`;
        this.ledger.rejected(points.length, `sqlstate_${code}`, problem);
        this.o.warn?.(`${this.name}: the store refused ${points.length} points: ${problem} (SQLSTATE ${code}) — fix or drop the table ${table}`);
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
    this.made.clear();
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
    const shape = await this.ensureTable(measurement, points);
    const names = [...shape.columns.keys()];
    const types = names.map((c) => shape.columns.get(c)!);
    const ids = await this.seriesIds(measurement, shape, points);
    const texts = await this.textIds(names.filter((_, k) => isTextId(types[k]!)), points);
    let data = '';
    let lastTime = NaN;
    let timeText = '';
    let oldest = Infinity;
    for (let i = 0; i < points.length; i++) {
      const p = points[i]!;
      // A sample's points share one time: format it once.
      if (p.time !== lastTime) {
        timeText = new Date((lastTime = p.time)).toISOString();
        if (p.time < oldest) oldest = p.time;
      }
      data += `${timeText}\t${ids[i]}`;
      for (let k = 0; k < names.length; k++) {
        const v = p.fields[names[k]!];
        data += `\t${isTextId(types[k]!) ? (v === null || v === undefined ? '\\N' : String(texts.get(String(v)))) : copyValue(v, types[k]!)}`;
      }
      data += '\n';
    }
    const table = tierTable(this.o.schema, measurement, 'raw');
    await copyFrom(this.sql!, `COPY ${table} (time, sid${names.map((n) => `, ${quoteIdent(n)}`).join('')}) FROM STDIN`, [{ data, rows: points.length }]);
    this.written.set(measurement, Math.min(this.written.get(measurement) ?? Infinity, oldest));
  }

  /** Each point's series id, making the series this batch brings first. */
  private async seriesIds(measurement: string, shape: TableShape, points: Point[]): Promise<number[]> {
    const keys = points.map((p) => canonical(p.tags));
    const missing = [...new Set(keys.filter((k) => !shape.series.has(k)))];
    if (missing.length) {
      const rows = await this.sql!.unsafe<{ id: number; tags: Record<string, string> }[]>(
        `INSERT INTO ${quoteIdent(this.o.schema)}._series (measurement, tags) SELECT $1, t FROM jsonb_array_elements($2::text::jsonb) t
         ON CONFLICT (measurement, tags) DO UPDATE SET measurement = excluded.measurement RETURNING id, tags`,
        [measurement, `[${missing.join(',')}]`],
      );
      for (const r of rows) shape.series.set(canonical(r.tags), r.id);
    }
    return keys.map((k) => shape.series.get(k)!);
  }

  /** Ids of the strings these points carry in text columns, making the new ones. */
  private async textIds(columns: string[], points: Point[]): Promise<Map<string, number>> {
    if (!columns.length) return this.texts;
    const missing = new Set<string>();
    for (const p of points) {
      for (const c of columns) {
        const v = p.fields[c];
        if (v !== null && v !== undefined && !this.texts.has(String(v))) missing.add(String(v));
      }
    }
    if (!missing.size) return this.texts;
    if (this.texts.size + missing.size > 50_000) this.texts.clear();
    const rows = await this.sql!.unsafe<{ id: number; value: string }[]>(
      `INSERT INTO ${quoteIdent(this.o.schema)}._text (value) SELECT unnest($1::text[])
       ON CONFLICT ((md5(value))) DO UPDATE SET value = excluded.value RETURNING id, value`,
      [[...missing]] as never[],
    );
    for (const r of rows) this.texts.set(r.value, r.id);
    return this.texts;
  }

  /** Creates the raw table, its new columns, the hourly partitions this batch needs and (when its shape changed) the view. */
  private async ensureTable(measurement: string, points: Point[]): Promise<TableShape> {
    const schema = this.o.schema;
    const table = tierTable(schema, measurement, 'raw');
    let shape = this.tables.get(measurement);
    let stale = false;
    if (!shape) {
      await this.sql!.unsafe(`CREATE TABLE IF NOT EXISTS ${table} (time timestamptz NOT NULL, sid int NOT NULL) PARTITION BY RANGE (time)`);
      // BRIN, not a B-tree: rows arrive in time order, and a B-tree would cost ~20 bytes a row.
      await this.sql!.unsafe(`CREATE INDEX IF NOT EXISTS ${quoteIdent(`${measurement}_raw_time`)} ON ${table} USING brin (time)`);
      const series = await this.sql!<{ id: number; tags: Record<string, string> }[]>`select id, tags from ${this.sql!(schema)}._series where measurement = ${measurement}`;
      const tags = new Set(series.flatMap((r) => Object.keys(r.tags)));
      shape = { columns: await columnsOf(this.sql!, schema, `${measurement}_raw`), partitions: new Set(), tags, series: new Map(series.map((r) => [canonical(r.tags), r.id])) };
      this.tables.set(measurement, shape);
      const [view] = await this.sql!<{ ok: boolean }[]>`select to_regclass(${`${quoteIdent(schema)}.${quoteIdent(measurement)}`}) is not null as ok`;
      stale = !view!.ok;
    }
    for (const [name, type] of newColumns(points, shape.columns)) {
      await this.sql!.unsafe(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS ${quoteIdent(name)} ${type === TEXT_ID ? `${quoteIdent(schema)}.${TEXT_ID}` : type}`);
      shape.columns.set(name, type);
      stale = true;
    }
    for (const p of points) {
      for (const t in p.tags) {
        if (shape.tags.has(t)) continue;
        shape.tags.add(t);
        stale = true;
      }
    }
    if (stale) {
      await ensureRollupTables(this.sql!, schema, measurement, shape.columns);
      await makeView(this.sql!, schema, measurement, [...shape.tags], shape.columns);
    }
    let lastHour = NaN;
    for (const p of points) {
      const hour = Math.floor(p.time / 3_600_000);
      if (hour === lastHour) continue;
      lastHour = hour;
      const part = partitionBounds('raw', p.time);
      const name = `${measurement}_raw_${part.name}`;
      if (shape.partitions.has(name)) continue;
      await this.sql!.unsafe(
        `CREATE TABLE IF NOT EXISTS ${quoteIdent(schema)}.${quoteIdent(name)} PARTITION OF ${table} FOR VALUES FROM ('${part.from.toISOString()}') TO ('${part.to.toISOString()}')`,
      );
      shape.partitions.add(name);
    }
    return shape;
  }
}

/**
 * The fields a point stores: not `time` or `sid` (the row's own), not a null, and not a
 * `F_rate` whose counter `F` is in the same point (readers derive it).
 */
export function storedFields(p: Point): string[] {
  const out: string[] = [];
  for (const name in p.fields) {
    const v = p.fields[name];
    if (v === null || v === undefined || name === 'time' || name === 'sid') continue;
    if (name.endsWith('_rate')) {
      const counter = p.fields[name.slice(0, -'_rate'.length)];
      if (typeof counter === 'number' || typeof counter === 'bigint') continue;
    }
    out.push(name);
  }
  return out;
}

/** Fields of these points that the table has no column for yet, with the type each wants. */
function newColumns(points: Point[], columns: Map<string, FoundType>): Map<string, ColumnType> {
  const found = new Map<string, ColumnType>();
  for (const p of points) {
    for (const name of storedFields(p)) {
      if (!columns.has(name) && !found.has(name)) found.set(name, columnType(p.fields[name]));
    }
  }
  return found;
}

/** Tags as one canonical JSON text (keys sorted): the series' key. */
function canonical(tags: Record<string, string>): string {
  const keys = Object.keys(tags).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(String(tags[k]))}`).join(',')}}`;
}

function columnType(v: unknown): ColumnType {
  if (typeof v === 'bigint') return 'bigint';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'number') return 'double precision';
  return TEXT_ID;
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
