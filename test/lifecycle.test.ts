import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labDown, labStatus, labUp, nodeConnection, readSecrets, readState, stateFiles } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { processAlive } from '../src/runtime/index.js';
import { CLI, IS_ROOT, cli, portRange, processUid, tempLab, waitFor, type TempLab } from './helpers.js';

// Two real nodes through the project's own runtime: the whole lifecycle, in order.
const YAML = `lab: life
${portRange(56000)}nodes:
  publisher:
    role: publisher
    max_connections: 20
    work_mem: 8MB
    settings:
      log_min_duration_statement: 250
  subscriber1:
    role: subscriber
`;

describe('lab lifecycle on real servers', () => {
  let lab: TempLab;
  const pids: number[] = [];

  beforeAll(() => {
    lab = tempLab(YAML);
  });
  afterAll(async () => {
    await lab.cleanup();
  });

  it('up creates and starts every node, reachable over TCP with a password', async () => {
    const result = await labUp(lab.config());
    expect(result.nodes.map((n) => [n.name, n.action])).toEqual([
      ['publisher', 'created'],
      ['subscriber1', 'created'],
    ]);
    expect(result.changed).toBe(true);
    const secrets = readSecrets(lab.config().stateDir);
    const state = readState(lab.config().stateDir)!;
    for (const name of ['publisher', 'subscriber1']) {
      const node = state.nodes[name]!;
      if (node.runtime !== 'local') throw new Error('expected local');
      const settings = await withConnection(
        { host: '127.0.0.1', port: node.port, user: 'postgres', password: secrets.nodes[name]!.password, database: 'postgres' },
        (sql) => sql`select current_setting('listen_addresses') as listen, current_setting('shared_preload_libraries') as preload,
                             current_setting('max_connections') as max_connections, current_setting('work_mem') as work_mem`,
      );
      expect(settings[0]!.listen).toBe('127.0.0.1');
      expect(settings[0]!.preload).toContain('pg_stat_statements');
      if (name === 'publisher') expect([settings[0]!.max_connections, settings[0]!.work_mem]).toEqual(['20', '8MB']);
      pids.push(node.pid!);
    }
  });

  it('a wrong password is refused (scram-sha-256, no trust)', async () => {
    const state = readState(lab.config().stateDir)!;
    const node = state.nodes.publisher!;
    if (node.runtime !== 'local') throw new Error('expected local');
    await expect(
      withConnection({ host: '127.0.0.1', port: node.port, user: 'postgres', password: 'not-the-password', database: 'postgres' }, (sql) => sql`select 1`),
    ).rejects.toThrow(/password authentication failed/);
  });

  it('keeps the passwords in a 0600 secrets file and never in state.json or the output', () => {
    const stateDir = lab.config().stateDir;
    expect(fs.statSync(stateFiles(stateDir).secrets).mode & 0o777).toBe(0o600);
    const password = readSecrets(stateDir).nodes.publisher!.password;
    expect(password.length).toBeGreaterThanOrEqual(20);
    expect(fs.readFileSync(stateFiles(stateDir).state, 'utf8')).not.toContain(password);
    const status = cli(['status', '--json'], { cwd: lab.dir });
    expect(status.stdout).not.toContain(password);
  });

  it.runIf(IS_ROOT)('as root, the servers run as the unprivileged OS user', () => {
    const state = readState(lab.config().stateDir)!;
    expect(state.runAs?.name).toBe('prodhome');
    for (const pid of pids) {
      expect(processUid(pid)).toBe(state.runAs!.uid);
      expect(processUid(pid)).not.toBe(0);
    }
  });

  it('up a second time changes nothing and says so', async () => {
    const again = await labUp(lab.config());
    expect(again.changed).toBe(false);
    expect(again.nodes.every((n) => n.action === 'unchanged')).toBe(true);
    const r = cli(['up'], { cwd: lab.dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('already up; nothing changed');
    const state = readState(lab.config().stateDir)!;
    expect(Object.values(state.nodes).map((n) => (n.runtime === 'local' ? n.pid : 0))).toEqual(pids);
  });

  it('status shows every node with role, runtime, version, address, state, pid and data size', async () => {
    const status = await labStatus(lab.config());
    expect(status.agent.running).toBe(true);
    expect(status.nodes).toHaveLength(2);
    for (const n of status.nodes) {
      expect(n.condition).toBe('running');
      expect(n.runtime).toBe('local');
      expect(n.version).toMatch(/^\d+\.\d+/);
      expect(n.address).toMatch(/^127\.0\.0\.1:560\d\d$/);
      expect(n.dataBytes).toBeGreaterThan(10 * 1024 * 1024);
    }
    const table = cli(['status'], { cwd: lab.dir });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/NODE\s+ROLE\s+RUNTIME\s+VERSION\s+ADDRESS\s+STATE\s+PID\s+CAPS\s+DATA/);
    expect(table.stdout).toMatch(/publisher\s+publisher\s+local/);
  });

  it('a postmaster killed with SIGKILL is reported by the agent and restarted by up', async () => {
    const victim = pids[1]!;
    process.kill(victim, 'SIGKILL');
    await waitFor(() => !processAlive(victim), 5000, 'the postmaster to die');
    const agentLog = stateFiles(lab.config().stateDir).agentLog;
    await waitFor(() => fs.readFileSync(agentLog, 'utf8').includes('subscriber1: postmaster'), 10_000, 'the agent to log the death');
    expect(fs.readFileSync(agentLog, 'utf8')).toMatch(new RegExp(`subscriber1: postmaster \\(pid ${victim}\\) is gone — the node died`));
    const status = await waitFor(async () => {
      const s = await labStatus(lab.config());
      return s.nodes.find((n) => n.name === 'subscriber1')?.diedNoticedAt ? s : undefined;
    }, 10_000, 'status to show the agent saw it');
    expect(status.nodes.find((n) => n.name === 'subscriber1')!.condition).toBe('died');
    expect(status.nodes.find((n) => n.name === 'publisher')!.condition).toBe('running');

    const up = await labUp(lab.config());
    expect(up.nodes.find((n) => n.name === 'subscriber1')!.action).toBe('restarted (it had died)');
    expect(up.nodes.find((n) => n.name === 'publisher')!.action).toBe('unchanged');
    const after = await labStatus(lab.config());
    expect(after.nodes.every((n) => n.condition === 'running')).toBe(true);
    await waitFor(() => /subscriber1: died → running/.test(fs.readFileSync(agentLog, 'utf8')), 10_000, 'the agent to see it back');
  });

  it('a changed postmaster setting restarts just that node on up, naming the setting', async () => {
    fs.writeFileSync(lab.file, YAML.replace('max_connections: 20', 'max_connections: 30'));
    const up = await labUp(lab.config());
    expect(up.nodes.map((n) => n.action)).toEqual(['restarted (max_connections)', 'unchanged']);
    const r = cli(['psql', 'publisher', '--', '-Atc', 'show max_connections'], { cwd: lab.dir });
    expect(r.stdout.trim()).toBe('30');
  });

  it('down stops everything and keeps data; up brings it back', async () => {
    const r = cli(['psql', 'publisher', '--', '-Atc', 'create table kept(x int); insert into kept values (42)'], { cwd: lab.dir });
    expect(r.code).toBe(0);
    const running = Object.values(readState(lab.config().stateDir)!.nodes).map((n) => (n.runtime === 'local' ? n.pid! : 0));
    const down = await labDown(lab.config());
    expect(down.nodes.map((n) => n.result)).toEqual(['stopped', 'stopped']);
    expect(down.agentStopped).toBe(true);
    for (const pid of running) expect(processAlive(pid)).toBe(false);
    const status = await labStatus(lab.config());
    expect(status.nodes.map((n) => n.condition)).toEqual(['stopped', 'stopped']);
    expect(status.agent.running).toBe(false);

    const up = await labUp(lab.config());
    expect(up.nodes.map((n) => n.action)).toEqual(['started', 'started']);
    const row = cli(['psql', 'publisher', '--', '-Atc', 'select x from kept'], { cwd: lab.dir });
    expect(row.stdout.trim()).toBe('42');
  });

  it('env prints PG* exports that connect', () => {
    const r = cli(['env', 'subscriber1'], { cwd: lab.dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^export PGHOST=127\.0\.0\.1$/m);
    expect(r.stdout).toMatch(/^export PGPASSWORD=/m);
    const env: Record<string, string> = {};
    for (const m of r.stdout.matchAll(/^export (\w+)=(.*)$/gm)) env[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
    const state = readState(lab.config().stateDir)!.nodes.subscriber1!;
    expect(env.PGPORT).toBe(String(state.runtime === 'local' && state.port));
    expect(env.PGPASSWORD).toBe(readSecrets(lab.config().stateDir).nodes.subscriber1!.password);
  });

  it('logs prints the node log and the agent log', () => {
    const r = cli(['logs', 'publisher'], { cwd: lab.dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('database system is ready to accept connections');
    const agent = cli(['logs', 'agent'], { cwd: lab.dir });
    expect(agent.stdout).toContain('agent started');
    const unknown = cli(['logs', 'nosuch'], { cwd: lab.dir });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('there is no node "nosuch" in lab "life" (nodes: publisher, subscriber1)');
  });

  it('logs with no node merges every log, each line prefixed with its source; -n keeps the last lines of each', () => {
    const r = cli(['logs', '-n', '3'], { cwd: lab.dir });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    const sources = lines.map((l) => /^(\S+)\s*\| /.exec(l)?.[1]);
    expect(sources).toEqual(['publisher', 'publisher', 'publisher', 'subscriber1', 'subscriber1', 'subscriber1', 'agent', 'agent', 'agent']);
  });

  it('logs NODE -f follows the log (-f is --follow there; the config file is --file)', async () => {
    const child = spawn(process.execPath, [CLI, 'logs', 'publisher', '-f', '-n', '0', '--file', lab.file], { cwd: '/' });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    try {
      await new Promise((r) => setTimeout(r, 1000)); // let it reach the end of the file
      await withConnection(connectionOf(lab, 'publisher'), (sql) => sql`select pg_sleep(0.3) as marker_for_logs_follow`);
      await waitFor(() => out.includes('marker_for_logs_follow'), 10_000, 'the slow statement to be followed');
    } finally {
      child.kill();
    }
    expect(err).toBe('');
  });

  it('-f FILE works before and after the command, as compose users write it', () => {
    for (const args of [['-f', lab.file, 'status'], ['status', '-f', lab.file], ['status', '--file', lab.file]]) {
      const r = cli(args, { cwd: '/' });
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/publisher\s+publisher/);
    }
  });

  it('destroy needs --yes without a terminal, then leaves nothing: no process, no directory', async () => {
    const stateDir = lab.config().stateDir;
    const running = Object.values(readState(stateDir)!.nodes).map((n) => (n.runtime === 'local' ? n.pid! : 0));
    const refused = cli(['destroy'], { cwd: lab.dir });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('Pass --yes to confirm');
    expect(fs.existsSync(stateDir)).toBe(true);

    const r = cli(['destroy', '--yes'], { cwd: lab.dir });
    expect(r.code).toBe(0);
    for (const pid of running) expect(processAlive(pid)).toBe(false);
    expect(fs.existsSync(stateDir)).toBe(false);
    expect(fs.existsSync(`${lab.dir}/.prodhome`)).toBe(false);
    expect(fs.readdirSync(lab.dir)).toEqual(['prodhome.yaml']);
  });
});

function connectionOf(lab: TempLab, node: string) {
  return nodeConnection(lab.config(), node);
}

// `up` starts a new lab's agent before its nodes, so the agent's own start-up overlaps theirs.
describe('the agent of a new lab', () => {
  it('starts with up but waits for it: it serves once up is done, and a failed up stops it and leaves nothing', async () => {
    const lab = tempLab(`lab: early\n${portRange(60000)}nodes:\n  one: { role: standalone }\n`);
    try {
      const stateDir = lab.config().stateDir;
      const interrupt = new AbortController();
      let agent = 0;
      let statusWhileUp = false;
      await expect(
        labUp(
          lab.config(),
          (line) => {
            if (!line.includes('initdb') || agent) return;
            // The nodes are being made: the agent already runs. Held here (up blocked) until it has
            // started and a while longer, it must still be waiting: alive, and nothing served or sampled.
            agent = Number(fs.readFileSync(stateFiles(stateDir).agentPid, 'utf8'));
            const pause = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
            for (let i = 0; i < 600 && !readOr(stateFiles(stateDir).agentLog).includes('agent started'); i++) pause(50);
            pause(1500);
            statusWhileUp = processAlive(agent) && !fs.existsSync(stateFiles(stateDir).agentStatus);
            interrupt.abort();
          },
          interrupt.signal,
        ),
      ).rejects.toThrow(/interrupted/);
      expect(agent).toBeGreaterThan(0);
      expect(statusWhileUp).toBe(true);
      await waitFor(() => !processAlive(agent), 15_000, 'the agent of the failed up to stop');
      expect(fs.existsSync(stateDir)).toBe(false);

      const up = await labUp(lab.config());
      expect(up.agent.started).toBe(true);
      const status = await waitFor(() => fs.existsSync(stateFiles(stateDir).agentStatus) && JSON.parse(fs.readFileSync(stateFiles(stateDir).agentStatus, 'utf8')), 30_000, 'the agent to report');
      expect(status.pid).toBe(up.agent.pid);
    } finally {
      await lab.cleanup();
    }
  });
});

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
