import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { labReplicationStatus, labUp, labVerify, nodeConnection, readState, writtenTables } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { runtimes } from '../src/runtime/index.js';
import { progressLine } from '../src/workload/summary.js';
import { cli, portRange, tempLab, waitFor, type TempLab } from './helpers.js';

/** Issue 15: tools that work with a node down, and errors that say why. */

const yaml = `lab: operate
${portRange(59200)}nodes:            # three nodes, the comment stays where it is
  pub: { role: standalone }
  sub1: { role: subscriber, memory: 256MiB }
  sub2: { role: subscriber }
schema:
  - node: pub
    sql: |
      CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, v text);
      INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g ON CONFLICT DO NOTHING;
publications:
  p: { node: pub, tables: { items: {} } }
subscriptions:
  s1: { node: sub1, publications: [p] }
  s2: { node: sub2, publications: [p] }
# trailing comment, also kept
`;

function onNode(lab: TempLab, node: string, text: string) {
  return withConnection(nodeConnection(lab.config(), node), (sql) => sql.unsafe(text));
}

async function stopNode(lab: TempLab, name: string) {
  const node = readState(lab.config().stateDir)!.nodes[name]!;
  await runtimes.local.down(name, node);
}

describe('write guard: the tables a script writes', () => {
  it('finds INSERT, UPDATE, DELETE, COPY FROM, TRUNCATE targets, quoted and qualified, and ignores reads and comments', () => {
    expect(writtenTables('INSERT INTO books (id) VALUES (1); -- update nothing\nUPDATE "My Table" SET a = 1;\nDELETE FROM s.t;\nSELECT * FROM other;\nTRUNCATE TABLE x;\nCOPY y FROM STDIN;\nCOPY z TO STDOUT;')).toEqual([
      { schema: 'public', name: 'books' },
      { schema: 'public', name: 'My Table' },
      { schema: 's', name: 't' },
      { schema: 'public', name: 'x' },
      { schema: 'public', name: 'y' },
    ]);
  });
});

describe('load', () => {
  it('calls the rate limit\'s lag "schedule lag", so nobody reads it as replication lag (no server needed)', () => {
    const line = progressLine({ tps: 10, latencyMs: { avg: 1, stddev: 0 }, failed: 0, lagMs: { avg: 0.25, max: 1 } } as unknown as Parameters<typeof progressLine>[0], 1);
    expect(line).toBe('progress: 1.0 s, 10.0 tps, lat 1.000 ms stddev 0.000, 0 failed, schedule lag 0.250 ms');
  });
});

