import { describe, expect, it } from 'vitest';
import { PointBus, type Point, type Sink, type SinkStats } from '../src/sinks/index.js';

/*
 * The point bus against sinks made here: a sink that records what it is written and can be held
 * (a store that is slow) or made to fail. The real sinks are exercised through the agent in
 * agent-sampling and sinks-health; here the bus's own contract is what is tested, and holding a
 * real store at will is not possible.
 */

class RecordingSink implements Sink {
  readonly writes: Point[][] = [];
  closed = false;
  inWrite = 0;
  overlapped = false;
  failNext?: string;
  private gate?: Promise<void>;
  private release?: () => void;

  constructor(readonly name: string) {}

  get stats(): SinkStats {
    const n = this.writes.flat().length;
    return { offered: n, written: n, buffered: 0, dropped: 0, droppedBy: {}, rejected: 0, rejectedBy: {}, retries: 0, healthy: true, since: '' };
  }

  hold(): void {
    this.gate = new Promise((resolve) => (this.release = resolve));
  }

  letGo(): void {
    this.release?.();
    this.gate = undefined;
  }

  async write(points: Point[]): Promise<void> {
    if (this.inWrite) this.overlapped = true;
    this.inWrite++;
    try {
      await this.gate;
      if (this.failNext) {
        const why = this.failNext;
        this.failNext = undefined;
        throw new Error(why);
      }
      this.writes.push(points);
    } finally {
      this.inWrite--;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const pts = (from: number, n: number): Point[] => Array.from({ length: n }, (_, i) => ({ measurement: 'm', tags: {}, fields: { i: from + i }, time: from + i }));
const values = (s: RecordingSink) => s.writes.flat().map((p) => p.fields.i);

describe('the point bus', () => {
  it('hands every published point to every sink, in order', async () => {
    const a = new RecordingSink('a');
    const b = new RecordingSink('b');
    const bus = new PointBus([a, b]);
    bus.publish(pts(0, 3));
    bus.publish(pts(3, 2));
    await bus.flush();
    expect(values(a)).toEqual([0, 1, 2, 3, 4]);
    expect(values(b)).toEqual([0, 1, 2, 3, 4]);
  });

  it('never waits for a slow sink: publishing returns at once, what queued goes out as one write, one write at a time', async () => {
    const slow = new RecordingSink('slow');
    const fast = new RecordingSink('fast');
    const bus = new PointBus([slow, fast]);
    slow.hold();
    bus.publish(pts(0, 1)); // in the slow sink's write, held
    for (let i = 1; i < 4; i++) bus.publish(pts(i, 1)); // queued meanwhile
    expect(bus.queued).toBe(3);
    expect(slow.writes).toEqual([]);
    slow.letGo();
    await bus.flush();
    expect(slow.writes.map((w) => w.length)).toEqual([1, 3]);
    expect(values(slow)).toEqual([0, 1, 2, 3]);
    expect(values(fast)).toEqual([0, 1, 2, 3]);
    expect(slow.overlapped).toBe(false);
    expect(bus.queued).toBe(0);
  });

  it('is bounded: past maxQueued the oldest queued points are dropped, counted, with one warning', async () => {
    const slow = new RecordingSink('slow');
    const warnings: string[] = [];
    const bus = new PointBus([slow], { maxQueued: 5, warn: (w) => warnings.push(w) });
    slow.hold();
    bus.publish(pts(0, 1)); // being written
    bus.publish(pts(1, 4));
    bus.publish(pts(5, 3)); // 7 queued: the 2 oldest go
    bus.publish(pts(8, 1)); // 6 queued: 1 more
    expect(bus.queued).toBe(5);
    expect(bus.dropped).toBe(3);
    slow.letGo();
    await bus.flush();
    expect(values(slow)).toEqual([0, 4, 5, 6, 7, 8]);
    expect(warnings).toEqual([expect.stringMatching(/queue for the sinks is full \(5 points\)/)]);
  });

  it('a sink whose write fails is warned about; the others get the points, and it gets the next ones', async () => {
    const bad = new RecordingSink('bad');
    const good = new RecordingSink('good');
    const warnings: string[] = [];
    const bus = new PointBus([bad, good], { warn: (w) => warnings.push(w) });
    bad.failNext = 'disk full';
    bus.publish(pts(0, 2));
    await bus.flush();
    bus.publish(pts(2, 1));
    await bus.flush();
    expect(warnings).toEqual(['bad: disk full']);
    expect(values(good)).toEqual([0, 1, 2]);
    expect(values(bad)).toEqual([2]);
  });

  it('close delivers what is queued, then closes every sink; publishing after it is an error', async () => {
    const a = new RecordingSink('a');
    const bus = new PointBus([a]);
    a.hold();
    bus.publish(pts(0, 1));
    bus.publish(pts(1, 1));
    const closing = bus.close();
    a.letGo();
    await closing;
    expect(values(a)).toEqual([0, 1]);
    expect(a.closed).toBe(true);
    expect(() => bus.publish(pts(2, 1))).toThrow(/closed/);
  });
});
