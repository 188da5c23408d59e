import crypto from 'node:crypto';
import net from 'node:net';
import type { ConnectionInfo } from '../pg/index.js';
import { inline, valueText, type Statement, type Value } from './statement.js';

/**
 * A deliberately small Postgres wire-protocol client for the load generator's hot path: one
 * statement in flight, results counted rather than decoded. Measured on this project's 2-core
 * machine, the `postgres` driver spent ~2.7x pgbench's client CPU per TPC-B transaction and
 * reached half its throughput; this spends about what pgbench does, so the client does not steal
 * the server's cores. Speaks the simple protocol (pgbench -M simple), the extended protocol
 * (-M extended) and named prepared statements (-M prepared); authenticates with SCRAM-SHA-256,
 * MD5 or a cleartext password. No TLS: labs listen on 127.0.0.1.
 */
export type Protocol = 'simple' | 'extended' | 'prepared';

/** A server error, with the fields pgbench users look at. */
export interface ServerError {
  code: string;
  message: string;
  severity?: string;
  detail?: string;
}

export interface Outcome {
  error?: ServerError;
  /** Transaction status after the statement: I idle, T in a transaction, E in a failed one. */
  status: 'I' | 'T' | 'E';
  rows: number;
  /** With `capture`: each statement's result, in order (pgbench's \gset and \aset read them). */
  results?: ResultSet[];
}

/** One statement's result when captured: its columns, row count and last row (text, null for NULL). */
export interface ResultSet {
  fields: string[];
  rows: number;
  last: (string | null)[] | null;
}

/** A statement with its values, one of a pipeline's. */
export interface PipelineItem {
  statement: Statement;
  values: readonly Value[];
  /** A Sync follows it (\syncpipeline, and the pipeline's end). */
  sync?: boolean;
}

/** The connection itself failed (refused, reset, closed): SQLSTATE class 08. */
export class ConnectionLost extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const enum T {
  RowDescription = 0x54,
  CommandComplete = 0x43,
  EmptyQuery = 0x49,
  Auth = 0x52,
  ParameterStatus = 0x53,
  Error = 0x45,
  Ready = 0x5a,
  DataRow = 0x44,
  CopyIn = 0x47,
  ParseComplete = 0x31,
}

export class WireConnection {
  private socket!: net.Socket;
  private parts: Buffer[] = [];
  private partLength = 0;
  private partNeed = 0;
  private pending: ((o: Outcome) => void) | null = null;
  private failed: ((e: Error) => void) | null = null;
  private error: ServerError | undefined;
  private rows = 0;
  private prepared = new Set<number>();
  private parsing = -1;
  private scram?: { nonce: string; clientFirst: string; serverSignature?: Buffer };
  private closed = false;
  private ready = false;
  /** Set while a captured statement runs: the results so far, and the one being read. */
  private results: ResultSet[] | null = null;
  private currentResult: ResultSet | null = null;
  /** ReadyForQuery messages still due before the pending call completes (pipelines send several Syncs). */
  private readiesLeft = 1;
  private firstError: ServerError | undefined;
  readonly parameters = new Map<string, string>();

  private constructor(private readonly info: ConnectionInfo) {}

  static connect(info: ConnectionInfo, applicationName: string, timeoutMs = 10_000): Promise<WireConnection> {
    const c = new WireConnection(info);
    return c.start(applicationName, timeoutMs).then(() => c);
  }