describe('a subscriber down: status and verify report it instead of refusing', () => {
  let lab: TempLab;
  beforeAll(async () => {
    lab = tempLab(yaml);
    await labUp(lab.config());
    expect((await labVerify(lab.config(), { waitMs: 20_000, maxKeys: 5 })).ok).toBe(true);
  });
  afterAll(() => lab.cleanup());

  it('replication status shows sub2 down, and the publisher keeping its slot with retained WAL growing', async () => {
    await stopNode(lab, 'sub2');
    await onNode(lab, 'pub', "insert into items select g, repeat('x', 500) from generate_series(101, 2100) g");
    const first = cli(['replication', 'status', '--json'], { cwd: lab.dir });
    expect(first.code, first.stderr).toBe(0);
    const s2 = JSON.parse(first.stdout).find((s: { subscription: string }) => s.subscription === 's2');
    expect(s2.state).toBe('subscriber down');
    expect(s2.downReason).toContain('sub2 is not running');
    expect(s2.slot.active).toBe(false);
    const before = s2.slot.retainedWalBytes as number;
    expect(before).toBeGreaterThan(0);
    await onNode(lab, 'pub', "insert into items select g, repeat('x', 500) from generate_series(2101, 4100) g");
    const after = (await labReplicationStatus(lab.config())).find((s) => s.subscription === 's2')!;
    expect(after.slot!.retainedWalBytes!).toBeGreaterThan(before);
    // The heartbeat row arrives once the agent has beaten it and s1 has applied it: wait for it.
    const s1 = await waitFor(async () => {
      const row = (await labReplicationStatus(lab.config())).find((s) => s.subscription === 's1')!;
      return row.heartbeat ? row : undefined;
    }, 20_000, "s1's heartbeat");
    expect(s1.state).toBe('streaming');
    // The subscriber's side of the lag in seconds: the heartbeat's commit-to-apply latency and age.
    expect(s1.heartbeat!.latencySeconds).toBeGreaterThanOrEqual(0);
    expect(s1.heartbeat!.ageSeconds).toBeGreaterThanOrEqual(0);
    const text = cli(['replication', 'status'], { cwd: lab.dir });
    expect(text.stdout).toMatch(/s2: sub2 is not running .*pub keeps its slot inactive, retaining \d+ bytes of WAL until sub2 is back/);
    expect(text.stdout).toMatch(/^s1 +sub1 +pub +streaming .* \d+\.\dms \(\d+\.\ds\) /m);
    expect(text.stdout).toContain('s2 fix: start sub2 (`prodhome up`): until then pub keeps the WAL s2 has not received');
  });

  it('verify compares what it can and exits 1 naming the down node', () => {
    const r = cli(['verify', '--wait', '10s'], { cwd: lab.dir });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/sub1\s+public\.items\s+s1\s+4100\s+4100\s+match/);
    expect(r.stdout).toContain('- s2: not compared: sub2 is down (is not running');
    expect(r.stdout).toContain('verify: MISMATCH: 1 cause above (exit 1)');
  });

  it('sample keeps sampling with sub2 down and says so', () => {
    const r = cli(['sample', '--interval', '500ms', '--duration', '1500ms'], { cwd: lab.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\S+ sub2 +DOWN$/m);
    expect(r.stdout).toMatch(/^\S+ pub +\d+ tps/m);
  });

  it('pause and resume of s1 work while sub2 is down', () => {
    expect(cli(['replication', 'pause', 's1'], { cwd: lab.dir }).code).toBe(0);
    expect(cli(['replication', 'resume', 's1'], { cwd: lab.dir }).code).toBe(0);
    const paused = cli(['replication', 'pause', 's2'], { cwd: lab.dir });
    expect(paused.code).toBe(2);
    expect(paused.stderr).toContain('sub2 not running');
  });

  it('lab status still answers with sub2 down', () => {
    const r = cli(['status'], { cwd: lab.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/sub2\s+subscriber/);
  });

  it('once sub2 is back, verify finds every row', async () => {
    await labUp(lab.config());
    expect((await labVerify(lab.config(), { waitMs: 30_000, maxKeys: 5 })).ok).toBe(true);
  });

  it('sample: short lines; a paused subscription\'s latency is STALE with its age, the live one fresh; send lag in bytes and seconds; memory as rss + cache against the cap', () => {
    expect(cli(['replication', 'pause', 's1'], { cwd: lab.dir }).code).toBe(0);
    try {
      const r = cli(['sample', '--interval', '500ms', '--duration', '5s'], { cwd: lab.dir });
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.trim().split('\n');
      for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(120);
      const last = (node: string) => lines.filter((l) => l.split(/\s+/)[1] === node).at(-1)!;
      expect(last('sub1')).toMatch(/e2e STALE \d+\.\ds old/);
      expect(last('sub2')).toMatch(/e2e \d+\.\dms/);
      expect(last('pub')).toMatch(/send lag \S+ \d+\.\d{3}s/);
      if (readState(lab.config().stateDir)!.nodes.sub1!.runtime === 'local' && (readState(lab.config().stateDir)!.nodes.sub1 as { caps: { enforced: boolean } }).caps.enforced) {
        expect(last('sub1')).toMatch(/mem \S+ rss\+\S+ cache\/256M$/);
      }
      const wide = cli(['sample', '--interval', '500ms', '--duration', '600ms', '--wide'], { cwd: lab.dir });
      expect(wide.stdout.trim().split('\n')[0]).toMatch(/pub: .* \| sub1: .* \| sub2: /);
    } finally {
      expect(cli(['replication', 'resume', 's1'], { cwd: lab.dir }).code).toBe(0);
    }
  });

  it('replicate --dry-run --all shows the whole plan on a lab that is up; plain --dry-run has nothing to do', () => {
    const plain = cli(['replicate', '--dry-run'], { cwd: lab.dir });
    expect(plain.stdout).toContain('nothing to do');
    expect(plain.stdout).toContain('--dry-run --all');
    const all = cli(['replicate', '--dry-run', '--all'], { cwd: lab.dir });
    expect(all.code, all.stderr).toBe(0);
    for (const text of ['CREATE TABLE IF NOT EXISTS items', 'CREATE ROLE prodhome_replication LOGIN REPLICATION PASSWORD \'********\'', 'CREATE PUBLICATION "p"', 'CREATE SUBSCRIPTION "s1"', 'CREATE SUBSCRIPTION "s2"']) {
      expect(all.stdout).toContain(text);
    }
    expect(all.stdout).not.toMatch(/DROP (SUBSCRIPTION|PUBLICATION)|TRUNCATE/);
    expect(cli(['replicate', '--all'], { cwd: lab.dir }).code).toBe(2);
  });

  it('writes aimed at sub1\'s replicated table are refused unless --force, naming the subscription and the conflict', async () => {
    const csv = path.join(lab.dir, 'items.csv');
    fs.writeFileSync(csv, 'id,v\n90001,local\n');
    const refused = cli(['import', 'items', csv, '--node', 'sub1'], { cwd: lab.dir });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('import items on sub1: public.items is replicated there by subscription "s1" from pub');
    expect(refused.stderr).toContain('duplicate key and stops s1');
    expect(refused.stderr).toContain('--force');
    expect(await onNode(lab, 'sub1', 'select count(*)::int as n from items where id = 90001')).toEqual([{ n: 0 }]);
    const script = path.join(lab.dir, 'w.sql');
    fs.writeFileSync(script, "\\set id random(90001, 90002)\nUPDATE items SET v = 'x' WHERE id = :id;\n");
    const load = cli(['load', 'custom', script, '--node', 'sub1', '-t', '1'], { cwd: lab.dir });
    expect(load.code).toBe(2);
    expect(load.stderr).toContain('load custom on sub1: public.items is replicated there by subscription "s1"');
    // Reads are fine, and the publisher is where writes belong.
    fs.writeFileSync(script, 'SELECT count(*) FROM items;\n');
    expect(cli(['load', 'custom', script, '--node', 'sub1', '-t', '1'], { cwd: lab.dir }).code).toBe(0);
    const forced = cli(['import', 'items', csv, '--node', 'sub2', '--force'], { cwd: lab.dir });
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toContain('warning: import items on sub2: public.items is replicated there by subscription "s2"');
    await onNode(lab, 'sub2', 'delete from items where id = 90001');
  });

  it('a paused subscription: verify says it is disabled, without waiting', async () => {
    expect(cli(['replication', 'pause', 's1'], { cwd: lab.dir }).code).toBe(0);
    await onNode(lab, 'pub', 'insert into items values (5000, $$late$$)');
    const v = await labVerify(lab.config(), { waitMs: 30_000, maxKeys: 5 });
    expect(v.ok).toBe(false);
    expect(v.caughtUp.find((c) => c.subscription === 's1')).toMatchObject({ caughtUp: false, waitedMs: 0 });
    expect(v.causes[0]).toMatch(/^s1: the subscription is disabled on sub1, \d+ bytes of WAL behind; `prodhome replication resume s1` enables it$/);
    expect(v.causes).toContain('sub1 public.items: 1 row missing on sub1 (keys 5000)');
    expect(cli(['replication', 'status'], { cwd: lab.dir }).stdout).toContain('s1 fix: prodhome replication resume s1');
    expect(cli(['replication', 'resume', 's1'], { cwd: lab.dir }).code).toBe(0);
    expect((await labVerify(lab.config(), { waitMs: 30_000, maxKeys: 5 })).ok).toBe(true);
  });

  it('a duplicate-key conflict: replication status shows the worker\'s real error, matched by pid, with its time', async () => {
    await onNode(lab, 'sub1', 'insert into items values (6000, $$local$$)');
    await onNode(lab, 'pub', 'insert into items values (6000, $$from pub$$)');
    const s1 = await waitFor(async () => {
      const s = (await labReplicationStatus(lab.config())).find((x) => x.subscription === 's1')!;
      return s.lastError?.includes('duplicate key') ? s : undefined;
    }, 20_000, 's1 to fail on the duplicate key');
    expect(s1.lastError).toMatch(/^at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \((its worker, pid|worker pid) \d+.*\) ERROR: duplicate key value violates unique constraint "items_pkey" — Key \(id\)=\(6000\) already exists\.$/);
    expect(s1.errors[0]!.pid).toBeGreaterThan(0);
    expect(cli(['replication', 'resolve', 's1', '--delete-local'], { cwd: lab.dir }).code).toBe(0);
    expect((await labVerify(lab.config(), { waitMs: 30_000, maxKeys: 5 })).ok).toBe(true);
  });

  it('after replication drop, verify says the subscription is gone at once and why the summary is MISMATCH', async () => {
    expect(cli(['replication', 'drop', 's2'], { cwd: lab.dir }).code).toBe(0);
    const r = cli(['verify', '--json'], { cwd: lab.dir });
    expect(r.code).toBe(1);
    const v = JSON.parse(r.stdout);
    expect(v.caughtUp.find((c: { subscription: string }) => c.subscription === 's2')).toMatchObject({ caughtUp: false, waitedMs: 0 });
    expect(v.causes).toEqual([
      's2: there is no subscription "s2" on sub2 (`replication drop` or `replicate revert`?): its tables are not replicated; `prodhome replicate` creates it again',
    ]);
  });

  it('replication add inserts the new node (with the other subscribers\' caps) and subscription in the file\'s own style, changing nothing else', () => {
    const before = fs.readFileSync(lab.file, 'utf8');
    const r = cli(['replication', 'add', 's3', '--node', 'sub3', '--publication', 'p'], { cwd: lab.dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('prodhome.yaml: nodes.sub3: a new subscriber node (memory: 256MiB, as the lab\'s other subscribers)');
    const after = fs.readFileSync(lab.file, 'utf8');
    expect(after).toBe(
      before
        .replace('  sub2: { role: subscriber }\n', '  sub2: { role: subscriber }\n  sub3: { role: subscriber, memory: 256MiB }\n')
        .replace('  s2: { node: sub2, publications: [p] }\n', '  s2: { node: sub2, publications: [p] }\n  s3: { node: sub3, publications: [p] }\n'),
    );
    expect(readState(lab.config().stateDir)!.nodes.sub3).toBeDefined();
  });
});
