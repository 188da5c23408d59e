import fs from 'node:fs';
import { ProdhomeError, messageOf } from '../errors.js';
import { SinkLedger } from './ledger.js';
import { encodePoints, type Precision } from './line-protocol.js';
import type { Point } from './point.js';
import type { Sink, SinkStats } from './types.js';

export interface FileSinkOptions {
  precision?: Precision;
  /** Where `-` writes; process.stdout unless a test gives another stream. */
  stdout?: NodeJS.WritableStream;
  warn?: (message: string) => void;
}

/**
 * Line protocol appended to a file, or written to stdout for `-`: for piping into another tool
 * or keeping a lab's samples next to its logs. Each write goes straight through (no batching):
 * the OS buffers it, and a file sink has nothing to retry.
 */
export class FileSink implements Sink {
  readonly name: string;
  private handle?: fs.promises.FileHandle;
  private closed = false;
  private readonly ledger = new SinkLedger();

  constructor(
    private readonly path: string,
    private readonly options: FileSinkOptions = {},
  ) {
    this.name = path === '-' ? 'file:-' : `file://${path}`;
  }

  async open(): Promise<void> {
    if (this.path === '-' || this.handle) return;
    // The agent often runs as root and the file may sit in a shared directory: never append
    // through a link (O_NOFOLLOW), never to a FIFO or device (O_NONBLOCK, then fstat).
    const { O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(this.path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0o644);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ELOOP' ? 'it is a symbolic link, and a sink never writes through one' : code === 'ENXIO' ? 'it is not a regular file' : messageOf(e);
      throw new ProdhomeError('USAGE', `${this.name}: cannot open the file for appending: ${why}`, {
        hint: 'Give a regular file (not a link) in a directory that exists and that you can write, or file:- for stdout.',
        cause: e,
      });
    }
    if (!(await handle.stat()).isFile()) {
      await handle.close();
      throw new ProdhomeError('USAGE', `${this.name}: cannot open the file for appending: it is not a regular file`, {
        hint: 'Give a regular file (not a link, FIFO or device), or file:- for stdout.',
      });
    }
    this.handle = handle;
  }

  /** Nothing is buffered: a point is written, or refused (it cannot be encoded, the write failed). */
  get stats(): SinkStats {
    return this.ledger.stats(0);
  }

  async write(points: Point[]): Promise<void> {
    if (this.closed) throw new Error(`${this.name}: write after close`);
    let invalid = 0;
    const lines = encodePoints(points, this.options.precision ?? 'ms', (e) => {
      invalid++;
      this.ledger.offer(1);
      this.ledger.rejected(1, 'invalid_point', e.message);
      this.options.warn?.(`${this.name}: ${e.message}`);
    });
    if (lines.length === 0) return;
    this.ledger.offer(lines.length);
    const text = lines.join('');
    try {
      if (this.path === '-') await writeStream(this.options.stdout ?? process.stdout, text);
      else {
        await this.open();
        await this.handle?.appendFile(text);
      }
    } catch (e) {
      this.ledger.rejected(lines.length, 'write_error', messageOf(e));
      throw e;
    }
    this.ledger.wrote(lines.length, invalid === 0);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.handle?.close();
    this.handle = undefined;
  }
}

function writeStream(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => stream.write(text, (e) => (e ? reject(e) : resolve())));
}
