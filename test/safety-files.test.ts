import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { labDown, labUp, readSecrets, readState, stateFiles } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { processAlive, processArgv } from '../src/runtime/index.js';
import { processStartTime, stopPostmaster } from '../src/runtime/postmaster.js';
import { FileSink, type Point } from '../src/sinks/index.js';
import { CLI, IN_CI, IS_ROOT, cli, portRange, tempLab, waitFor, type TempLab } from './helpers.js';

/**
 * Where root meets files and pids others can touch (issue 10, items 4, 5, 7, 10, 11). Each test
 * replays an attack against real servers: the server's OS user (any database superuser, through
 * COPY … TO) owns a node's directories and postmaster.pid, so it can plant links and pids there.
 * The attacks only mean something when prodhome runs as root and servers as another user.
 */

const ROOT_REASON = 'these attacks need prodhome to run as root (servers as the unprivileged user "prodhome")';
if (!IS_ROOT) {
  if (IN_CI) throw new Error(`CI must run this file as root: ${ROOT_REASON}`);
  console.warn(`SKIPPING the real-server attacks in safety-files.test.ts: ${ROOT_REASON}`);
}

const YAML = `lab: safe
${portRange(58200)}nodes:
  solo:
    role: standalone
    settings:
      cluster_name: "o'k \\\\ x"
`;

/** A root-owned file with known content and mode, in a root-only directory. */
function rootFile(dir: string, name: string): { file: string; before: () => string } {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `root's own ${name}\n`, { mode: 0o600 });
  const snapshot = () => {
    const st = fs.statSync(file);
    return `${st.uid}:${st.gid}:${(st.mode & 0o7777).toString(8)}:${fs.readFileSync(file, 'utf8')}`;
  };
  return { file, before: snapshot };
}

