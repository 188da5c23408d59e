import type { SinkStats } from './types.js';

/**
 * The books every sink keeps on its points (SinkStats): one place that counts them and decides
 * whether the sink is healthy, so every sink reports the same way. A sink calls `offer` for what
 * it takes in and exactly one of `wrote`, `dropped` or `rejected` for each point it lets go;
 * `retry` counts an attempt that failed but keeps the points.
 */
export class SinkLedger {
  offered = 0;
  written = 0;
  retries = 0;
  private readonly droppedBy = new Map<string, number>();
  private readonly rejectedBy = new Map<string, number>();
  private healthy = true;
  private since = new Date().toISOString();
  private lastError?: string;
  private lastErrorAt?: string;

  offer(n: number): void {
    this.offered += n;
  }

  /** Points the store accepted; a write that went through whole makes the sink healthy again. */
  wrote(n: number, whole = true): void {
    this.written += n;
    if (whole && !this.healthy) this.setHealthy(true);
  }

  retry(problem: string): void {
    this.retries++;
    this.failed(problem);
  }

  dropped(n: number, reason: string): void {
    if (n > 0) this.droppedBy.set(reason, (this.droppedBy.get(reason) ?? 0) + n);
  }

  rejected(n: number, reason: string, problem: string): void {
    if (n <= 0) return;
    this.rejectedBy.set(reason, (this.rejectedBy.get(reason) ?? 0) + n);
    this.failed(problem);
  }

  /** A failure that is neither a retry nor a refusal of points (a database could not be created…). */
  failed(problem: string): void {
    this.lastError = problem;
    this.lastErrorAt = new Date().toISOString();
    if (this.healthy) this.setHealthy(false);
  }

  stats(buffered: number): SinkStats {
    const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    return {
      offered: this.offered,
      written: this.written,
      buffered,
      dropped: sum(this.droppedBy),
      droppedBy: Object.fromEntries(this.droppedBy),
      rejected: sum(this.rejectedBy),
      rejectedBy: Object.fromEntries(this.rejectedBy),
      retries: this.retries,
      healthy: this.healthy,
      since: this.since,
      ...(this.lastError !== undefined ? { lastError: this.lastError, lastErrorAt: this.lastErrorAt } : {}),
    };
  }

  private setHealthy(healthy: boolean): void {
    this.healthy = healthy;
    this.since = new Date().toISOString();
  }
}
