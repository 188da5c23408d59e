/**
 * Wake-ups to the microsecond for one load thread's clients (`\sleep 100 us`, -R arrivals).
 *
 * Node's timers count whole milliseconds, and its event loop waits for I/O with a millisecond
 * timeout at best. pgbench's thread computes its clients' next wake-up and waits for it and for
 * their sockets together (select/poll with a µs timeout). The same here, as near as Node allows:
 *   - the wake-ups are kept in one min-heap per thread, so only the earliest is ever waited for,
 *     however many clients sleep;
 *   - while it is more than COARSE_MS away, a plain timer waits (it may fire a little early or
 *     late; the remainder is then waited precisely);
 *   - in the last COARSE_MS: when no client of the thread has a query in flight (`idle()`), the
 *     thread blocks until the wake-up with Atomics.wait (µs precision, no CPU used: select with
 *     no socket); when some have, it polls their sockets (setImmediate) until the wake-up. That
 *     poll costs CPU — one thread's, at most COARSE_MS per wake-up, however many clients sleep —
 *     where pgbench's select costs none: Node cannot wait for sockets with a µs timeout.
 */

/** Beyond this, a setTimeout does the waiting (to within a millisecond or so). */
const COARSE_MS = 2;

interface Wake {
  at: number;
  resolve: () => void;
}

export class PreciseTimers {
  private heap: Wake[] = [];
  private timer?: NodeJS.Timeout;
  private timerAt = Infinity;
  private deciding = false;
  private readonly block = new Int32Array(new SharedArrayBuffer(4));

  /**
   * `clock` gives the time sleeps are measured in (epoch ms, fractional); `idle` says whether
   * nothing but these wake-ups is awaited (no query in flight), so blocking the thread costs no one.
   */
  constructor(
    private readonly clock: () => number,
    private readonly idle: () => boolean = () => false,
  ) {}

  /** Resolves at `at` (clock ms), or at once when that has passed. */
  until(at: number): Promise<void> {
    if (at <= this.clock()) return Promise.resolve();
    return new Promise((resolve) => {
      push(this.heap, { at, resolve });
      if (this.heap[0]!.at === at) this.schedule();
    });
  }

  /** How many wake-ups are pending. */
  get pending(): number {
    return this.heap.length;
  }

  /** Resolves every pending wait now (a run being stopped). */
  wakeAll(): void {
    const all = this.heap;
    this.heap = [];
    this.cancelTimer();
    for (const w of all) w.resolve();
  }

  /** Wakes every pending wait and drops the timer. */
  close(): void {
    this.wakeAll();
  }

  /** Looks again once this turn of the event loop is over: the clients that run now may send queries first. */
  private schedule(): void {
    if (this.deciding) return;
    this.deciding = true;
    setImmediate(this.decide);
  }

  private readonly decide = (): void => {
    this.deciding = false;
    if (!this.heap.length) return this.cancelTimer();
    const at = this.heap[0]!.at;
    const left = at - this.clock();
    if (left > COARSE_MS) {
      // Far off: a timer, aimed a little early, brings us back here for the precise part.
      if (this.timerAt !== at) {
        this.cancelTimer();
        this.timerAt = at;
        this.timer = setTimeout(this.wake, left - COARSE_MS / 2);
      }
      return;
    }
    this.cancelTimer();
    if (left > 0) {
      // Nothing else to wait for: block here, to the µs (what select with no socket does).
      if (this.idle()) Atomics.wait(this.block, 0, 0, left);
      // Others await replies: poll their sockets until the wake-up. Blocking in slices instead
      // was measured 3x worse on a loaded machine: every slice gives the CPU away and waits to get it back.
      else return this.schedule();
    }
    this.fire();
  };

  private readonly wake = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    this.decide();
  };

  /** Resolves the waits that are due, then looks at the next. */
  private fire(): void {
    const t = this.clock();
    while (this.heap.length && this.heap[0]!.at <= t) pop(this.heap)!.resolve();
    if (this.heap.length) this.schedule();
  }

  private cancelTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }
}

// A binary min-heap on `at`.
function push(h: Wake[], w: Wake): void {
  let i = h.push(w) - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (h[p]!.at <= w.at) break;
    h[i] = h[p]!;
    i = p;
  }
  h[i] = w;
}

function pop(h: Wake[]): Wake | undefined {
  const top = h[0];
  const last = h.pop();
  if (h.length && last) {
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const c = l + 1 < h.length && h[l + 1]!.at < h[l]!.at ? l + 1 : l;
      if (h[c]!.at >= last.at) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
  return top;
}
