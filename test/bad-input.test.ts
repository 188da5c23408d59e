import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { processAlive } from '../src/runtime/index.js';
import { spawn } from 'node:child_process';
import { CLI, cli, portRange, tempLab, waitFor, type TempLab } from './helpers.js';

// Every user mistake through the real command: one clear message, exit code 2, nothing half-made.
const labs: TempLab[] = [];
afterEach(async () => {
  for (const lab of labs.splice(0)) await lab.cleanup();
});

function lab(yaml: string): TempLab {
  const l = tempLab(yaml);
  labs.push(l);
  return l;
}

/** Only the config file is left: no .prodhome, no server processes started by this lab. */
function expectNothingLeft(l: TempLab): void {
  expect(fs.readdirSync(l.dir)).toEqual(['prodhome.yaml']);
  const mine = fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(l.dir);
      } catch {
        return false;
      }
    });
  expect(mine).toEqual([]);
}

describe('bad input: `prodhome up` fails cleanly', () => {
  const configs: { name: string; yaml: string; stderr: RegExp }[] = [
    { name: 'invalid YAML', yaml: 'nodes:\n  a:\n    port: [1,\n', stderr: /prodhome.yaml is not valid YAML:\n {2}prodhome.yaml:\d+:\d+/ },
    { name: 'unknown key', yaml: 'nodes:\n  a:\n    max_conections: 5\n', stderr: /prodhome.yaml:3: nodes.a: unknown key "max_conections" — did you mean "max_connections"\?/ },
    { name: 'wrong type', yaml: 'nodes:\n  a:\n    cpus: lots\n', stderr: /prodhome.yaml:3: nodes.a.cpus: expected a number of CPUs/ },
    { name: 'negative size', yaml: 'nodes:\n  a:\n    memory: -1GiB\n', stderr: /nodes.a.memory: expected a size such as 256MiB/ },
    { name: 'absurd size', yaml: 'nodes:\n  a:\n    memory: 900TiB\n', stderr: /900TiB is more than this machine has/ },
    { name: 'duplicate node names', yaml: 'nodes:\n  a: {}\n  a: {}\n', stderr: /a key appears twice/ },
    { name: 'duplicate ports', yaml: 'nodes:\n  a:\n    port: 56101\n  b:\n    port: 56101\n', stderr: /port 56101 is also given to node "a"/ },
  ];
  it.each(configs)('$name: exit 2, one message, no state dir', ({ yaml, stderr }) => {
    const l = lab(yaml);
    const r = cli(['up'], { cwd: l.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(stderr);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.stdout).toBe('');
    expectNothingLeft(l);
  });

  it('a port already in use: names the node and port, creates nothing', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(56110, '127.0.0.1', r));
    try {
      const l = lab(`${portRange(56100)}nodes:\n  first: {}\n  second:\n    port: 56110\n`);
      const r = cli(['up'], { cwd: l.dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('second: port 56110 on 127.0.0.1 is already in use by another program');
      expect(r.stderr).toMatch(/Give second another port/);
      expectNothingLeft(l);
    } finally {
      blocker.close();
    }
  });

  it('binaries missing: says what was tried and what to do', () => {
    const l = lab(`${portRange(56100)}nodes:\n  a: {}\n`);
    const r = cli(['up'], { cwd: l.dir, env: { PRODHOME_PG_BIN: '/nonexistent/pg/bin' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('a: no working Postgres binaries (initdb, postgres) in /nonexistent/pg/bin (from PRODHOME_PG_BIN)');
    expectNothingLeft(l);
  });

  it('a Postgres version that is not installed', () => {
    const l = lab(`${portRange(56100)}nodes:\n  a:\n    postgres:\n      version: 11\n`);
    const r = cli(['up'], { cwd: l.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/a: no Postgres 11 binaries found for this platform .* Tried: /);
    expectNothingLeft(l);
  });

  it('an unwritable state directory', () => {
    const l = lab(`${portRange(56100)}nodes:\n  a: {}\n`);
    // A file where the .prodhome directory should be: not writable as a directory, even for root.
    fs.writeFileSync(path.join(l.dir, '.prodhome'), 'in the way');
    const r = cli(['up'], { cwd: l.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot create the lab's state directory .*\.prodhome\/prodhome: ENOTDIR/);
    expect(fs.readFileSync(path.join(l.dir, '.prodhome'), 'utf8')).toBe('in the way');
  });

  it('two `up` at once on the same lab: the second is refused by the lock', () => {
    const l = lab(`${portRange(56100)}nodes:\n  a: {}\n`);
    const stateDir = path.join(l.dir, '.prodhome', 'prodhome');
    fs.mkdirSync(stateDir, { recursive: true });
    // A live process (this test runner) holds the lock, as a concurrent `prodhome up` would.
    fs.writeFileSync(path.join(stateDir, 'lock'), `${process.pid} up\n`);
    const r = cli(['up'], { cwd: l.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`lab "prodhome" is busy: \`prodhome up\` (pid ${process.pid}) is changing it`);
    expect(fs.readdirSync(stateDir)).toEqual(['lock']);
  });

  it('a stale lock from a dead process is taken over', () => {
    const l = lab(`${portRange(56100)}nodes:\n  a: {}\n`);
    const stateDir = path.join(l.dir, '.prodhome', 'prodhome');
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(path.join(stateDir, 'lock'), '999999 up\n');
    const r = cli(['up'], { cwd: l.dir });
    expect(r.code).toBe(0);
    expect(fs.existsSync(path.join(stateDir, 'lock'))).toBe(false);
  });

  it('a server that refuses its settings: the log says why, and what this run created is removed', () => {
    const l = lab(`${portRange(56100)}nodes:\n  good: {}\n  bad:\n    settings:\n      max_wal_size: plenty\n`);
    const r = cli(['up'], { cwd: l.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad: Postgres did not start: .*invalid value for parameter "max_wal_size": "plenty"/);
    expect(r.stderr).toContain('prodhome logs bad');
    expectNothingLeft(l);
  });

  it('a failed change to a lab that is up leaves the running nodes as they were', () => {
    const l = lab(`${portRange(56100)}nodes:\n  a: {}\n`);
    expect(cli(['up'], { cwd: l.dir }).code).toBe(0);
    const pidBefore = Number(fs.readFileSync(path.join(l.dir, '.prodhome/prodhome/nodes/a/data/postmaster.pid'), 'utf8').split('\n')[0]);
    fs.writeFileSync(l.file, `${portRange(56100)}nodes:\n  a: {}\n  b:\n    settings:\n      shared_buffers: lots\n`);
    const r = cli(['up'], { cwd: l.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/b: Postgres did not start/);
    expect(fs.existsSync(path.join(l.dir, '.prodhome/prodhome/nodes/b'))).toBe(false);
    const status = JSON.parse(cli(['status', '--json'], { cwd: l.dir }).stdout);
    expect(status.nodes.map((n: { name: string; condition: string }) => [n.name, n.condition])).toEqual([
      ['a', 'running'],
      ['b', 'absent'],
    ]);
    expect(status.nodes[0].pid).toBe(pidBefore);
    expect(processAlive(pidBefore)).toBe(true);
  });

  it('Ctrl-C during up undoes what that run created', async () => {
    const l = lab(`${portRange(56100)}nodes:\n  a: {}\n  b: {}\n`);
    const child = spawn(process.execPath, [CLI, 'up'], { cwd: l.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // Interrupt once initdb is under way, i.e. after this run has created things.
    await waitFor(() => stderr.includes('initdb'), 20_000, 'up to start initdb');
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).toBe(130);
    expect(stderr).toContain('interrupted: undoing what this run created');
    expect(stderr).toContain("prodhome: interrupted; what this run created has been removed");
    expectNothingLeft(l);
  });

  it('unknown commands and options exit 2', () => {
    const l = lab(`${portRange(56100)}nodes:\n  a: {}\n`);
    const r = cli(['upp'], { cwd: l.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command 'upp'/);
    expect(cli(['status', '--bogus'], { cwd: l.dir }).code).toBe(2);
  });
});
