import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { labDestroy, labDown, labStatus, labUp, nodeConnection, readState } from '../src/lab/index.js';
import { connectionUrl, serverVersion, withConnection } from '../src/pg/index.js';
import { npmBinDir, processAlive, resolveBinaries } from '../src/runtime/index.js';
import { findPsql } from '../src/runtime/index.js';
import { IN_CI, IS_ROOT, cli, portRange, processUid, tempLab, type TempLab } from './helpers.js';

const labs: TempLab[] = [];
afterAll(async () => {
  for (const l of labs.reverse()) await l.cleanup();
});
function lab(yaml: string, opts?: { mode?: number }): TempLab {
  const l = tempLab(yaml, opts);
  labs.push(l);
  return l;
}

let system15: string | undefined;
try {
  system15 = resolveBinaries({ version: 15 }, 'probe').binDir;
} catch {
  if (IN_CI) throw new Error('CI machines have the system Postgres 15; it was not found');
  console.warn('\n*** SKIPPING mixed-version tests: no Postgres 15 binaries on this machine ***\n');
}

describe('runtimes: mixed versions, external servers', () => {
  it.runIf(system15)('nodes may run different majors: a system Postgres 15 publisher and an npm 17 subscriber', async () => {
    const l = lab(`lab: mixed\n${portRange(56300)}nodes:\n  publisher:\n    role: publisher\n    postgres:\n      version: 15\n  subscriber1:\n    role: subscriber\n`);
    const up = await labUp(l.config());
    const versions = Object.fromEntries(up.nodes.map((n) => [n.name, n.version]));
    expect(versions.publisher).toMatch(/^15\./);
    expect(versions.subscriber1).toMatch(new RegExp(`^${resolveBinaries({}, 'x').major}\\.`));
    const real = await withConnection(nodeConnection(l.config(), 'publisher'), serverVersion);
    expect(real.major).toBe(15);
  });

  it('an external node (url:) is used as it is: checked, never stopped or deleted', async () => {
    const host = lab(`lab: host\n${portRange(56320)}nodes:\n  app:\n    role: standalone\n`);
    await labUp(host.config());
    const target = nodeConnection(host.config(), 'app');
    const hostPid = (readState(host.config().stateDir)!.nodes.app as { pid: number }).pid;

    const url = connectionUrl(target, { withPassword: true });
    const l = lab(`lab: ext\n${portRange(56340)}nodes:\n  legacy:\n    role: publisher\n    url: ${url}\n  sub:\n    role: subscriber\n`);
    const up = await labUp(l.config());
    expect(up.nodes.find((n) => n.name === 'legacy')).toMatchObject({ runtime: 'external', action: 'checked (external: left as it is)', address: `127.0.0.1:${target.port}` });
    expect(up.nodes.find((n) => n.name === 'legacy')!.url).not.toContain(target.password!);
    expect(fs.readFileSync(path.join(l.config().stateDir, 'state.json'), 'utf8')).not.toContain(target.password!);
    const status = await labStatus(l.config());
    expect(status.nodes.find((n) => n.name === 'legacy')).toMatchObject({ runtime: 'external', condition: 'reachable' });

    const down = await labDown(l.config());
    expect(down.nodes.find((n) => n.name === 'legacy')!.result).toBe('left alone');
    await labDestroy(l.config());
    expect(processAlive(hostPid)).toBe(true);
    expect(await withConnection(target, async (sql) => (await sql`select 1 as one`)[0]!.one)).toBe(1);
  });

  it('an unreachable external node fails up with its name, and nothing is left', () => {
    const l = lab(`lab: gone\n${portRange(56360)}nodes:\n  local1: {}\n  legacy:\n    url: postgres://nobody:pw@127.0.0.1:1/db\n`);
    const r = cli(['up'], { cwd: l.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/legacy: cannot connect to postgres:\/\/nobody@127\.0\.0\.1:1\/db/);
    expect(r.stderr).not.toContain(':pw@');
    expect(fs.readdirSync(l.dir)).toEqual(['prodhome.yaml']);
  });
});

describe.runIf(IS_ROOT)('running as root with a config in a directory the server user cannot reach', () => {
  it('keeps node data under /var/lib/prodhome/labs/<lab id> and destroy removes exactly that', async () => {
    const l = lab(`lab: private\n${portRange(56380)}nodes:\n  a: {}\n`, { mode: 0o700 });
    const up = await labUp(l.config());
    expect(up.nodes[0]!.action).toBe('created');
    const state = readState(l.config().stateDir)!;
    expect(state.dataRoot).toBe(`/var/lib/prodhome/labs/${state.labId}`);
    const node = state.nodes.a!;
    if (node.runtime !== 'local') throw new Error('expected local');
    expect(node.dataDir.startsWith(state.dataRoot)).toBe(true);
    expect(processUid(node.pid!)).toBe(state.runAs!.uid);
    await labDestroy(l.config());
    expect(fs.existsSync(state.dataRoot)).toBe(false);
    expect(fs.existsSync('/var/lib/prodhome/labs')).toBe(true);
  });

  it('copies binaries the server user cannot reach into a cache it can', async () => {
    const npm = npmBinDir();
    if (!npm) throw new Error(`the npm Postgres package is a dependency; it should be installed`);
    const hidden = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-hidden-'));
    fs.chmodSync(hidden, 0o700);
    fs.cpSync(path.dirname(npm), path.join(hidden, 'native'), { recursive: true, verbatimSymlinks: true });
    let cached: string | undefined;
    try {
      const l = lab(`lab: hiddenbin\n${portRange(56390)}nodes:\n  a:\n    postgres:\n      binDir: ${path.join(hidden, 'native', 'bin')}\n`);
      await labUp(l.config());
      const node = readState(l.config().stateDir)!.nodes.a!;
      if (node.runtime !== 'local') throw new Error('expected local');
      expect(node.binDir.startsWith('/var/lib/prodhome/pg/')).toBe(true);
      expect(fs.readFileSync(`/proc/${node.pid}/cmdline`, 'utf8')).toContain('/var/lib/prodhome/pg/');
      cached = path.dirname(node.binDir);
    } finally {
      await labs.pop()?.cleanup();
      fs.rmSync(hidden, { recursive: true, force: true });
      // The copy is keyed by this temp path, which no later run will use again.
      if (cached) fs.rmSync(cached, { recursive: true, force: true });
    }
  });
});

describe('setup commands', () => {
  it('init writes a commented default that loads as the default lab; refuses to overwrite', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-init-'));
    try {
      expect(cli(['init'], { cwd: dir }).code).toBe(0);
      const text = fs.readFileSync(path.join(dir, 'prodhome.yaml'), 'utf8');
      expect(text).toMatch(/^# /m);
      const status = JSON.parse(cli(['status', '--json'], { cwd: dir }).stdout);
      expect(status.nodes.map((n: { name: string }) => n.name)).toEqual(['publisher', 'subscriber1', 'subscriber2', 'metrics']);
      const again = cli(['init'], { cwd: dir });
      expect(again.code).toBe(2);
      expect(again.stderr).toContain('already exists; not overwriting it');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('doctor reports binaries, cgroups, ports and the OS user', () => {
    const l = lab(`lab: doc\n${portRange(56400)}nodes:\n  a:\n    port: 56401\n`);
    const r = cli(['doctor', '--json'], { cwd: l.dir });
    expect(r.code).toBe(0);
    const checks = JSON.parse(r.stdout) as { check: string; result: string; detail: string }[];
    const names = checks.map((c) => c.check);
    expect(names).toEqual(expect.arrayContaining(['node.js', 'config', 'binaries: a', 'os user', 'cgroups', 'port 56401', 'state dir']));
    expect(checks.find((c) => c.check === 'binaries: a')!.detail).toMatch(/^Postgres \d+\.\d+ from /);
    expect(checks.find((c) => c.check === 'cgroups')!.detail).toMatch(/enforced/);
  });

  it('doctor fails on a broken config', () => {
    const l = lab('nodes:\n  a:\n    prot: 1\n');
    const r = cli(['doctor'], { cwd: l.dir });
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/config\s+FAIL/);
  });

  it('psql runs psql on the node; without psql it prints the URL (no password)', () => {
    const l = lab(`lab: nopsql\n${portRange(56410)}nodes:\n  a: {}\n`);
    expect(cli(['up'], { cwd: l.dir }).code).toBe(0);
    const password = nodeConnection(l.config(), 'a').password!;
    const none = cli(['psql', 'a'], { cwd: l.dir, env: { PRODHOME_PSQL: '/nonexistent/psql' } });
    expect(none.code).toBe(0);
    expect(none.stdout).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:564\d\d\/postgres$/m);
    expect(none.stdout + none.stderr).not.toContain(password);
    expect(none.stderr).toContain('psql is not installed here');
    const psql = findPsql();
    if (!psql) {
      if (IN_CI) throw new Error('CI machines have psql (Postgres 15); it was not found');
      return;
    }
    const ran = cli(['psql', 'a', '--', '-Atc', 'select 6 * 7'], { cwd: l.dir });
    expect(ran.stdout.trim()).toBe('42');
  });
});
