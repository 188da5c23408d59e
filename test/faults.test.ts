import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFaults } from '../src/faults/index.js';
import { cgroupSupport, processAlive } from '../src/runtime/index.js';
import { labDestroy, labUp, nodeConnection, readAgentStatus, readState, stateFiles } from '../src/lab/index.js';
import { connect, withConnection, type ConnectionInfo } from '../src/pg/index.js';
import { CLI, IS_ROOT, cli, portRange, tempLab, waitFor, type TempLab } from './helpers.js';

// Every fault on real servers: injected, its effect observed, cleared, the effect gone; the
// agent and its sampler live through all of them; `up` brings the lab back; no row is lost.
const YAML = `lab: faults
${portRange(59000)}nodes:
  publisher:
    role: publisher
    memory: 512MiB
    cpus: 1
    max_connections: 15
  subscriber1:
    role: subscriber
  metrics:
    role: metrics
metrics:
  interval: 500ms
schema:
  - sql: |
      CREATE TABLE IF NOT EXISTS books (id bigint PRIMARY KEY, sku int, title text, topic text);
seed:
  - table: books
    csv: |
      id,sku,title,topic
      1,1001,A,leadership
      2,1002,B,technical
      3,1003,C,leadership
publications:
  leadership_pub:
    node: publisher
    tables:
      books:
        where: topic = 'leadership'
        replicaIdentity: full
subscriptions:
  leadership_sub:
    node: subscriber1
    publications: [leadership_pub]
`;

/** One query with a hard deadline: a frozen server must not hang the test. */
async function answers(info: ConnectionInfo, ms = 2000): Promise<boolean> {
  const sql = connect(info, { connectTimeoutSeconds: Math.ceil(ms / 1000) });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([sql`select 1`, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), ms)))]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    void sql.end({ timeout: 0 }).catch(() => {});
  }
}

/** The error code a fresh client meets, or 'ok'. */
async function newClient(info: ConnectionInfo): Promise<string> {
  try {
    await withConnection(info, (sql) => sql`select 1`);
    return 'ok';
  } catch (e) {
    return (e as { code?: string }).code ?? (e as Error).message;
  }
}