  private start(applicationName: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new ConnectionLost('08001', `timed out after ${timeoutMs / 1000}s connecting to ${this.info.host}:${this.info.port}`)), timeoutMs);
      const fail = (e: Error) => {
        clearTimeout(timer);
        this.socket.destroy();
        reject(e);
      };
      this.failed = fail;
      this.pending = () => {
        clearTimeout(timer);
        resolve();
      };
      // onread: reads land in one reused buffer, without the stream machinery's per-chunk work.
      const s = (this.socket = net.connect({
        port: this.info.port,
        host: this.info.host,
        onread: { buffer: Buffer.allocUnsafe(16_384), callback: (n: number, buf: Uint8Array) => this.receive(buf as Buffer, n) },
      }));
      s.setNoDelay(true);
      s.on('connect', () => {
        const params = ['user', this.info.user, 'database', this.info.database, 'application_name', applicationName, 'client_encoding', 'UTF8'];
        const body = Buffer.from(`${params.join('\0')}\0\0`);
        const b = Buffer.allocUnsafe(8 + body.length);
        b.writeInt32BE(b.length, 0);
        b.writeInt32BE(196608, 4); // protocol 3.0
        body.copy(b, 8);
        s.write(b);
      });
      s.on('error', (e) => this.lost('08006', e.message));
      s.on('close', () => this.lost('08006', 'the server closed the connection'));
    });
  }

  private lost(code: string, message: string): void {
    this.closed = true;
    const f = this.failed;
    this.pending = this.failed = null;
    f?.(new ConnectionLost(code, message));
  }

  get alive(): boolean {
    return !this.closed;
  }

  /** A statement is in flight: its answer is awaited. */
  get busy(): boolean {
    return this.pending !== null;
  }

  /** Runs one statement with its values under the given protocol; `capture` keeps its result (\gset). */
  run(s: Statement, values: readonly Value[], protocol: Protocol, capture = false): Promise<Outcome> {
    if (capture) this.results = [];
    if (protocol === 'simple') {
      if (s.arity || capture) return this.send(queryMessage(s.arity ? inline(s, values) : s.text));
      // Statements without values (BEGIN, END…) are encoded once.
      let q = constantQueries.get(s.id);
      if (!q) constantQueries.set(s.id, (q = queryMessage(s.text)));
      return this.send(q);
    }
    const named = protocol === 'prepared';
    // [Parse,] Bind, [Describe,] Execute, Sync in one buffer (a captured result needs its column names).
    return this.send(encodeBind(s, named, values, this.parseFor(s, named), capture ? DESCRIBE_EXECUTE_SYNC : EXECUTE_SYNC));
  }

  /** The Parse message a statement needs first: always unnamed, once per connection when prepared. */
  private parseFor(s: Statement, named: boolean): Buffer | undefined {
    if (named && this.prepared.has(s.id)) return undefined;
    if (named) this.parsing = s.id;
    return encoded(s, named).parse;
  }

  /**
   * A pipeline (extended protocol): every statement is sent at once, with a Sync where asked and
   * at the end, then every result is read. After an error the server skips to the next Sync; the
   * outcome carries the first error.
   */
  pipeline(items: readonly PipelineItem[], protocol: Protocol): Promise<Outcome> {
    // One buffer for the whole pipeline, sized first, then filled: no part per message, no concat.
    const named = protocol === 'prepared';
    const n = items.length;
    const parses: (Buffer | undefined)[] = new Array(n);
    const texts: (string | null)[][] = new Array(n);
    const bindLengths: number[] = new Array(n);
    let total = 0;
    let syncs = 0;
    for (let k = 0; k < n; k++) {
      const { statement: s, values } = items[k]!;
      const parse = (parses[k] = this.parseFor(s, named));
      const t = (texts[k] = new Array<string | null>(s.arity));
      const bindLength = (bindLengths[k] = bindSize(encoded(s, named).bindHead, s.arity, values, t));
      total += (parse ? parse.length : 0) + 1 + bindLength + EXECUTE.length;
      if (items[k]!.sync || k === n - 1) {
        total += SYNC.length;
        syncs++;
      }
    }
    if (!syncs) {
      total += SYNC.length;
      syncs = 1;
    }
    const b = Buffer.allocUnsafe(total);
    let o = 0;
    for (let k = 0; k < n; k++) {
      const s = items[k]!.statement;
      const parse = parses[k];
      if (parse) o += parse.copy(b, o);
      o = writeBind(b, o, encoded(s, named).bindHead, texts[k]!, bindLengths[k]!);
      o += EXECUTE.copy(b, o);
      if (items[k]!.sync || k === n - 1) o += SYNC.copy(b, o);
    }
    if (o < total) SYNC.copy(b, o); // an empty pipeline: a Sync alone
    this.readiesLeft = syncs;
    return this.send(b);
  }

  /** Prepares a named statement (-M prepared) ahead of a pipeline, as pgbench does. */
  prepare(s: Statement): Promise<Outcome> {
    if (this.prepared.has(s.id)) return Promise.resolve({ status: 'I', rows: 0 });
    this.parsing = s.id;
    return this.send(Buffer.concat([message(0x50, [cstr(`prodhome_${s.id}`), cstr(s.text), int16(0)]), SYNC]));
  }

  /** Whether a named statement is prepared on this connection. */
  isPrepared(s: Statement): boolean {
    return this.prepared.has(s.id);
  }

  /** A simple-protocol query (one or more statements); `capture` keeps each statement's result. */
  query(text: string, capture = false): Promise<Outcome> {
    if (capture) this.results = [];
    return this.send(queryMessage(text));
  }

  private send(b: Buffer): Promise<Outcome> {
    if (this.closed) return Promise.reject(new ConnectionLost('08003', 'the connection is closed'));
    return new Promise((resolve, reject) => {
      this.pending = resolve;
      this.failed = reject;
      this.socket.write(b);
    });
  }

  /** Ends the session politely (Terminate), then closes the socket. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = this.failed = null;
    this.socket.end(TERMINATE);
    this.socket.destroySoon();
  }

  private receive(chunk: Buffer, n: number): boolean {
    let data = chunk;
    let end = n; // the read buffer is longer than what this read filled: no subarray view per read
    if (this.partLength) {
      // Finishing a message that spans reads: gather its pieces, join them once it is whole.
      this.parts.push(Buffer.from(chunk.subarray(0, n)));
      this.partLength += n;
      if (this.partLength < this.partNeed) return true;
      data = Buffer.concat(this.parts, this.partLength);
      end = data.length;
      this.parts = [];
      this.partLength = 0;
    }
    let off = 0;
    while (end - off >= 5) {
      const len = data.readInt32BE(off + 1);
      if (end - off < len + 1) break;
      this.message(data[off]!, data, off + 5, off + 1 + len);
      off += len + 1;
    }
    if (off < end) {
      // The read buffer is reused by the next read: keep a copy of the incomplete message.
      const rest = Buffer.from(data.subarray(off, end));
      this.parts = [rest];
      this.partLength = rest.length;
      this.partNeed = rest.length >= 5 ? rest.readInt32BE(1) + 1 : 5;
    }
    return true;
  }

  private message(type: number, b: Buffer, start: number, end: number): void {
    switch (type) {
      case T.DataRow:
        this.rows++;
        if (this.currentResult) {
          this.currentResult.rows++;
          this.currentResult.last = dataRow(b, start);
        }
        return;
      case T.RowDescription:
        if (this.results) this.currentResult = { fields: fieldNames(b, start), rows: 0, last: null };
        return;
      case T.CommandComplete:
      case T.EmptyQuery:
        if (this.results) {
          this.results.push(this.currentResult ?? { fields: [], rows: 0, last: null });
          this.currentResult = null;
        }
        return;
      case T.Ready: {
        this.ready = true;
        if (this.readiesLeft > 1) {
          // a pipeline's intermediate Sync: keep reading, keep the first error
          this.readiesLeft--;
          this.firstError ??= this.error;
          this.error = undefined;
          return;
        }
        const done = this.pending;
        const outcome: Outcome = { error: this.firstError ?? this.error, status: STATUS[b[start]!] ?? 'I', rows: this.rows };
        if (this.results) outcome.results = this.results;
        this.pending = this.failed = null;
        this.error = this.firstError = undefined;
        this.results = this.currentResult = null;
        this.readiesLeft = 1;
        this.rows = 0;
        done?.(outcome);
        return;
      }
      case T.Error:
        this.error = errorFields(b, start, end);
        // Before the first ReadyForQuery an error is fatal (wrong password, no such database, too many clients).
        if (!this.ready) this.lost(this.error.code, this.error.message);
        return;
      case T.ParseComplete:
        if (this.parsing >= 0) this.prepared.add(this.parsing);
        this.parsing = -1;
        return;
      case T.ParameterStatus: {
        const z = b.indexOf(0, start);
        this.parameters.set(b.toString('utf8', start, z), b.toString('utf8', z + 1, end - 1));
        return;
      }
      case T.CopyIn:
        // COPY … FROM STDIN has no data to read here: refuse it, and the server reports an error.
        this.socket.write(message(0x66, [cstr('prodhome load does not send COPY data')]));
        return;
      case T.Auth:
        this.authenticate(b.readInt32BE(start), b.subarray(start + 4, end));
        return;
      default:
        return; // notices, command tags, row descriptions, COPY OUT data: counted as nothing
    }
  }

  private authenticate(code: number, data: Buffer): void {
    const password = this.info.password ?? '';
    switch (code) {
      case 0:
        return;
      case 3:
        this.socket.write(message(0x70, [cstr(password)]));
        return;
      case 5: {
        const inner = md5(password + this.info.user);
        this.socket.write(message(0x70, [cstr(`md5${md5(Buffer.concat([Buffer.from(inner), data.subarray(0, 4)]))}`)]));
        return;
      }
      case 10: {
        if (!data.toString().split('\0').includes('SCRAM-SHA-256')) return this.lost('08004', 'the server offers no SASL mechanism prodhome knows (SCRAM-SHA-256)');
        const nonce = crypto.randomBytes(18).toString('base64');
        const clientFirst = `n=*,r=${nonce}`;
        this.scram = { nonce, clientFirst };
        const first = Buffer.from(`n,,${clientFirst}`);
        this.socket.write(message(0x70, [cstr('SCRAM-SHA-256'), int32(first.length), first]));
        return;
      }
      case 11: {
        const serverFirst = data.toString();
        const f = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
        if (!this.scram || !f.r?.startsWith(this.scram.nonce)) return this.lost('08004', 'SCRAM: the server nonce does not extend ours');
        const salted = crypto.pbkdf2Sync(password.normalize('NFKC'), Buffer.from(f.s ?? '', 'base64'), Number(f.i), 32, 'sha256');
        const clientKey = hmac(salted, 'Client Key');
        const storedKey = crypto.createHash('sha256').update(clientKey).digest();
        const finalNoProof = `c=biws,r=${f.r}`;
        const authMessage = `${this.scram.clientFirst},${serverFirst},${finalNoProof}`;
        const signature = hmac(storedKey, authMessage);
        const proof = Buffer.from(clientKey.map((x, i) => x ^ signature[i]!));
        this.scram.serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
        this.socket.write(message(0x70, [Buffer.from(`${finalNoProof},p=${proof.toString('base64')}`)]));
        return;
      }
      case 12: {
        const v = /v=([^,]+)/.exec(data.toString())?.[1];
        if (!v || !this.scram?.serverSignature?.equals(Buffer.from(v, 'base64'))) this.lost('08004', 'SCRAM: the server signature does not match');
        return;
      }
      default:
        this.lost('08004', `authentication method ${code} is not supported by prodhome load (it speaks SCRAM-SHA-256, MD5 and password)`);
    }
  }
}

/** Column names of a RowDescription. */
function fieldNames(b: Buffer, start: number): string[] {
  const n = b.readInt16BE(start);
  const out: string[] = [];
  let i = start + 2;
  for (let k = 0; k < n; k++) {
    const z = b.indexOf(0, i);
    out.push(b.toString('utf8', i, z));
    i = z + 1 + 18; // table oid, column, type oid, size, modifier, format
  }
  return out;
}

