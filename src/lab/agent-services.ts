/**
 * The agent as a small supervisor: it hosts services — the sampler, the HTTP server (dashboard
 * and point API) — each started, checked and stopped on its own. A service that cannot start,
 * or fails later, is logged and started again after a backoff (1 s, doubling to 30 s) while the
 * others go on; `prodhome status` shows each one's state. Adding a service is adding an object.
 */
export interface AgentService {
  readonly name: string;
  /** Starts the service; throws when it cannot (the supervisor retries). */
  start(): Promise<void>;
  /** Stops it; must not throw. */
  stop(): Promise<void>;
  /** Why a started service no longer works, or undefined while it does. */
  failure(): string | undefined;
}

export interface ServiceStatus {
  state: 'running' | 'failed' | 'off';
  since: string;
  restarts: number;
  error?: string;
  /** What the service reports of itself (an address). */
  detail?: string;
}

interface Supervised {
  service: AgentService;
  status: ServiceStatus;
  retryAt: number;
  backoffMs: number;
  running: boolean;
}

export class Supervisor {
  private readonly supervised: Supervised[];

  constructor(
    services: AgentService[],
    private readonly log: (line: string) => void,
  ) {
    const now = new Date().toISOString();
    this.supervised = services.map((service) => ({ service, status: { state: 'off', since: now, restarts: 0 }, retryAt: 0, backoffMs: 1000, running: false }));
  }

  /** Starts what is not running (when its backoff has passed) and restarts what failed. Never throws. */
  async check(now = Date.now()): Promise<void> {
    for (const s of this.supervised) {
      const failure = s.running ? s.service.failure() : undefined;
      if (failure) {
        this.log(`${s.service.name}: failed: ${failure}; restarting it in ${s.backoffMs / 1000} s`);
        await s.service.stop();
        s.running = false;
        s.status = { ...s.status, state: 'failed', since: new Date(now).toISOString(), error: failure };
        s.retryAt = now + s.backoffMs;
        s.backoffMs = Math.min(30_000, s.backoffMs * 2);
      }
      if (s.running || now < s.retryAt) continue;
      try {
        await s.service.start();
        s.running = true;
        const restarted = s.status.state === 'failed';
        s.status = { state: 'running', since: new Date().toISOString(), restarts: s.status.restarts + (restarted ? 1 : 0) };
        if (restarted) this.log(`${s.service.name}: running again`);
        s.backoffMs = 1000;
      } catch (e) {
        const error = (e as Error).message;
        if (s.status.error !== error) this.log(`${s.service.name}: cannot start: ${error}; trying again in ${s.backoffMs / 1000} s`);
        s.status = { ...s.status, state: 'failed', since: s.status.state === 'failed' ? s.status.since : new Date(now).toISOString(), error };
        s.retryAt = now + s.backoffMs;
        s.backoffMs = Math.min(30_000, s.backoffMs * 2);
      }
    }
  }

  status(): Record<string, ServiceStatus> {
    return Object.fromEntries(this.supervised.map((s) => [s.service.name, s.status]));
  }

  async stopAll(): Promise<void> {
    // The reverse of the order they were given: the HTTP server before the sampler it reads.
    for (const s of [...this.supervised].reverse()) {
      if (!s.running) continue;
      await s.service.stop();
      s.running = false;
      s.status = { ...s.status, state: 'off', since: new Date().toISOString() };
    }
  }
}
