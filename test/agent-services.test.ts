import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { Supervisor, type AgentService } from '../src/lab/agent-services.js';
import { cli, portRange, tempLab, waitFor } from './helpers.js';

/** A service whose start and health the test decides (the supervisor's logic, on its own). */
function service(name: string) {
  const s = { name, startsToFail: 0, broken: undefined as string | undefined, started: 0, stopped: 0 };
  const svc: AgentService = {
    name,
    start: async () => {
      if (s.startsToFail > 0) {
        s.startsToFail--;
        throw new Error(`${name} cannot start`);
      }
      s.started++;
      s.broken = undefined;
    },
    stop: async () => void s.stopped++,
    failure: () => s.broken,
  };
  return { s, svc };
}

describe('the agent supervises its services', () => {
  it('starts each on its own, retries one that cannot start with a growing backoff, and restarts one that fails, the others untouched', async () => {
    const a = service('sampler');
    const b = service('http');
    b.s.startsToFail = 2;
    const lines: string[] = [];
    const sup = new Supervisor([a.svc, b.svc], (l) => lines.push(l));
    let now = 1_000_000;
    await sup.check(now);
    expect(sup.status().sampler!.state).toBe('running');
    expect(sup.status().http).toMatchObject({ state: 'failed', error: 'http cannot start' });
    await sup.check((now += 500)); // within the 1 s backoff: not tried
    expect(b.s.started).toBe(0);
    await sup.check((now += 600)); // tried, fails again: backoff doubles to 2 s
    await sup.check((now += 1500));
    expect(b.s.started).toBe(0);
    await sup.check((now += 600));
    expect(sup.status().http).toMatchObject({ state: 'running', restarts: 1 });
    a.s.broken = 'the loop threw';
    await sup.check((now += 100));
    expect(sup.status().sampler).toMatchObject({ state: 'failed', error: 'the loop threw' });
    expect(sup.status().http!.state).toBe('running');
    expect(a.s.stopped).toBe(1);
    await sup.check((now += 1100));
    expect(sup.status().sampler).toMatchObject({ state: 'running', restarts: 1 });
    expect(a.s.started).toBe(2);
    expect(lines.some((l) => l.includes('sampler: failed: the loop threw'))).toBe(true);
    await sup.stopAll();
    expect(sup.status().sampler!.state).toBe('off');
  });

  describe('on a real lab', () => {
    const blocker = net.createServer();
    let port = 0;
    const lab = tempLab(`lab: svc\n${portRange(57400)}nodes:\n  one: { role: standalone }\n`);
    afterAll(async () => {
      await lab.cleanup();
      blocker.close();
    });

    it('a dashboard port taken by another program: the sampler runs, http is FAILED in status, and runs once the port is free', async () => {
      await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
      port = (blocker.address() as net.AddressInfo).port;
      const fs = await import('node:fs');
      fs.appendFileSync(lab.file, `dashboard: { port: ${port} }\n`);
      const up = cli(['up'], { cwd: lab.dir });
      expect(up.code, up.stderr).toBe(0);
      const failed = await waitFor(() => {
        const s = JSON.parse(cli(['status', '--json'], { cwd: lab.dir }).stdout) as { agent: { services?: Record<string, { state: string; error?: string }> } };
        return s.agent.services?.http?.state === 'failed' && s.agent.services.sampler?.state === 'running' ? s.agent.services : undefined;
      }, 15_000, 'http failed beside a running sampler');
      expect(failed.http!.error).toMatch(/EADDRINUSE|in use/);
      expect(cli(['status'], { cwd: lab.dir }).stdout).toMatch(/http\s+failed/);
      await new Promise<void>((r) => blocker.close(() => r()));
      await waitFor(() => {
        const s = JSON.parse(cli(['status', '--json'], { cwd: lab.dir }).stdout) as { agent: { services?: Record<string, { state: string; restarts: number }> } };
        return s.agent.services?.http?.state === 'running';
      }, 45_000, 'http to start once its port is free');
      const r = await fetch(`http://127.0.0.1:${port}/api/health`);
      expect(r.status).toBe(401); // it is the dashboard: it wants its token
    }, 120_000);
  });
});