/** A DataRow's values as text (null for NULL). */
function dataRow(b: Buffer, start: number): (string | null)[] {
  const n = b.readInt16BE(start);
  const out: (string | null)[] = [];
  let i = start + 2;
  for (let k = 0; k < n; k++) {
    const len = b.readInt32BE(i);
    i += 4;
    if (len < 0) out.push(null);
    else {
      out.push(b.toString('utf8', i, i + len));
      i += len;
    }
  }
  return out;
}

function errorFields(b: Buffer, start: number, end: number): ServerError {
  const f: Record<string, string> = {};
  let i = start;
  while (i < end && b[i] !== 0) {
    const z = b.indexOf(0, i + 1);
    f[String.fromCharCode(b[i]!)] = b.toString('utf8', i + 1, z);
    i = z + 1;
  }
  return { code: f.C ?? 'XX000', message: f.M ?? 'unknown error', severity: f.V ?? f.S, detail: f.D };
}

const hmac = (key: Buffer, text: string) => crypto.createHmac('sha256', key).update(text).digest();
const md5 = (x: string | Buffer) => crypto.createHash('md5').update(x).digest('hex');
const cstr = (s: string) => Buffer.from(`${s}\0`);
const int16 = (n: number) => {
  const b = Buffer.allocUnsafe(2);
  b.writeInt16BE(n);
  return b;
};
const int32 = (n: number) => {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n);
  return b;
};
function message(type: number, body: Buffer[]): Buffer {
  const len = body.reduce((n, b) => n + b.length, 0);
  const head = Buffer.allocUnsafe(5);
  head[0] = type;
  head.writeInt32BE(len + 4, 1);
  return Buffer.concat([head, ...body]);
}
/** A simple-protocol Query message. */
function queryMessage(text: string): Buffer {
  const n = Buffer.byteLength(text);
  const b = Buffer.allocUnsafe(6 + n);
  b[0] = 0x51;
  b.writeInt32BE(5 + n, 1);
  b.write(text, 5);
  b[5 + n] = 0;
  return b;
}
const constantQueries = new Map<number, Buffer>();
const STATUS: Record<number, Outcome['status']> = { 0x49: 'I', 0x54: 'T', 0x45: 'E' };

