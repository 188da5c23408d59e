import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinNames, loadExperiment, parseExperiment, type Journal } from '../src/experiment/index.js';
import { HOLDER_APP, readFaults } from '../src/faults/index.js';
import { nodeConnection, readAgentStatus, readState } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { cgroupSupport, processAlive } from '../src/runtime/index.js';
import { CLI, IS_ROOT, cli, portRange, tempLab, waitFor, type TempLab } from './helpers.js';

const memoryCaps = () => IS_ROOT && cgroupSupport().usable;

// Experiments on a real lab: checked whole before anything starts (file:line), run end to end
// with verify's verdict, everything they started stopped and cleared afterwards — also on
// Ctrl-C — and a report that names each check with its evidence. Times are shortened with
// --duration-scale; the figures printed at the end are the issue's: faults survived, rows
// verified, rows lost.
const YAML = `lab: experiments
${portRange(59400)}nodes:
  publisher:
    role: publisher
    port: 59400
    max_connections: 40
    memory: 512MiB
    settings:
      wal_sender_timeout: 5s      # shorter than the partition experiment's cut at --duration-scale 0.2 (15 s)
  subscriber1:
    role: subscriber
    settings:
      wal_receiver_timeout: 5s
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

const figures = { faults: 0, rowsVerified: 0, rowsLost: 0 };
/** Per built-in run: what the test output and the README print. */
const perRun: { name: string; scale: number; faults: number; rowsVerified: number; rowsLost: number; asserts: number }[] = [];

/**
 * The built-ins end to end, each shortened: the four without a fault of their own (or with only
 * a slot) at 0.1, the fault ones at 0.2 (the partition's 15 s cut then outlasts the lab's 5 s
 * wal_sender_timeout / wal_receiver_timeout).
 */
const BUILTIN_RUNS: [string, number][] = [
  ['background-hum', 0.1],
  ['cyclic-load', 0.1],
  ['multi-cycle', 0.1],
  ['slot-bloat', 0.1],
  ['break-publisher', 0.2],
  ['subscriber-outage', 0.2],
  ['conflict', 0.2],
  ['tiny-server', 0.2],
  ['slow-link', 0.2],
  ['partition', 0.2],
];

describe('experiment files are checked whole before anything starts', () => {
  it('names every problem with file:line: unknown step, workload typo, -5s, unknown fault, bad check', () => {
    const text = [
      'name: broken',
      'timeline:',
      '  - at: 0s',
      '    load: {workload: insertr, clients: 4}',
      '  - at: -5s',
      '    fault: kill publisher',
      '  - explode: now',
      '  - fault: frezee publisher',
      '  - assert: lagg < 5s',
      '',
    ].join('\n');
    let message = '';
    try {
      parseExperiment(text, 'broken.yaml', 'broken.yaml');
    } catch (e) {
      message = (e as Error).message;
      expect((e as { exitCode?: number }).exitCode).toBe(2);
    }
    expect(message).toContain('broken.yaml:4: timeline[0].load.workload: unknown workload "insertr" (did you mean inserter?)');
    expect(message).toContain('broken.yaml:5: timeline[1].at: "-5s" is not a duration');
    expect(message).toContain('broken.yaml:7: timeline[2]: unknown key "explode"');
    expect(message).toContain('broken.yaml:8: timeline[3].fault: unknown fault "frezee" (did you mean freeze?)');
    expect(message).toContain('broken.yaml:9: timeline[4].assert: "lagg < 5s" is not a check');
  });

  it('scales every time by --duration-scale; a within limit never below 10 s', () => {
    const e = parseExperiment('name: s\ntimeline:\n  - at: 30s\n    load: {workload: inserter, duration: 60s}\n  - wait: 20s\n  - fault: lock publisher books --for 40s\n  - assert: lag < 5s within 300s\n  - assert: verify within 30s\n', 's.yaml', 's.yaml', { scale: 0.1 });
    const [load, wait, lock, lag, verify] = e.timeline;
    expect(load).toMatchObject({ atMs: 3000, load: { durationMs: 6000 } });
    expect(wait).toMatchObject({ wait: { kind: 'time', ms: 2000 } });
    expect(lock).toMatchObject({ fault: { kind: 'lock', args: { target: 'publisher', table: 'books', forMs: 4000 } } });
    expect(lag).toMatchObject({ probe: { kind: 'lag', seconds: 5, withinMs: 30_000 } });
    expect(verify).toMatchObject({ probe: { kind: 'verify', withinMs: 10_000 } });
  });

  it('refuses two books writers at once on one node (they would insert the same ids)', () => {
    const text = 'name: w\ntimeline:\n  - load: {name: a, workload: inserter}\n  - load: {name: b, workload: mixed}\n  - load: {name: c, workload: read}\n  - wait: loads\n  - load: {name: d, workload: inserter}\n';
    expect(() => parseExperiment(text, 'w.yaml', 'w.yaml')).toThrow(/w\.yaml:4: load b: a second books writer on the default node \(the first publisher\) while a \(line 3\) runs/);
    expect(() => parseExperiment(text.replace('workload: mixed', 'workload: read'), 'w.yaml', 'w.yaml')).not.toThrow();
  });

  it('every built-in experiment parses', () => {
    expect(builtinNames()).toEqual(expect.arrayContaining(['background-hum', 'cyclic-load', 'break-publisher', 'subscriber-outage', 'tiny-server', 'conflict', 'slot-bloat']));
    for (const name of builtinNames()) expect(loadExperiment(name).name).toBe(name);
  });
});

describe('experiments on a real lab', () => {
  let lab: TempLab;
  const run = (args: string[]) => cli(['experiment', ...args], { cwd: lab.dir });
  const runs = () => path.join(lab.config().stateDir, 'experiments');
  const journalOf = (stdout: string): Journal => {
    const id = /\(run (\S+)\)/.exec(stdout)?.[1];
    expect(id, stdout).toBeTruthy();
    return JSON.parse(fs.readFileSync(path.join(runs(), id!, 'summary.json'), 'utf8')) as Journal;
  };
  /** Nothing the experiment started is left: no fault recorded, no holder or load session on the publisher. */
  const nothingLeft = async () => {
    expect(readFaults(lab.config().stateDir).faults).toEqual([]);
    const sessions = await withConnection(nodeConnection(lab.config(), 'publisher'), (sql) =>
      sql<{ application_name: string }[]>`select application_name from pg_stat_activity where application_name in (${HOLDER_APP}, 'prodhome load')`);
    expect(sessions).toEqual([]);
  };
  const count = (j: Journal) => {
    const mine = { faults: j.faults.filter((f) => f.end).length, rowsVerified: 0, rowsLost: 0 };
    for (const t of j.verify?.tables ?? []) {
      mine.rowsVerified += t.subscriberRows;
      mine.rowsLost += Math.max(t.missing.length, t.publisherRows - t.subscriberRows, 0);
    }
    figures.faults += mine.faults;
    figures.rowsVerified += mine.rowsVerified;
    figures.rowsLost += mine.rowsLost;
    return mine;
  };
  const logOf = (node: string) => {
    const n = readState(lab.config().stateDir)!.nodes[node]!;
    return n.runtime === 'local' ? n.logFile : '';
  };
  const sizeOf = (f: string) => (f && fs.existsSync(f) ? fs.statSync(f).size : 0);
  const since = (f: string, at: number) => (f && fs.existsSync(f) ? fs.readFileSync(f).subarray(at).toString('utf8') : '');

  let agentAtStart: number | undefined;
  beforeAll(async () => {
    lab = tempLab(YAML);
    // Through the CLI, as a user would: a postmaster started from this test process and then
    // killed (break-publisher) would stay its zombie, and Postgres would take it for running.
    const up = cli(['up'], { cwd: lab.dir });
    expect(up.code, up.stderr).toBe(0);
    agentAtStart = readAgentStatus(lab.config().stateDir)?.pid;
  }, 180_000);

  afterAll(async () => {
    await lab?.cleanup();
    const rows = perRun.map((r) => `  ${r.name.padEnd(18)} ×${String(r.scale).padEnd(4)} faults survived ${r.faults}, checks passed ${r.asserts}, rows verified ${String(r.rowsVerified).padStart(5)}, rows lost ${r.rowsLost}`);
    console.log(`built-in experiments end to end:\n${rows.join('\n')}`);
    console.log(`experiments: faults survived ${figures.faults}, rows verified ${figures.rowsVerified}, rows lost ${figures.rowsLost}`);
  }, 120_000);

  it('a broken file against the lab: exit 2, file:line, nothing started', () => {
    fs.writeFileSync(path.join(lab.dir, 'bad.yaml'), 'name: bad\ntimeline:\n  - fault: kill subscriber9\n  - load: {workload: inserter, node: publsher}\n');
    const r = run(['run', 'bad.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('bad.yaml:3: fault kill: no node subscriber9');
    expect(r.stderr).toContain('bad.yaml:4: load.node: no node publsher (did you mean publisher?)');
    expect(r.stderr).toContain('nothing was started');
    expect(fs.existsSync(runs())).toBe(false);
    expect(readFaults(lab.config().stateDir).faults).toEqual([]);
  });

  for (const [name, scale] of BUILTIN_RUNS) {
    it(`${name} runs end to end (--duration-scale ${scale}): verify finds 0 lost rows, nothing is left behind`, async () => {
      if (name === 'tiny-server' && !memoryCaps()) {
        const reason = 'tiny-server needs cgroup memory caps (Linux, root): skipped';
        if (process.env.CI === 'true') throw new Error(reason);
        console.warn(reason);
        return;
      }
      const faultsLog = path.join(lab.config().stateDir, 'faults.log');
      const marks = { publisher: sizeOf(logOf('publisher')), subscriber1: sizeOf(logOf('subscriber1')), faults: sizeOf(faultsLog) };
      const r = run(['run', name, '--duration-scale', String(scale)]);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      const j = journalOf(r.stdout);
      const mine = count(j);
      // summary.json says what happened: passed, each check ok, each fault it started over.
      expect(j.status).toBe('passed');
      expect(j.failures).toEqual([]);
      const experiment = loadExperiment(name);
      const injected = experiment.timeline.filter((s) => s.kind === 'fault' && !s.fault.clear).length;
      expect(j.faults.length).toBe(injected);
      expect(j.faults.every((f) => f.end)).toBe(true);
      const asserts = j.entries.filter((e) => e.text.startsWith('assert:'));
      expect(asserts.length).toBe(experiment.timeline.filter((s) => s.kind === 'assert').length);
      expect(asserts.every((e) => e.status === 'ok')).toBe(true);
      perRun.push({ name, scale, ...mine, asserts: asserts.length });
      expect(mine.rowsLost).toBe(0);
      expect(j.verify?.ok).toBe(true);
      expect(j.verify!.tables.every((t) => t.missing.length === 0 && t.extra.length === 0 && t.changed.length === 0)).toBe(true);
      expect(j.loads[0]!.summary!.transactions).toBeGreaterThan(0);
      if (name === 'tiny-server') expect(j.entries.find((e) => e.text === 'assert: errors{sqlstate=53300} > 0')).toMatchObject({ status: 'ok' });
      if (name === 'conflict') expect(j.entries.find((e) => e.text.startsWith('assert: stalled'))?.result).toContain('duplicate key');
      if (name === 'partition') {
        // The cut went into the streaming link and outlasted both timeouts: each end gave up by
        // itself (their own logs say so), and the link came back with no command run.
        const cut = j.entries.find((e) => e.text.startsWith('fault: net subscriber1 --partition'));
        expect(cut?.result).toMatch(/cut into the streaming link/);
        expect(cut?.result).toMatch(/wal_sender_timeout 5 s, subscriber1's wal_receiver_timeout 5 s: longer than both/);
        expect(since(logOf('publisher'), marks.publisher)).toContain('terminating walsender process due to replication timeout');
        expect(since(logOf('subscriber1'), marks.subscriber1)).toContain('terminating logical replication worker due to timeout');
        // It ended by its own time, in place (not by a clear), and the link streamed again through it.
        expect(since(faultsLog, marks.faults)).toMatch(/partition over after [\d.]+ s \(its time ran out\)[\s\S]*the link streams again through the proxy/);
      }

      const phases = loadExperiment(name).steadyState.length ? ['before', 'method', 'cleanup', 'after'] : ['method', 'cleanup'];
      expect([...new Set(j.entries.map((e) => e.phase))]).toEqual(phases);
      expect(j.entries.every((e) => e.end && e.status === 'ok')).toBe(true);
      expect(r.stdout).toMatch(/rows lost 0/);
      await nothingLeft();
      // Every phase and step is an annotation in the metrics store, each with an end.
      const notes = await withConnection(nodeConnection(lab.config(), 'metrics'), (sql) =>
        sql<{ text: string; end: Date | null }[]>`select text, "end" from metrics.annotations where kind = 'experiment' and tags->>'run' = ${j.runId} order by id`);
      expect(notes.length).toBe(j.entries.length + 1); // the run itself, then one per journal entry
      expect(notes.every((n) => n.end !== null)).toBe(true);
      expect(notes.map((n) => n.text)).toEqual(expect.arrayContaining([`${name}: run ${j.runId}`, `${name}: cleanup: stop loads, clear faults`]));
      // The report: three files; the checks with their evidence.
      const dir = path.join(runs(), j.runId);
      for (const f of ['summary.json', 'report.md', 'report.html']) expect(fs.existsSync(path.join(dir, f))).toBe(true);
      const md = fs.readFileSync(path.join(dir, 'report.md'), 'utf8');
      expect(md).toContain('assert: verify');
      for (const step of j.entries.filter((e) => e.text.startsWith('assert:'))) expect(md).toContain(step.text);
      expect(md).toContain('0 missing, 0 extra, 0 changed');
      const html = fs.readFileSync(path.join(dir, 'report.html'), 'utf8');
      expect(html).toContain('assert: verify');
      expect(html).toContain('<svg'); // charts from the metrics store
      expect(html).not.toMatch(/<script|src="http|href="http/); // self-contained
    }, 300_000);
  }

  it('a failed check: exit 1, naming which and why; the report says it too', async () => {
    fs.writeFileSync(path.join(lab.dir, 'fails.yaml'), 'name: fails\ntimeline:\n  - load: {workload: inserter, clients: 1, rate: 20, duration: 2s}\n  - wait: loads\n  - assert: errors{sqlstate=53300} > 0\n  - assert: verify\n');
    const r = run(['run', 'fails.yaml']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('experiment fails failed');
    expect(r.stderr).toContain('line 5: assert: errors{sqlstate=53300} > 0 — 0 errors with SQLSTATE 53300');
    const j = journalOf(r.stdout);
    count(j);
    expect(j.status).toBe('failed');
    expect(j.verify?.ok).toBe(true); // the steps after a failed check still ran
    expect(fs.readFileSync(path.join(runs(), j.runId, 'report.md'), 'utf8')).toContain('## What failed');
    const again = run(['report', j.runId]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('FAILED');
  }, 120_000);

  it('Ctrl-C: the load stops, the faults are cleared, the journal says interrupted', async () => {
    fs.writeFileSync(
      path.join(lab.dir, 'long.yaml'),
      'name: long\ntimeline:\n  - load: {name: forever, workload: inserter, clients: 2, rate: 20}\n  - fault: connections publisher --hold 3\n  - fault: lock publisher books --for 5m\n  - wait: 10m\n',
    );
    const child = spawn(process.execPath, [CLI, 'experiment', 'run', 'long.yaml'], { cwd: lab.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor(() => readFaults(lab.config().stateDir).faults.length === 2 && err.includes('[method] wait: 10m'), 60_000, 'both faults active and the wait begun');
    child.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 60_000))]);
    if (code === 'hung') child.kill('SIGKILL');
    expect(code, err).toBe(130);
    const j = journalOf(out);
    count(j);
    expect(j.status).toBe('interrupted');
    expect(j.entries.find((e) => e.phase === 'cleanup')).toMatchObject({ status: 'ok' });
    expect(j.loads[0]!.summary?.stoppedBy).toBe('interrupted');
    expect(j.faults.every((f) => f.end)).toBe(true);
    await nothingLeft();
  }, 120_000);

  it('the agent lived through every experiment (the same process, still running)', () => {
    const pid = readAgentStatus(lab.config().stateDir)?.pid;
    expect(agentAtStart).toBeDefined();
    expect(pid).toBe(agentAtStart);
    expect(processAlive(pid!)).toBe(true);
  });
});
