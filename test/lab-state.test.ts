import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPid, readAgentStatus, readState } from '../src/lab/index.js';
import { processAlive } from '../src/runtime/index.js';
import { cli, portRange, tempLab, waitFor, type TempLab } from './helpers.js';

/**
 * A lab stays within reach of the commands that stop it when its config no longer names it
 * (broken, gone, lab: renamed); its agent comes back when a command finds it dead; its ports
 * stay put and `doctor` says when one moved; a reloadable setting is reloaded, not restarted.
 * One one-node lab, taken through each in turn.
 */
describe('operating a lab from its state: broken or renamed config, a dead agent, moved ports, reloads', () => {
  let lab: TempLab;
  const good = (name = 'old', extra = '') => `lab: ${name}\n${portRange(59800)}metrics: { store: false }\nnodes:\n  n1: { work_mem: 4MB, shared_buffers: 16MB${extra} }\n`;
  const stateDir = () => path.join(lab.dir, '.prodhome', 'old');
  const node = () => {
    const n = readState(stateDir())!.nodes.n1!;
    if (n.runtime !== 'local') throw new Error('n1 is local');
    return n;
  };
  const run = (...args: string[]) => cli(args, { cwd: lab.dir });
  const doctorCheck = (name: string) => (JSON.parse(run('doctor', '--json').stdout) as { check: string; result: string; detail: string }[]).find((c) => c.check === name);
  const hold = (port: number) =>
    new Promise<net.Server>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(server));
    });

  beforeAll(() => {
    lab = tempLab(good());
    const up = run('up');
    expect(up.code, up.stderr).toBe(0);
  }, 120_000);
  afterAll(async () => {
    if (fs.existsSync(stateDir())) {
      fs.writeFileSync(path.join(lab.dir, 'restore.yaml'), good());
      run('destroy', '--yes', '-f', 'restore.yaml');
    }
    await lab.cleanup();
  });

  it('a killed agent is restarted by the next command, which says so; down does not restart it', async () => {
    const first = await waitFor(() => agentPid(stateDir()), 10_000, 'the agent');
    process.kill(first, 'SIGKILL');
    await waitFor(() => !processAlive(first), 5000, 'the agent to die');
    const status = run('status');
    expect(status.code, status.stderr).toBe(0);
    const m = /the lab's agent was not running; restarted it \(pid (\d+)\)/.exec(status.stderr);
    expect(m, status.stderr).not.toBeNull();
    expect(Number(m![1])).not.toBe(first);
    expect(processAlive(Number(m![1]))).toBe(true);
    expect(agentPid(stateDir())).toBe(Number(m![1]));
    // A second command finds it running: nothing said.
    expect(run('status').stderr).not.toContain('restarted');

    process.kill(Number(m![1]), 'SIGKILL');
    await waitFor(() => !processAlive(Number(m![1])), 5000, 'the agent to die');
    const down = run('down');
    expect(down.code, down.stderr).toBe(0);
    expect(down.stderr).not.toContain('restarted');
    expect(agentPid(stateDir())).toBeUndefined();
    // A lab taken down keeps its agent down, whatever runs next.
    expect(run('status').stderr).not.toContain('restarted');
    expect(agentPid(stateDir())).toBeUndefined();
  });

  it("a node's port taken while the lab was down: up moves it, and doctor names the move and who holds the old port", async () => {
    const before = node().port;
    const squatter = await hold(before);
    try {
      const up = run('up');
      expect(up.code, up.stderr).toBe(0);
      expect(node().port).not.toBe(before);
      const check = doctorCheck('port moved: n1');
      expect(check?.result).toBe('WARN');
      expect(check?.detail).toContain(`${before} was held by`);
      expect(check?.detail).toContain(`(pid ${process.pid})`);
      expect(check?.detail).toContain(`uses ${node().port} since`);
      expect(check?.detail).toContain('still held by');
    } finally {
      await new Promise((r) => squatter.close(r));
    }
    // Its new port is its own from now on: a second up keeps it, and the move is still reported.
    const moved = node().port;
    expect(run('down').code).toBe(0);
    expect(run('up').code).toBe(0);
    expect(node().port).toBe(moved);
    expect(doctorCheck('port moved: n1')?.detail).toContain(`${before} is free now`);
  });

  it("the agent's /metrics port is kept across ups; taken, it moves, and doctor says so", async () => {
    const served = () => readAgentStatus(stateDir())?.sampling?.prometheus;
    const url = await waitFor(served, 15_000, 'the agent to serve /metrics');
    const port = Number(new URL(url).port);
    expect(readAgentStatus(stateDir())?.ports?.metrics).toBe(port);
    expect(run('down').code).toBe(0);
    const squatter = await hold(port);
    try {
      expect(run('up').code).toBe(0);
      const pid = agentPid(stateDir())!;
      const now = await waitFor(() => (readAgentStatus(stateDir())?.pid === pid ? served() : undefined), 15_000, 'the new agent to serve');
      expect(Number(new URL(now).port)).not.toBe(port);
      const check = doctorCheck('port moved: agent metrics');
      expect(check?.result).toBe('WARN');
      expect(check?.detail).toContain(`${port} was held by`);
      expect(check?.detail).toContain(`(pid ${process.pid})`);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });

  it('a changed work_mem is reloaded (same postmaster); a changed shared_buffers restarts the node; up says which', () => {
    const pid = node().pid;
    fs.writeFileSync(lab.file, good().replace('work_mem: 4MB', 'work_mem: 7MB'));
    const up = run('up');
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/^n1\s.*reloaded \(work_mem\)/m);
    expect(node().pid).toBe(pid);
    expect(processAlive(pid!)).toBe(true);
    expect(run('psql', 'n1', '--', '-Atc', 'show work_mem').stdout.trim()).toBe('7MB');

    fs.writeFileSync(lab.file, good().replace('work_mem: 4MB', 'work_mem: 7MB').replace('shared_buffers: 16MB', 'shared_buffers: 24MB'));
    const again = run('up');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^n1\s.*restarted \(shared_buffers\)/m);
    expect(node().pid).not.toBe(pid);
    expect(run('psql', 'n1', '--', '-Atc', 'show shared_buffers').stdout.trim()).toBe('24MB');
    fs.writeFileSync(lab.file, good());
    expect(run('up').code).toBe(0);
  });

  it('broken YAML: status acts on the running lab from its state and says why', () => {
    fs.writeFileSync(lab.file, 'lab: old\nnodes:\n  n1: [\n');
    const r = run('status');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/prodhome\.yaml is broken \(line \d+: .+\); acting on the running lab "old" from its state in .*\.prodhome\/old/);
    expect(r.stdout).toMatch(/^n1\s.*\brunning\b/m);
    // Other commands still refuse, naming the problem.
    expect(run('verify').code).toBe(2);
  });

  it('a schema error: down stops the lab from its state', () => {
    fs.writeFileSync(lab.file, 'lab: old\nnodes:\n  n1: { role: nope }\n');
    const pid = node().pid!;
    const r = run('down');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/prodhome\.yaml is broken \(line 3: nodes\.n1\.role: .*\); acting on the running lab "old"/);
    expect(r.stdout).toContain('n1: stopped');
    expect(processAlive(pid)).toBe(false);
  });

  it('the config gone (renamed): status acts on the lab it brought up', () => {
    fs.renameSync(lab.file, path.join(lab.dir, 'prodhome.yaml.bak'));
    const r = run('status');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${lab.file} is gone; acting on the stopped lab "old" from its state in ${stateDir()}`);
    expect(r.stdout).toMatch(/^n1\s.*\bstopped\b/m);
    fs.writeFileSync(lab.file, good());
  });

  it("another config's lab is never acted on: -f other.yaml destroys nothing of this lab", () => {
    expect(run('up').code).toBe(0);
    fs.writeFileSync(path.join(lab.dir, 'other.yaml'), good('other'));
    const r = run('destroy', '--yes', '-f', 'other.yaml');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('lab "other" does not exist here; nothing to delete');
    fs.writeFileSync(path.join(lab.dir, 'broken.yaml'), 'lab: [\n');
    expect(run('destroy', '--yes', '-f', 'broken.yaml').code).toBe(2);
    expect(processAlive(node().pid!)).toBe(true);
  });

  it('lab: renamed after up: destroy --yes destroys the running old lab and says which', () => {
    fs.writeFileSync(path.join(lab.dir, 'restore.yaml'), good());
    const pid = node().pid!;
    const agent = agentPid(stateDir());
    fs.writeFileSync(lab.file, good('renamed'));
    const r = run('destroy', '--yes');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/lab "renamed" \(prodhome\.yaml\) has not been brought up, but this file brought up lab "old" \(its lab: was renamed\?\); acting on that running lab/);
    expect(r.stdout).toContain('lab "old" destroyed');
    expect(processAlive(pid)).toBe(false);
    if (agent) expect(processAlive(agent)).toBe(false);
    expect(fs.existsSync(stateDir())).toBe(false);
    // Nothing of prodhome is left: the validated-config cache went with the last lab.
    expect(fs.existsSync(path.join(lab.dir, '.prodhome'))).toBe(false);
  });

  it('a config validated once is remembered beside the labs (0600) and an edit is validated afresh', () => {
    fs.writeFileSync(lab.file, good());
    fs.mkdirSync(path.join(lab.dir, '.prodhome'));
    try {
      expect(run('status').code).toBe(0);
      const cache = path.join(lab.dir, '.prodhome', 'config-cache.json');
      expect(fs.statSync(cache).mode & 0o777).toBe(0o600);
      expect(Object.keys(JSON.parse(fs.readFileSync(cache, 'utf8')) as object)).toEqual([lab.file]);
      fs.writeFileSync(lab.file, good().replace('work_mem: 4MB', 'work_mem: lots'));
      const r = run('status');
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('nodes.n1.work_mem');
    } finally {
      fs.rmSync(path.join(lab.dir, '.prodhome'), { recursive: true, force: true });
    }
  });
});

describe('a lab brought up with -f FILE, its file deleted', () => {
  let lab: TempLab;
  const other = `lab: other\n${portRange(59850)}metrics: { store: false }\nnodes:\n  n1: {}\n`;
  beforeAll(() => {
    lab = tempLab(other);
    fs.renameSync(lab.file, path.join(lab.dir, 'other.yaml'));
    const up = cli(['-f', 'other.yaml', 'up'], { cwd: lab.dir });
    expect(up.code, up.stderr).toBe(0);
  }, 120_000);
  afterAll(async () => {
    fs.writeFileSync(path.join(lab.dir, 'other.yaml'), other);
    cli(['-f', 'other.yaml', 'destroy', '--yes'], { cwd: lab.dir });
    await lab.cleanup();
  });

  it('is not what a bare status or destroy acts on (only `-f other.yaml` names it)', () => {
    const n1 = readState(path.join(lab.dir, '.prodhome', 'other'))!.nodes.n1!;
    fs.rmSync(path.join(lab.dir, 'other.yaml'));
    const status = cli(['status'], { cwd: lab.dir });
    expect(status.stderr).not.toContain('acting on');
    expect(status.stdout).toContain('lab "prodhome" has not been brought up here');
    const destroy = cli(['destroy', '--yes'], { cwd: lab.dir });
    expect(destroy.code, destroy.stderr).toBe(0);
    expect(destroy.stdout).toContain('lab "prodhome" does not exist here; nothing to delete');
    expect(n1.runtime === 'local' && processAlive(n1.pid!)).toBe(true);
    // Named by the missing file, it is found from its state.
    const named = cli(['-f', 'other.yaml', 'status'], { cwd: lab.dir });
    expect(named.code, named.stderr).toBe(0);
    expect(named.stderr).toContain('other.yaml does not exist; acting on the running lab "other" from its state in');
  });
});