/** What does not change between runs of a statement: its Parse message and the head of its Bind (up to the values). */
interface Encoded {
  parse: Buffer;
  bindHead: Buffer;
}
const encodedUnnamed = new Map<number, Encoded>();
const encodedNamed = new Map<number, Encoded>();
function encoded(s: Statement, named: boolean): Encoded {
  const cache = named ? encodedNamed : encodedUnnamed;
  let e = cache.get(s.id);
  if (!e) {
    const name = named ? `prodhome_${s.id}` : '';
    // Bind: portal "", statement name, 0 parameter format codes (all text), the number of values.
    e = { parse: message(0x50, [cstr(name), cstr(s.text), int16(0)]), bindHead: Buffer.concat([cstr(''), cstr(name), int16(0), int16(s.arity)]) };
    cache.set(s.id, e);
  }
  return e;
}

/** [Parse,] Bind and what follows it (Execute, Sync) in one buffer: one allocation and one write per statement. */
function encodeBind(s: Statement, named: boolean, values: readonly Value[], parse: Buffer | undefined, tail: Buffer): Buffer {
  const { bindHead } = encoded(s, named);
  const texts: (string | null)[] = new Array(s.arity);
  const bindLength = bindSize(bindHead, s.arity, values, texts);
  const parseLength = parse ? parse.length : 0;
  const b = Buffer.allocUnsafe(parseLength + 1 + bindLength + tail.length);
  const o = writeBind(b, parse ? parse.copy(b, 0) : 0, bindHead, texts, bindLength);
  tail.copy(b, o);
  return b;
}

