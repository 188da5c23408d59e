import { messageOf } from '../errors.js';
import type { Point } from './point.js';
import type { Sink } from './types.js';

export interface PointBusOptions {
  /** The queue's bound in points; past it the oldest queued points are dropped, counted. */
  maxQueued?: number;
  /** Told when a sink's write fails and when points start being dropped. */
  warn?: (message: string) => void;
}

/**
 * The one road points take to the sinks: producers publish (the sampler's samples, the points
 * a load run hands the agent) into one bounded queue, and the bus writes what is queued to
 * every sink — all sinks at once, each one write at a time as the Sink contract wants. Publishing
 * never waits for a sink, so a slow store never holds up sampling: points queue meanwhile, merged
 * into one batch per write, and past `maxQueued` the oldest are dropped and counted. A sink whose
 * write fails is warned about and keeps getting the next batches.
 */
export class PointBus {
  /** Points dropped because the queue was full. */
  dropped = 0;
  private queue: Point[][] = [];
  private queuedPoints = 0;
  private draining?: Promise<void>;
  private closed = false;
  private readonly maxQueued: number;
  private readonly warn: (message: string) => void;

  constructor(
    readonly sinks: readonly Sink[],
    options: PointBusOptions = {},
  ) {
    this.maxQueued = options.maxQueued ?? 100_000;
    this.warn = options.warn ?? (() => {});
  }

  /** Queues the points for every sink; returns at once (the writes happen after). */
  publish(points: Point[]): void {
    if (this.closed) throw new Error('the point bus is closed');
    if (points.length === 0 || this.sinks.length === 0) return;
    this.queue.push(points);
    this.queuedPoints += points.length;
    if (this.queuedPoints > this.maxQueued) this.dropOldest(this.queuedPoints - this.maxQueued);
    this.draining ??= this.drain();
  }

  /** Points waiting for the sinks. */
  get queued(): number {
    return this.queuedPoints;
  }

  /** Resolves once every point published so far has been handed to every sink. */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  /** Flushes, then closes every sink (a sink that fails to close is warned about). */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    for (const sink of this.sinks) await sink.close().catch((e: unknown) => this.warn(`${sink.name}: closing: ${messageOf(e)}`));
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length) {
        const batch = this.queue.length === 1 ? this.queue[0]! : this.queue.flat();
        this.queue = [];
        this.queuedPoints = 0;
        await Promise.all(this.sinks.map((sink) => sink.write(batch).catch((e: unknown) => this.warn(`${sink.name}: ${messageOf(e)}`))));
      }
    } finally {
      this.draining = undefined;
    }
  }

  private dropOldest(n: number): void {
    if (this.dropped === 0) this.warn(`the queue for the sinks is full (${this.maxQueued} points): dropping the oldest until the sinks catch up`);
    this.dropped += n;
    this.queuedPoints -= n;
    while (n > 0) {
      const first = this.queue[0]!;
      if (first.length <= n) {
        this.queue.shift();
        n -= first.length;
      } else {
        this.queue[0] = first.slice(n);
        n = 0;
      }
    }
  }
}
