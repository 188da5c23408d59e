import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, readState } from '../src/lab/index.js';
import { processAlive } from '../src/runtime/index.js';
import { CLI, cli, portRange, tempLab, waitFor, type TempLab } from './helpers.js';

// One node at a time, as `docker stop subscriber2` did: the rest of the lab goes on.
describe('stop, start and restart one node', () => {
  let lab: TempLab;
  beforeAll(async () => {
    lab = tempLab(`lab: ctl
${portRange(57450)}nodes:
  pub: { role: publisher }
  sub: { role: subscriber }
schema:
  - sql: "create table if not exists t (id int primary key)"
publications:
  p: { node: pub, tables: { t: {} } }
subscriptions:
  s: { node: sub, publications: [p] }
`);
    await labUp(lab.config());
  });
  afterAll(() => lab.cleanup());

  const pidOf = (name: string) => {
    const n = readState(lab.config().stateDir)!.nodes[name]!;
    return n.runtime === 'local' ? n.pid : undefined;
  };

  it('stop NODE stops only that node, says what piles up meanwhile, and status shows it stopped (not died)', async () => {
    const subPid = pidOf('sub')!;
    const pubPid = pidOf('pub')!;
    const r = cli(['stop', 'sub'], { cwd: lab.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('sub: stopped');
    expect(r.stdout).toMatch(/s stops applying; pub keeps the WAL for its slot until sub is back/);
    expect(processAlive(subPid)).toBe(false);
    expect(processAlive(pubPid)).toBe(true);
    const status = cli(['status'], { cwd: lab.dir }).stdout;
    expect(status).toMatch(/^sub\s.*\bstopped\b/m);
    expect(status).toMatch(/^pub\s.*\brunning\b/m);
    // The agent sees a node stopped on purpose, not one that died.
    await new Promise((r) => setTimeout(r, 1500));
    expect(cli(['status'], { cwd: lab.dir }).stdout).not.toMatch(/died/);
  });

  it('start NODE brings it back, and replication catches up', async () => {
    const r = cli(['start', 'sub'], { cwd: lab.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('sub: started');
    expect(cli(['start', 'sub'], { cwd: lab.dir }).stdout).toContain('sub: already running');
    expect(cli(['psql', 'pub', '--', '-c', 'insert into t values (1)'], { cwd: lab.dir }).code).toBe(0);
    const v = await waitFor(() => {
      const out = cli(['verify', '--wait', '10s'], { cwd: lab.dir });
      return out.code === 0 ? out : undefined;
    }, 30_000, 'verify to match');
    expect(v.stdout).toMatch(/every row arrived/);
  });

  it('restart NODE gives it a new postmaster; an unknown or several nodes are named', async () => {
    const before = pidOf('pub')!;
    const r = cli(['restart', 'pub'], { cwd: lab.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('pub: restarted');
    expect(pidOf('pub')).not.toBe(before);
    const bad = cli(['stop', 'nosuch'], { cwd: lab.dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('there is no node "nosuch" in lab "ctl" (nodes: pub, sub)');
  });

  it('the agent keeps its ports across restarts (dashboard and /metrics URLs stay the same), when the config picks none', async () => {
    const ports = () => {
      const s = JSON.parse(cli(['status', '--json'], { cwd: lab.dir }).stdout) as { agent: { sampling?: { prometheus?: string } } };
      const dash = cli(['dashboard', '--print-url'], { cwd: lab.dir }).stdout.trim();
      return { metrics: s.agent.sampling?.prometheus, dashboard: new URL(dash).port };
    };
    const before = await waitFor(() => {
      const p = ports();
      return p.metrics && p.dashboard ? p : undefined;
    }, 15_000, 'the agent to serve');
    expect(cli(['down'], { cwd: lab.dir }).code).toBe(0);
    expect(cli(['up'], { cwd: lab.dir }).code).toBe(0);
    const after = await waitFor(() => {
      const p = ports();
      return p.metrics && p.dashboard ? p : undefined;
    }, 15_000, 'the new agent to serve');
    expect(after).toEqual(before);
  });

  it('killing the agent mid-load loses no replicated row (it carries no replication traffic); the next command starts it again', async () => {
    const status = () => JSON.parse(cli(['status', '--json'], { cwd: lab.dir }).stdout) as { agent: { running: boolean; pid?: number } };
    const agent = status().agent.pid!;
    expect(agent).toBeGreaterThan(0);
    fs.writeFileSync(path.join(lab.dir, 'ins.sql'), 'insert into t select coalesce(max(id), 0) + 1 from t;\n');
    const load = spawn(process.execPath, [CLI, 'load', 'custom', 'ins.sql', '--node', 'pub', '-c', '1', '-T', '4', '-R', '50'], { cwd: lab.dir, stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => load.on('exit', r));
    await new Promise((r) => setTimeout(r, 1500));
    process.kill(agent, 'SIGKILL');
    expect(await exited).toBe(0);
    expect(processAlive(agent)).toBe(false);
    const v = cli(['verify', '--wait', '20s'], { cwd: lab.dir });
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(v.stdout).toMatch(/every row arrived/);
    // verify found the agent dead: it started it again, and said so.
    expect(v.stderr).toMatch(/the lab's agent was not running; restarted it \(pid \d+\)/);
    const again = status().agent;
    expect(again.running).toBe(true);
    expect(again.pid).not.toBe(agent);
    expect(cli(['up'], { cwd: lab.dir }).code).toBe(0);
    expect(status().agent.pid).toBe(again.pid);
  });
});