/** A Bind message's length field (all but its type byte); fills `texts` with the values as text. */
function bindSize(bindHead: Buffer, arity: number, values: readonly Value[], texts: (string | null)[]): number {
  let bindLength = 4 + bindHead.length + 2; // length, head, result format count
  for (let i = 0; i < arity; i++) {
    const t = valueText(values[i] ?? null);
    texts[i] = t;
    bindLength += 4 + (t === null ? 0 : Buffer.byteLength(t));
  }
  return bindLength;
}

/** Writes a Bind message at `o`; returns the offset after it. */
function writeBind(b: Buffer, o: number, bindHead: Buffer, texts: readonly (string | null)[], bindLength: number): number {
  b[o] = 0x42;
  b.writeInt32BE(bindLength, o + 1);
  o += 5 + bindHead.copy(b, o + 5);
  for (const t of texts) {
    if (t === null) {
      b.writeInt32BE(-1, o);
      o += 4;
    } else {
      const n = b.write(t, o + 4);
      b.writeInt32BE(n, o);
      o += 4 + n;
    }
  }
  b.writeInt16BE(0, o); // results in text
  return o + 2;
}
const EXECUTE = message(0x45, [cstr(''), int32(0)]);
const DESCRIBE_PORTAL = message(0x44, [Buffer.from('P'), cstr('')]);
const SYNC = message(0x53, []);
const EXECUTE_SYNC = Buffer.concat([EXECUTE, SYNC]);
const DESCRIBE_EXECUTE_SYNC = Buffer.concat([DESCRIBE_PORTAL, EXECUTE, SYNC]);
const TERMINATE = message(0x58, []);