describe('faults on real servers', () => {
  let lab: TempLab;
  let ext: TempLab | undefined;
  const faults = { injected: 0, cleared: 0 };
  const run = (...args: string[]) => cli(args, { cwd: lab.dir });
  const conn = (node: string) => nodeConnection(lab.config(), node);
  const metricsText = async () => {
    const url = readAgentStatus(lab.config().stateDir)?.sampling?.prometheus;
    if (!url) return '';
    try {
      return await (await fetch(url, { signal: AbortSignal.timeout(3000) })).text();
    } catch {
      return '';
    }
  };
  const pgUp = async (node: string) => new RegExp(`^pg_up\\{node="${node}"[^}]*\\} (\\d)`, 'm').exec(await metricsText())?.[1];
  const agentPid = () => readAgentStatus(lab.config().stateDir)?.pid;

  beforeAll(async () => {
    lab = tempLab(YAML);
    await labUp(lab.config());
    await waitFor(async () => (await pgUp('subscriber1')) === '1', 20_000, 'the sampler to see subscriber1 up');
  });
  afterAll(async () => {
    console.log(`faults survived: ${faults.injected} injected, ${faults.cleared} cleared`);
    await ext?.cleanup();
    await lab.cleanup();
  });

  it('bad input: unknown node, fault, subscription or table, a negative duration → one message, exit 2, nothing started', () => {
    const cases: [string[], RegExp][] = [
      [['fault', 'kill', 'nosuch'], /no node "nosuch".*nodes: publisher, subscriber1, metrics/],
      [['fault', 'explode', 'publisher'], /unknown command 'explode'/],
      [['fault', 'conflict', 'nosuch_sub'], /no subscription "nosuch_sub".*leadership_sub/],
      [['fault', 'lock', 'publisher', 'nosuch_table'], /no table nosuch_table on publisher/],
      [['fault', 'idle-tx', 'publisher', '--for', '-5s'], /--for -5s: a duration must be above zero/],
      [['fault', 'connections', 'publisher', '--hold', '0'], /--hold 0: expected a whole number above 0/],
      [['fault', 'cpu', 'publisher', 'lots'], /"lots" is not a number of CPUs/],
      [['fault', 'memory', 'subscriber1', '160MiB'], /cannot change subscriber1's memory limit live: .*(no `memory:` cap|cgroups cannot be used)/],
      [['fault', 'clear', '999'], /no active fault 999/],
      [['fault', 'net', 'nolink', '--partition'], /no link "nolink" in this lab \(links: leadership_sub \(subscriber1\)\)/],
      [['fault', 'net', 'leadership_sub'], /say what to do to the link/],
      [['fault', 'net', 'leadership_sub', '--bandwidth', 'fast'], /--bandwidth fast: expected a rate/],
      [['replication', 'resolve', 'leadership_sub'], /give one of --skip or --delete-local/],
      [['replication', 'resolve', 'leadership_sub', '--delete-local'], /leadership_sub has no apply conflict to resolve/],
    ];
    for (const [args, message] of cases) {
      const r = run(...args);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
    }
    expect(readFaults(lab.config().stateDir).faults).toEqual([]);
    expect(fs.existsSync(`${lab.config().stateDir}/faults.log`)).toBe(false); // no holder was started
  });

  it('a fault on an external (URL) node is refused where only a local node makes sense', async () => {
    const password = conn('publisher').password!;
    ext = tempLab(`lab: ext\n${portRange(59050)}nodes:\n  outside:\n    role: standalone\n    url: postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${conn('publisher').port}/postgres\nmetrics:\n  store: false\n  prometheus: false\n`);
    await labUp(ext.config());
    for (const kind of ['kill', 'stop', 'freeze', 'cpu']) {
      const r = cli(['fault', kind, 'outside', ...(kind === 'cpu' ? ['0.5'] : [])], { cwd: ext.dir });
      expect(r.stderr).toMatch(/outside is an external server \(given by URL\)/);
      expect(r.code).toBe(2);
    }
    // The SQL faults do work there; this lab has no metrics store, so nothing is annotated, quietly.
    const slot = cli(['fault', 'slot', 'outside'], { cwd: ext.dir });
    expect(slot.code, slot.stderr).toBe(0);
    expect(slot.stderr).toBe('');
    const slots = () => withConnection(conn('publisher'), async (sql) => (await sql`select 1 from pg_replication_slots where slot_name = 'prodhome_fault_slot'`).length);
    expect(await slots()).toBe(1);
    // destroy leaves the external server alone, except for undoing the fault it put there.
    await labDestroy(ext.config());
    expect(await slots()).toBe(0);
    expect(await answers(conn('publisher'))).toBe(true);
  });

  it('--dry-run prints the steps and changes nothing', async () => {
    const r = run('fault', 'freeze', 'subscriber1', '--dry-run');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/plan \(nothing done\)/);
    expect(r.stdout).toMatch(/kill -STOP \d+ \(the postmaster\)/);
    const lock = run('fault', 'lock', 'publisher', 'books', '--for', '30s', '--dry-run');
    expect(lock.stdout).toContain('LOCK TABLE "public"."books" IN ACCESS EXCLUSIVE MODE');
    expect(await answers(conn('subscriber1'))).toBe(true);
    expect(readFaults(lab.config().stateDir).faults).toEqual([]);
  });

  it('freeze: the node stops answering, the sampler reports it down and goes on; thaw brings it back', async () => {
    const r = run('fault', 'freeze', 'subscriber1');
    expect(r.code, r.stderr).toBe(0);
    faults.injected++;
    expect(r.stdout).toMatch(/fault \d+: \d+ processes stopped/);
    expect(await answers(conn('subscriber1'))).toBe(false);
    await waitFor(async () => (await pgUp('subscriber1')) === '0', 20_000, 'pg_up 0 for the frozen node');
    expect(await pgUp('publisher')).toBe('1');
    expect(run('fault', 'list').stdout).toMatch(/freeze\s+subscriber1/);
    const thaw = run('fault', 'thaw', 'subscriber1');
    expect(thaw.stdout).toMatch(/processes continued \(SIGCONT\)/);
    faults.cleared++;
    expect(await answers(conn('subscriber1'))).toBe(true);
    await waitFor(async () => (await pgUp('subscriber1')) === '1', 20_000, 'pg_up 1 after thaw');
    expect(run('fault', 'list').stdout).toMatch(/no active faults/);
  });

  it('freeze, then up: up continues the frozen node before anything else', async () => {
    expect(run('fault', 'freeze', 'subscriber1').code).toBe(0);
    faults.injected++;
    expect(await answers(conn('subscriber1'))).toBe(false);
    const up = run('up');
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).toMatch(/subscriber1: was frozen \(SIGSTOP\); continued it/);
    faults.cleared++;
    expect(await answers(conn('subscriber1'))).toBe(true);
    expect(readFaults(lab.config().stateDir).faults).toEqual([]);
  });

  it('kill under a small load: the agent notices, up restarts the node, verify finds no row lost', async () => {
    const load = spawn(process.execPath, [CLI, 'load', 'inserter', '-c', '2', '-T', '8', '-R', '100'], { cwd: lab.dir, stdio: 'ignore' });
    const loaded = new Promise<number | null>((resolve) => load.on('close', resolve));
    await new Promise((r) => setTimeout(r, 1500));
    const agent = agentPid();
    const r = run('fault', 'kill', 'subscriber1');
    expect(r.code, r.stderr).toBe(0);
    faults.injected++;
    expect(r.stdout).toMatch(/postmaster \d+ killed \(SIGKILL\)/);
    expect(await answers(conn('subscriber1'))).toBe(false);
    await waitFor(async () => (await pgUp('subscriber1')) === '0', 20_000, 'pg_up 0 for the killed node');
    await waitFor(() => readAgentStatus(lab.config().stateDir)?.nodes.subscriber1?.condition === 'died', 10_000, 'the agent to see the node died');
    expect(await loaded).toBe(0);
    const up = run('up');
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/subscriber1.*restarted \(it had died\)/);
    faults.cleared++;
    expect(agentPid()).toBe(agent); // the same agent lived through it
    await waitFor(async () => (await pgUp('subscriber1')) === '1', 20_000, 'pg_up 1 after up');
    const verify = run('verify', '--wait', '60s', '--json');
    const result = JSON.parse(verify.stdout) as { ok: boolean; tables: { publisherRows: number; missing: unknown[]; extra: unknown[]; changed: unknown[] }[] };
    expect(result.ok).toBe(true);
    const rows = result.tables.reduce((n, t) => n + t.publisherRows, 0);
    const lost = result.tables.reduce((n, t) => n + t.missing.length + t.extra.length + t.changed.length, 0);
    console.log(`kill under load: rows verified ${rows}, rows lost ${lost}`);
    expect(lost).toBe(0);
    expect(rows).toBeGreaterThan(10);
    expect(run('fault', 'list').stdout).toMatch(/no active faults/);
  });

  it('kill of the publisher under load: committed rows survive the crash and all reach the subscriber', async () => {
    const load = spawn(process.execPath, [CLI, 'load', 'inserter', '-c', '2', '-T', '6', '-R', '100'], { cwd: lab.dir, stdio: 'ignore' });
    const loaded = new Promise<number | null>((resolve) => load.on('close', resolve));
    await new Promise((r) => setTimeout(r, 2000));
    expect(run('fault', 'kill', 'publisher').stdout).toMatch(/killed \(SIGKILL\)/);
    faults.injected++;
    await loaded; // the load meets the crash; it ends either way
    const up = run('up');
    expect(up.stdout).toMatch(/publisher.*restarted \(it had died\)/);
    faults.cleared++;
    const result = JSON.parse(run('verify', '--wait', '60s', '--json').stdout) as { ok: boolean; tables: { publisherRows: number; missing: unknown[]; extra: unknown[]; changed: unknown[] }[] };
    const lost = result.tables.reduce((n, t) => n + t.missing.length + t.extra.length + t.changed.length, 0);
    console.log(`publisher kill under load: rows verified ${result.tables.reduce((n, t) => n + t.publisherRows, 0)}, rows lost ${lost}`);
    expect(result.ok).toBe(true);
    expect(lost).toBe(0);
  });

  it('stop then up, and restart: the node comes back each time', async () => {
    const before = readState(lab.config().stateDir)!.nodes.subscriber1!;
    expect(run('fault', 'stop', 'subscriber1').stdout).toMatch(/stopped \(fast shutdown\)/);
    faults.injected++;
    expect(await answers(conn('subscriber1'))).toBe(false);
    expect(run('up').stdout).toMatch(/subscriber1.*restarted \(it had died\)/);
    faults.cleared++;
    expect(await answers(conn('subscriber1'))).toBe(true);
    const restart = run('fault', 'restart', 'subscriber1');
    expect(restart.stdout).toMatch(/done: restarted/);
    faults.injected++;
    faults.cleared++;
    const after = readState(lab.config().stateDir)!.nodes.subscriber1!;
    expect(after.runtime === 'local' && before.runtime === 'local' && after.pid !== before.pid).toBe(true);
    expect(await answers(conn('subscriber1'))).toBe(true);
    expect(readFaults(lab.config().stateDir).faults).toEqual([]); // restart is over once done
  });

  it('connections: the next client meets 53300 while they are held, and connects after clear', async () => {
    const agent = agentPid();
    const r = run('fault', 'connections', 'publisher');
    expect(r.code, r.stderr).toBe(0);
    faults.injected++;
    expect(r.stdout).toMatch(/holding \d+ connections \(the server refused more/);
    const id = readFaults(lab.config().stateDir).faults[0]!.id;
    try {
      expect(await newClient(conn('publisher'))).toBe('53300');
      // The sampler keeps the session it had, so it goes on sampling the full server.
      const sampled = readAgentStatus(lab.config().stateDir)?.sampling?.lastSampleAt;
      await waitFor(() => readAgentStatus(lab.config().stateDir)?.sampling?.lastSampleAt !== sampled, 10_000, 'the next sample');
    } finally {
      expect(run('fault', 'clear', id).stdout).toMatch(/holder process \d+ ended/);
    }
    faults.cleared++;
    expect(await newClient(conn('publisher'))).toBe('ok');
    expect(agentPid()).toBe(agent);
  });

  it('lock: a writer is blocked while the lock is held; after clear it writes', async () => {
    expect(run('fault', 'lock', 'publisher', 'books').code).toBe(0);
    faults.injected++;
    const write = () =>
      withConnection(conn('publisher'), async (sql) => {
        await sql`set lock_timeout = '1s'`;
        await sql`insert into books values (1000001, 1, 'locked out?', 'technical')`;
        await sql`delete from books where id = 1000001`;
        return 'ok';
      }).catch((e: { code?: string }) => e.code);
    expect(await write()).toBe('55P03'); // lock_not_available: it waited behind the ACCESS EXCLUSIVE lock
    const [waiting] = await withConnection(conn('publisher'), (sql) => sql<{ n: number }[]>`
      select count(*)::int as n from pg_locks l join pg_class c on c.oid = l.relation where c.relname = 'books' and l.mode = 'AccessExclusiveLock' and l.granted`);
    expect(waiting!.n).toBe(1);
    run('fault', 'clear');
    faults.cleared++;
    expect(await write()).toBe('ok');
  });

  it('lock --for ends by itself', async () => {
    expect(run('fault', 'lock', 'publisher', 'books', '--for', '2s').code).toBe(0);
    faults.injected++;
    const holder = readFaults(lab.config().stateDir).faults[0]!.holder!;
    expect(processAlive(holder.pid)).toBe(true);
    await waitFor(() => !processAlive(holder.pid), 15_000, 'the holder to end when its time ran out');
    faults.cleared++;
    expect(run('fault', 'list').stdout).toMatch(/has ended by itself[\s\S]*no active faults/);
  });

  it('idle-tx: vacuum cannot remove dead tuples behind it; after clear it can', async () => {
    const deadAfterVacuum = () =>
      withConnection(conn('publisher'), async (sql) => {
        await sql`create table if not exists churn (id int primary key, v int)`;
        await sql`insert into churn select g, 0 from generate_series(1, 200) g on conflict do nothing`;
        await sql`update churn set v = v + 1`;
        await sql`vacuum churn`;
        const [row] = await sql<{ n: number }[]>`select n_dead_tup::int as n from pg_stat_user_tables where relname = 'churn'`;
        return row!.n;
      });
    await deadAfterVacuum(); // a first round with nothing holding vacuum back
    expect(run('fault', 'idle-tx', 'publisher').code).toBe(0);
    faults.injected++;
    const [session] = await withConnection(conn('publisher'), (sql) => sql<{ state: string; xid: string | null }[]>`
      select state, backend_xid::text as xid from pg_stat_activity where application_name = 'prodhome-fault'`);
    expect(session).toMatchObject({ state: 'idle in transaction' });
    expect(session!.xid).not.toBeNull();
    expect(await deadAfterVacuum()).toBeGreaterThanOrEqual(200);
    run('fault', 'clear');
    faults.cleared++;
    expect(await deadAfterVacuum()).toBe(0);
  });

  it("slot: an inactive slot's retained WAL grows; clear drops it", async () => {
    expect(run('fault', 'slot', 'publisher').stdout).toMatch(/inactive logical slot prodhome_fault_slot/);
    faults.injected++;
    const retained = () =>
      withConnection(conn('publisher'), async (sql) => {
        const [row] = await sql<{ b: string; active: boolean }[]>`
          select pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text as b, active from pg_replication_slots where slot_name = 'prodhome_fault_slot'`;
        return row ? { bytes: Number(row.b), active: row.active } : undefined;
      });
    const before = await retained();
    expect(before?.active).toBe(false);
    await withConnection(conn('publisher'), (sql) => sql`insert into churn select g, 0 from generate_series(1000, 20000) g`);
    const after = await retained();
    expect(after!.bytes).toBeGreaterThan(before!.bytes + 100_000);
    run('fault', 'clear');
    faults.cleared++;
    expect(await retained()).toBeUndefined();
  });

  const cgroupsUsable = cgroupSupport().usable;
  it.runIf(IS_ROOT && cgroupsUsable)('cpu and memory: the cgroup limits drop live (the server is throttled) and come back on clear', async () => {
    const node = readState(lab.config().stateDir)!.nodes.publisher!;
    if (node.runtime !== 'local') throw new Error('expected local');
    const file = (name: string) => node.caps.cgroupDirs.map((d) => `${d}/${name}`).find((f) => fs.existsSync(f))!;
    const quotaFile = file('cpu.cfs_quota_us') ?? file('cpu.max');
    const memFile = file('memory.limit_in_bytes') ?? file('memory.max');
    const quota = fs.readFileSync(quotaFile, 'utf8').trim();
    const mem = fs.readFileSync(memFile, 'utf8').trim();
    expect(run('fault', 'cpu', 'publisher', '0.1').code).toBe(0);
    expect(run('fault', 'memory', 'publisher', '160MiB').code).toBe(0);
    faults.injected += 2;
    expect(fs.readFileSync(quotaFile, 'utf8').trim()).toMatch(/^10000\b/);
    expect(Number(fs.readFileSync(memFile, 'utf8').trim())).toBe(160 * 1024 * 1024);
    const statFile = quotaFile.replace(/cpu\.(cfs_quota_us|max)$/, 'cpu.stat');
    const throttled = () => Number(/nr_throttled (\d+)/.exec(fs.readFileSync(statFile, 'utf8'))![1]);
    const t0 = throttled();
    await withConnection(conn('publisher'), (sql) => sql`select count(*) from generate_series(1, 3000000)`);
    expect(throttled()).toBeGreaterThan(t0);
    run('fault', 'clear');
    faults.cleared += 2;
    expect(fs.readFileSync(quotaFile, 'utf8').trim()).toBe(quota);
    expect(fs.readFileSync(memFile, 'utf8').trim()).toBe(mem);
  });
  it.runIf(!(IS_ROOT && cgroupsUsable))('cpu: where the OS cannot cap a running server, the fault says so (exit 2)', () => {
    const r = run('fault', 'cpu', 'publisher', '0.1');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot change publisher's cpu limit live/);
  });

  const arrives = (id: number, ms: number) =>
    waitFor(() => withConnection(conn('subscriber1'), async (sql) => (await sql`select 1 from books where id = ${id}`).length > 0), ms, `row ${id} on subscriber1`).then(
      () => true,
      () => false,
    );
  const insertLeadership = (id: number) => withConnection(conn('publisher'), (sql) => sql`insert into books values (${id}, 1, 'net', 'leadership')`);

  it('net --partition: replication really flows through the proxy — rows stop arriving, and arrive after clear', async () => {
    const r = run('fault', 'net', 'subscriber1', '--partition');
    expect(r.code, r.stderr).toBe(0);
    faults.injected++;
    expect(r.stdout).toMatch(/leadership_sub goes through a proxy on 127\.0\.0\.1:\d+: a partition/);
    const [sub] = await withConnection(conn('subscriber1'), (sql) => sql<{ direct: boolean }[]>`select subconninfo ~ ${`port=${conn('publisher').port}\\M`} as direct from pg_subscription`);
    expect(sub!.direct).toBe(false);
    await insertLeadership(2_000_001);
    expect(await arrives(2_000_001, 4000)).toBe(false);
    expect(run('fault', 'clear').stdout).toMatch(new RegExp(`CONNECTION back to port ${conn('publisher').port}[\\s\\S]*proxy process \\d+ ended`));
    faults.cleared++;
    expect(await arrives(2_000_001, 30_000)).toBe(true);
  });

  it('net --partition cuts into the streaming link: nothing passes, no end is told; both time out by themselves, and when --for runs out the link recovers with no command', async () => {
    // Short timeouts for this test only (live, then reset), so a 12 s partition outlasts both.
    const setTimeouts = (value: string | null) =>
      Promise.all([
        withConnection(conn('publisher'), async (sql) => {
          await sql.unsafe(value ? `alter system set wal_sender_timeout = '${value}'` : 'alter system reset wal_sender_timeout');
          await sql`select pg_reload_conf()`;
        }),
        withConnection(conn('subscriber1'), async (sql) => {
          await sql.unsafe(value ? `alter system set wal_receiver_timeout = '${value}'` : 'alter system reset wal_receiver_timeout');
          await sql`select pg_reload_conf()`;
        }),
      ]);
    const state = readState(lab.config().stateDir)!.nodes;
    const logOf = (node: string) => (state[node]!.runtime === 'local' ? (state[node] as { logFile: string }).logFile : '');
    const sizeOf = (f: string) => (fs.existsSync(f) ? fs.statSync(f).size : 0);
    const since = (f: string, at: number) => (fs.existsSync(f) ? fs.readFileSync(f).subarray(at).toString('utf8') : '');
    const faultsLog = `${lab.config().stateDir}/faults.log`;
    const marks = { publisher: sizeOf(logOf('publisher')), subscriber1: sizeOf(logOf('subscriber1')), faults: sizeOf(faultsLog) };
    await setTimeouts('3s');
    try {
      const r = run('fault', 'net', 'leadership_sub', '--partition', '--for', '12s');
      expect(r.code, r.stderr).toBe(0);
      faults.injected++;
      expect(r.stdout).toMatch(/cut into the streaming link \(its connection held open, nothing passes\)/);
      expect(r.stdout).toMatch(/wal_sender_timeout 3 s, subscriber1's wal_receiver_timeout 3 s: longer than both/);
      // The walsender streaming through the proxy when the partition began: nothing told it.
      const walsender = async () =>
        (await withConnection(conn('publisher'), (sql) => sql<{ pid: number }[]>`select pid from pg_stat_replication where application_name = 'leadership_sub' and client_port is not null`))[0]?.pid;
      const cutInto = await walsender();
      expect(cutInto, 'a walsender still there as the partition begins').toBeDefined();
      await insertLeadership(2_000_002);
      expect(await arrives(2_000_002, 1500)).toBe(false);
      // It ends by wal_sender_timeout, not by anything the proxy does: the proxy still holds its socket.
      await waitFor(async () => (await walsender()) !== cutInto, 40_000, 'the walsender to time out by itself');
      await waitFor(() => since(logOf('publisher'), marks.publisher).includes('terminating walsender process due to replication timeout'), 20_000, "the publisher's log to say its walsender timed out");
      await waitFor(() => since(logOf('subscriber1'), marks.subscriber1).includes('terminating logical replication worker due to timeout'), 20_000, "the subscriber's log to say its worker timed out");
      expect(readFaults(lab.config().stateDir).faults.map((f) => f.kind)).toEqual(['net']); // still partitioned
      // No one runs a command: the partition ends by its time, the link comes back by itself.
      expect(await arrives(2_000_002, 60_000)).toBe(true);
      faults.cleared++;
      await waitFor(() => /has ended by itself[\s\S]*no active faults/.test(run('fault', 'list').stdout), 90_000, 'the fault to end by itself');
      const log = since(faultsLog, marks.faults);
      console.log(`partition of an established link, as the proxy saw it:\n${log.split('\n').filter((l) => l.includes('fault-proxy')).join('\n')}`);
      expect(log).toMatch(/partition: \d+ connections? held open, passing nothing either way \(the link was streaming through the proxy\)/);
      expect(log).toMatch(/connection #\d+: .*the publisher's end closed it [\d.]+ s into the partition \(its walsender timed out\)/);
      expect(log).toMatch(/partition over after [\d.]+ s \(its time ran out\): everything passes again/);
      expect(log).toMatch(/the link streams again through the proxy/);
      expect(run('verify', '--wait', '60s').code).toBe(0);
    } finally {
      await setTimeouts(null);
    }
  }, 240_000);

  it('net: a proxy that dies leaves the link stalled until up points it back at the publisher; no row lost', async () => {
    expect(run('fault', 'net', 'leadership_sub', '--partition').code).toBe(0);
    faults.injected++;
    const proxy = readFaults(lab.config().stateDir).faults[0]!.holder!;
    process.kill(proxy.pid, 'SIGKILL'); // a crash: it points nothing back
    await waitFor(() => !processAlive(proxy.pid), 5000, 'the proxy to die');
    await insertLeadership(2_000_004);
    expect(await arrives(2_000_004, 2000)).toBe(false);
    expect(run('up').code).toBe(0);
    faults.cleared++;
    expect(await arrives(2_000_004, 30_000)).toBe(true);
    expect(readFaults(lab.config().stateDir).faults).toEqual([]);
    expect(run('verify', '--wait', '60s').code).toBe(0);
  });

  it('net --latency: no row arrives sooner than the latency asked for; --reset-connections reconnects the link', async () => {
    const injected = new Date();
    expect(run('fault', 'net', 'leadership_sub', '--latency', '400ms', '--jitter', '50ms').code).toBe(0);
    faults.injected++;
    // The walsender that streams through the proxy is a new one (the ALTER restarts the worker).
    await waitFor(async () => {
      const [s] = await withConnection(conn('publisher'), (sql) => sql<{ state: string; since: Date }[]>`
        select state, backend_start as since from pg_stat_replication where application_name = 'leadership_sub'`);
      return s?.state === 'streaming' && s.since > injected;
    }, 60_000, 'the link to stream through the proxy');
    const started = Date.now();
    await insertLeadership(2_000_003);
    const arrived = await arrives(2_000_003, 60_000);
    if (!arrived) {
      const state = readState(lab.config().stateDir)!.nodes.subscriber1!;
      console.log(fs.readFileSync(`${lab.config().stateDir}/faults.log`, 'utf8').slice(-2000));
      if (state.runtime === 'local') console.log(fs.readFileSync(state.logFile, 'utf8').slice(-3000));
    }
    expect(arrived).toBe(true);
    // A lower bound, not a speed: the row crossed the proxy once, 400 ms ± 50 ms later at least.
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    run('fault', 'clear');
    faults.cleared++;
    const pidOf = async () => (await withConnection(conn('publisher'), (sql) => sql<{ pid: number }[]>`select pid from pg_stat_replication where application_name = 'leadership_sub'`))[0]?.pid;
    const before = await waitFor(pidOf, 30_000, 'a walsender');
    expect(run('fault', 'net', 'leadership_sub', '--reset-connections').stdout).toMatch(/1 walsender connection of leadership_sub reset/);
    faults.injected++;
    faults.cleared++;
    await waitFor(async () => {
      const now = await pidOf();
      return now !== undefined && now !== before;
    }, 30_000, 'the subscriber to reconnect');
    expect(run('verify', '--wait', '60s').code).toBe(0);
  });

  it('conflict: the subscription stalls, status shows the way out, resolve --delete-local unstalls it and verify matches', async () => {
    const r = run('fault', 'conflict', 'leadership_sub');
    expect(r.code, r.stderr).toBe(0);
    faults.injected++;
    const key = /id=(\d+) on subscriber1/.exec(r.stdout)![1]!;
    await withConnection(conn('publisher'), async (sql) => {
      await sql`insert into books values (${key}, 1, 'the colliding insert', 'leadership')`;
      await sql`insert into books values (${Number(key) + 1}, 2, 'stuck behind it', 'leadership')`;
    });
    const status = await waitFor(() => {
      const s = run('replication', 'status');
      return /STALLED/.test(s.stdout) && s.stdout;
    }, 30_000, 'status to show the stalled subscription');
    expect(status).toMatch(/duplicate key value violates unique constraint "books_pkey" — Key \(id\)=\(\d+\) already exists\. in public\.books/);
    expect(status).toContain(`prodhome replication resolve leadership_sub --delete-local   (runs on subscriber1: DELETE FROM "public"."books" WHERE "id" = '${key}';)`);
    expect(status).toMatch(/prodhome replication resolve leadership_sub --skip {3}\(runs: ALTER SUBSCRIPTION "leadership_sub" SKIP \(lsn = '[0-9A-F]+\/[0-9A-F]+'\);\)/);
    const stuck = await withConnection(conn('subscriber1'), (sql) => sql`select 1 from books where id = ${Number(key) + 1}`);
    expect(stuck.length).toBe(0); // the row after the conflict has not arrived: stalled
    const resolve = run('replication', 'resolve', 'leadership_sub', '--delete-local');
    expect(resolve.code, resolve.stderr).toBe(0);
    expect(resolve.stdout).toContain(`DELETE FROM "public"."books" WHERE "id" = '${key}';`);
    faults.cleared++;
    const verify = run('verify', '--wait', '60s');
    expect(verify.stdout).toMatch(/every row arrived/);
    expect(verify.code).toBe(0);
    expect(run('fault', 'list').stdout).toMatch(/no active faults/);
  });

  it('conflict resolved with --skip: the stall ends, only the skipped transaction is missing', async () => {
    const r = run('fault', 'conflict', 'leadership_sub');
    faults.injected++;
    const key = Number(/id=(\d+) on subscriber1/.exec(r.stdout)![1]);
    await withConnection(conn('publisher'), async (sql) => {
      await sql`insert into books values (${key}, 1, 'skipped', 'leadership')`;
      await sql`insert into books values (${key + 1}, 2, 'after the skip', 'leadership')`;
    });
    await waitFor(() => /STALLED/.test(run('replication', 'status').stdout), 30_000, 'the stall');
    const resolve = run('replication', 'resolve', 'leadership_sub', '--skip');
    expect(resolve.stdout).toMatch(/ALTER SUBSCRIPTION "leadership_sub" SKIP \(lsn = '[0-9A-F]+\/[0-9A-F]+'\);/);
    await waitFor(() => withConnection(conn('subscriber1'), async (sql) => (await sql`select 1 from books where id = ${key + 1}`).length > 0), 30_000, 'the row after the skipped one');
    run('fault', 'clear'); // removes the planted row: the skipped one is now plainly missing
    faults.cleared++;
    const verify = JSON.parse(run('verify', '--json').stdout) as { tables: { missing: string[]; changed: string[] }[] };
    expect(verify.tables[0]!.missing.map(String)).toEqual([String(key)]);
    // resync puts the lab right again
    expect(run('replication', 'resync', 'leadership_sub').code).toBe(0);
    expect(run('verify', '--wait', '60s').code).toBe(0);
  });

  it('every fault and clear is an annotation in the metrics store, with its end set on clear', async () => {
    const rows = await withConnection(conn('metrics'), (sql) => sql<{ kind: string; node: string; text: string; ended: boolean; fault: string }[]>`
      select kind, node, text, "end" is not null as ended, tags->>'fault' as fault from metrics.annotations where kind = 'fault' order by id`);
    // (load runs write annotations of their own, kind 'load', into the same table)
    expect(rows.length).toBeGreaterThanOrEqual(12);
    expect(new Set(rows.map((r) => r.fault))).toEqual(new Set(['freeze', 'kill', 'stop', 'restart', 'connections', 'lock', 'idle-tx', 'slot', 'conflict', 'net', ...(IS_ROOT && cgroupsUsable ? ['cpu', 'memory'] : [])]));
    expect(rows.every((r) => r.ended)).toBe(true);
    expect(rows[0]).toMatchObject({ node: 'subscriber1', text: 'fault freeze subscriber1' });
  });

  it('destroy ends every fault: no holder outlives the lab, a frozen node is stopped anyway', async () => {
    expect(run('fault', 'idle-tx', 'publisher').code).toBe(0);
    expect(run('fault', 'connections', 'subscriber1', '--hold', '2').code).toBe(0);
    expect(run('fault', 'freeze', 'metrics').code).toBe(0);
    expect(run('fault', 'net', 'leadership_sub', '--latency', '100ms').code).toBe(0);
    faults.injected += 4;
    const records = readFaults(lab.config().stateDir).faults;
    const holders = records.flatMap((f) => (f.holder ? [f.holder.pid] : []));
    expect(holders.length).toBe(3); // two holders and a proxy
    const state = readState(lab.config().stateDir)!;
    const pids = Object.values(state.nodes).flatMap((n) => (n.runtime === 'local' && n.pid ? [n.pid] : []));
    await labDestroy(lab.config());
    faults.cleared += 4;
    for (const pid of [...holders, ...pids]) expect(processAlive(pid)).toBe(false);
    expect(fs.existsSync(stateFiles(lab.config().stateDir).state)).toBe(false);
  });
});