/** As the server's OS user (what a database superuser can do with COPY … TO PROGRAM). */
function asServerUser(args: string[]): void {
  const r = spawnSync('runuser', ['-u', 'prodhome', '--', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`runuser ${args.join(' ')}: ${r.stderr}`);
}

describe('config: settings prodhome owns are refused, values cannot inject lines', () => {
  const refused = (settings: string) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-test-'));
    const file = path.join(dir, 'prodhome.yaml');
    fs.writeFileSync(file, `lab: s\nnodes:\n  solo:\n    settings:\n${settings}`);
    try {
      loadConfig({ file });
    } catch (e) {
      return (e as Error).message;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    return 'accepted';
  };

  it("listen_addresses in settings: is refused at load, at its file:line, naming what prodhome does instead", () => {
    expect(refused("      listen_addresses: '*'\n")).toMatch(/prodhome\.yaml:5: nodes\.solo\.settings\.listen_addresses: .*prodhome owns it.*127\.0\.0\.1/);
  });

  it('port in settings: is refused, naming the config key to use (nodes.<node>.port)', () => {
    expect(refused('      port: 5555\n')).toMatch(/prodhome\.yaml:5: nodes\.solo\.settings\.port: .*use nodes\.solo\.port/);
  });

  it('socket, hba/ident, data dir, config file, include and ssl key paths in settings: are refused', () => {
    for (const key of ['unix_socket_directories', 'hba_file', 'ident_file', 'data_directory', 'config_file', 'include', 'include_dir', 'ssl_key_file', 'ssl_cert_file', 'password_encryption']) {
      expect(refused(`      ${key}: /tmp/x\n`), key).toMatch(new RegExp(`prodhome\\.yaml:5: nodes\\.solo\\.settings\\.${key}: .*prodhome owns it`));
    }
  });

  it('a newline (or any control character) in a setting value is refused: it could add a line to prodhome.conf', () => {
    expect(refused('      cluster_name: "x\\nlisten_addresses = \'*\'"\n')).toMatch(/prodhome\.yaml:5: nodes\.solo\.settings\.cluster_name: .*control character/);
    expect(refused('      cluster_name: "x\\ty"\n')).toMatch(/control character/);
  });
});

describe.runIf(IS_ROOT)('root meets files and pids the server user can touch (real servers)', () => {
  let lab: TempLab;
  let rootDir: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    lab = tempLab(YAML);
    rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-root-'));
    fs.chmodSync(rootDir, 0o700);
    await labUp(lab.config());
  }, 120_000);
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await lab.cleanup();
    fs.rmSync(rootDir, { recursive: true, force: true });
  }, 120_000);

  const node = () => {
    const n = readState(lab.config().stateDir)!.nodes.solo!;
    if (n.runtime !== 'local') throw new Error('expected a local node');
    return n;
  };
  const superuser = () => ({ host: '127.0.0.1', port: node().port, user: 'postgres', password: readSecrets(lab.config().stateDir).nodes.solo!.password, database: 'postgres' });

  it("a setting value with a quote and a backslash reaches the server exactly as written (quoted, escaped)", async () => {
    const rows = await withConnection(superuser(), (sql) => sql`select current_setting('cluster_name') as v`);
    expect(rows[0]!.v).toBe("o'k \\ x");
  });

  it('down never signals a pid planted in postmaster.pid (a root process ignoring signals), stops the real postmaster, and returns', async () => {
    const marks = path.join(rootDir, 'signals');
    fs.writeFileSync(marks, '');
    // A root-owned process that notes every signal it gets and ignores it.
    const victim = spawn('sh', ['-c', `trap 'echo INT >> ${marks}' INT; trap 'echo QUIT >> ${marks}' QUIT; trap 'echo TERM >> ${marks}' TERM; while :; do sleep 0.2; done`], {
      stdio: 'ignore',
    });
    children.push(victim);
    const realPid = node().pid!;
    expect(processAlive(realPid)).toBe(true);
    // The attack: a database superuser rewrites postmaster.pid (the server user owns it) with COPY … TO.
    const pidFile = path.join(node().dataDir, 'postmaster.pid');
    const lines = fs.readFileSync(pidFile, 'utf8').trimEnd().split('\n');
    lines[0] = String(victim.pid);
    await withConnection(superuser(), (sql) =>
      sql.unsafe(`copy (select unnest(array[${lines.map((l) => `'${l.replace(/'/g, "''")}'`).join(', ')}])) to '${pidFile}'`),
    );
    expect(fs.readFileSync(pidFile, 'utf8').split('\n')[0]).toBe(String(victim.pid));

    let timer: NodeJS.Timeout | undefined;
    const down = await Promise.race([
      labDown(lab.config()),
      new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), 60_000))),
    ]).finally(() => {
      clearTimeout(timer);
      // Checked once down returned (or hung): then the planted process goes, whatever happened.
      setTimeout(() => victim.kill('SIGKILL'), 100);
    });
    expect(down).not.toBe('hung');
    if (down === 'hung') return;
    expect(fs.readFileSync(marks, 'utf8')).toBe(''); // never signalled
    expect(processAlive(victim.pid!)).toBe(true);
    await waitFor(() => !processAlive(realPid), 10_000, 'the real postmaster to stop');
    const solo = down.nodes.find((n) => n.name === 'solo')!;
    expect(solo.result).toBe('stopped');
    expect(solo.note).toMatch(new RegExp(`postmaster\\.pid names pid ${victim.pid}.*not signalled`));
    expect(fs.existsSync(stateFiles(lab.config().stateDir).lock)).toBe(false);
  }, 90_000);

  it('postmaster.pid replaced by a FIFO (the server user can): status does not hang on it, down still stops the postmaster', async () => {
    await labUp(lab.config());
    const realPid = node().pid!;
    const pidFile = path.join(node().dataDir, 'postmaster.pid');
    asServerUser(['sh', '-c', `rm -f '${pidFile}' && mkfifo '${pidFile}'`]);
    const status = spawnSync(process.execPath, [CLI, 'status'], { cwd: lab.dir, encoding: 'utf8', timeout: 20_000 });
    // (Postgres itself would block on the FIFO when it updates the file at shutdown: take it away first.)
    fs.rmSync(pidFile, { force: true });
    expect(status.signal).toBeNull(); // not killed by the timeout
    expect(status.status).toBe(0);
    const down = await labDown(lab.config());
    expect(down.nodes.map((n) => n.result)).toEqual(['stopped']);
    await waitFor(() => !processAlive(realPid), 10_000, 'the real postmaster to stop');
  }, 90_000);

  it('down never signals a pid planted in agent.pid: only the process that is this lab\'s agent', async () => {
    const up = await labUp(lab.config());
    const marks = path.join(rootDir, 'agent-signals');
    fs.writeFileSync(marks, '');
    const victim = spawn('sh', ['-c', `trap 'echo TERM >> ${marks}' TERM; while :; do sleep 0.2; done`], { stdio: 'ignore' });
    children.push(victim);
    const f = stateFiles(lab.config().stateDir);
    fs.writeFileSync(f.agentPid, `${victim.pid}\n`);
    await labDown(lab.config());
    await new Promise((resolve) => setTimeout(resolve, 500)); // a trap runs between the loop's sleeps
    expect(fs.readFileSync(marks, 'utf8')).toBe('');
    expect(processAlive(victim.pid!)).toBe(true);
    victim.kill('SIGKILL');
    // The real agent, not named by agent.pid any more, is still this lab's: stop it by its own pid.
    fs.writeFileSync(f.agentPid, `${up.agent.pid}\n`);
    await labDown(lab.config());
    await waitFor(() => !processAlive(up.agent.pid), 10_000, 'the agent to stop');
  }, 120_000);

  it('logs never prints a file the server user linked in place of a node log (root-only secrets stay unread)', async () => {
    const n = node();
    const secret = path.join(rootDir, 'root-only-secret');
    fs.writeFileSync(secret, 'TOP-SECRET-LINE\n', { mode: 0o600 });
    const saved = `${n.logFile}.saved`;
    fs.renameSync(n.logFile, saved);
    try {
      asServerUser(['ln', '-sfn', secret, n.logFile]);
      const one = cli(['logs', 'solo'], { cwd: lab.dir });
      const all = cli(['logs'], { cwd: lab.dir });
      expect(one.stdout + all.stdout).not.toContain('TOP-SECRET-LINE');
      expect(one.code).toBe(2);
      expect(one.stderr).toMatch(/link/);
    } finally {
      fs.rmSync(n.logFile, { force: true });
      fs.renameSync(saved, n.logFile);
    }
  });

  it('up refuses links the server user planted at postgres.log, data/pg_hba.conf and data/prodhome.conf: root files neither changed nor chowned', async () => {
    await labDown(lab.config());
    const n = node();
    const targets = ['log', 'hba', 'conf'].map((t) => rootFile(rootDir, `target-${t}`));
    const links = [n.logFile, path.join(n.dataDir, 'pg_hba.conf'), path.join(n.dataDir, 'prodhome.conf')];
    const before = targets.map((t) => t.before());
    links.forEach((link, i) => asServerUser(['ln', '-sfn', targets[i]!.file, link]));

    const r = cli(['up'], { cwd: lab.dir });
    expect(targets.map((t) => t.before())).toEqual(before);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is a symbolic link .*prodhome never writes/);

    // Once the links are gone, up works again.
    for (const link of links) fs.rmSync(link);
    const again = cli(['up'], { cwd: lab.dir });
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    expect(fs.lstatSync(n.logFile).isFile()).toBe(true);
  }, 120_000);

  it('agent.pid and agent.json planted as links in the state dir are replaced, never written through', async () => {
    await labDown(lab.config());
    const f = stateFiles(lab.config().stateDir);
    const targets = ['pid', 'json'].map((t) => rootFile(rootDir, `target-agent-${t}`));
    const links = [f.agentPid, path.join(lab.config().stateDir, 'agent.json')];
    const before = targets.map((t) => t.before());
    links.forEach((link, i) => {
      fs.rmSync(link, { force: true });
      fs.symlinkSync(targets[i]!.file, link);
    });

    const up = await labUp(lab.config());
    expect(targets.map((t) => t.before())).toEqual(before);
    for (const link of links) expect(fs.lstatSync(link).isFile()).toBe(true);
    expect(fs.readFileSync(f.agentPid, 'utf8').trim()).toBe(String(up.agent.pid));
  }, 120_000);

  it('agent.log planted as a link: up refuses it and leaves the target alone', async () => {
    await labDown(lab.config());
    const f = stateFiles(lab.config().stateDir);
    const target = rootFile(rootDir, 'target-agent-log');
    const before = target.before();
    fs.rmSync(f.agentLog, { force: true });
    fs.symlinkSync(target.file, f.agentLog);
    const r = cli(['up'], { cwd: lab.dir });
    await new Promise((resolve) => setTimeout(resolve, 1000)); // an agent that did start has logged by now
    expect(target.before()).toBe(before);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${f.agentLog} is a symbolic link`);
    fs.rmSync(f.agentLog);
  }, 120_000);

  it('destroy refuses a state.json whose nodeDir lies outside the lab, and deletes nothing', async () => {
    await labDown(lab.config());
    const stateFile = stateFiles(lab.config().stateDir).state;
    const good = fs.readFileSync(stateFile, 'utf8');
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-outside-'));
    fs.writeFileSync(path.join(outside, 'keep.txt'), 'keep me\n');
    const state = JSON.parse(good) as { nodes: Record<string, { nodeDir: string; dataDir: string; logFile: string }> };
    state.nodes.solo = { ...state.nodes.solo!, nodeDir: outside, dataDir: path.join(outside, 'data'), logFile: path.join(outside, 'postgres.log') };
    fs.writeFileSync(stateFile, JSON.stringify(state));
    try {
      const r = cli(['destroy', '--yes'], { cwd: lab.dir });
      expect(fs.existsSync(path.join(outside, 'keep.txt'))).toBe(true);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`solo: state.json names ${outside} as its directory, which is not`);
      expect(fs.existsSync(lab.config().stateDir)).toBe(true);
    } finally {
      fs.mkdirSync(path.dirname(stateFile), { recursive: true });
      fs.writeFileSync(stateFile, good);
      fs.rmSync(outside, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('destroy never follows a link out of the lab', () => {
  const setup = (linkAt: '.prodhome' | '.prodhome/safe') => {
    const lab = tempLab(`lab: safe\n${portRange(58250)}nodes:\n  solo: {}\n`);
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-outside-'));
    const inside = linkAt === '.prodhome' ? path.join(outside, 'safe') : outside;
    fs.mkdirSync(inside, { recursive: true });
    fs.writeFileSync(path.join(inside, 'keep.txt'), 'keep me\n');
    if (linkAt === '.prodhome/safe') fs.mkdirSync(path.join(lab.dir, '.prodhome'));
    fs.symlinkSync(outside, path.join(lab.dir, linkAt));
    return { lab, inside, outside };
  };

  it('.prodhome a link: destroy refuses, the link target keeps its files', () => {
    const { lab, inside, outside } = setup('.prodhome');
    try {
      const r = cli(['destroy', '--yes'], { cwd: lab.dir });
      expect(fs.existsSync(path.join(inside, 'keep.txt'))).toBe(true);
      expect(fs.readdirSync(inside)).toEqual(['keep.txt']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${path.join(lab.dir, '.prodhome')} is a symbolic link`);
    } finally {
      fs.rmSync(lab.dir, { recursive: true, force: true });
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });

  it('.prodhome/<lab> a link: destroy refuses, leaving no lock file and nothing deleted in the target', () => {
    const { lab, inside, outside } = setup('.prodhome/safe');
    try {
      const r = cli(['destroy', '--yes'], { cwd: lab.dir });
      expect(fs.existsSync(path.join(inside, 'keep.txt'))).toBe(true);
      expect(fs.readdirSync(inside)).toEqual(['keep.txt']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${path.join(lab.dir, '.prodhome', 'safe')} is a symbolic link`);
    } finally {
      fs.rmSync(lab.dir, { recursive: true, force: true });
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });
});

describe('a file: sink never writes through a link or into a FIFO', () => {
  it('a sink path that is a symlink (to a root-only file) or a FIFO is refused; the target is untouched', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-sink-'));
    try {
      const target = rootFile(dir, 'root-only');
      const before = target.before();
      const link = path.join(dir, 'metrics.lp');
      fs.symlinkSync(target.file, link);
      const sink = new FileSink(link);
      await expect(sink.write([point()])).rejects.toThrow(/file:\/\/.*metrics\.lp: cannot open the file for appending: it is a symbolic link/);
      await sink.close();
      expect(target.before()).toBe(before);

      const fifo = path.join(dir, 'fifo.lp');
      expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
      const fifoSink = new FileSink(fifo);
      await expect(fifoSink.open()).rejects.toThrow(/fifo\.lp: cannot open the file for appending: it is not a regular file/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

function point(): Point {
  return { measurement: 'm', tags: {}, fields: { v: 1 }, time: Date.now() };
}

describe('stopping a verified postmaster is bounded', () => {
  // A stand-in process: a real postmaster cannot be made to ignore SIGINT and SIGQUIT.
  it('SIGINT and SIGQUIT ignored: escalates to SIGKILL and returns; a reused pid (other start time) gets no signal', async () => {
    const stubborn = spawn('sh', ['-c', "trap '' INT QUIT; exec sleep 600"], { stdio: 'ignore' });
    await waitFor(() => processArgv(stubborn.pid!)[0] === 'sleep', 5000, 'the stand-in to exec sleep');
    const startTime = processStartTime(stubborn.pid!)!;
    // Same pid, another start time: what a pid reused after the recorded process died looks like.
    await stopPostmaster({ pid: stubborn.pid!, startTime: `${startTime}1` }, 'x', { fastMs: 100, immediateMs: 100, killMs: 2000 });
    expect(processAlive(stubborn.pid!)).toBe(true);
    await stopPostmaster({ pid: stubborn.pid!, startTime }, 'x', { fastMs: 200, immediateMs: 200, killMs: 5000 });
    await waitFor(() => stubborn.exitCode !== null || stubborn.signalCode !== null, 5000, 'the stand-in to be reaped');
    expect(stubborn.signalCode).toBe('SIGKILL');
  });
});
