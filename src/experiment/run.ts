import crypto from 'node:crypto';
import type { LabConfig } from '../config/index.js';
import { ProdhomeError, messageOf } from '../errors.js';
import { annotate, endAnnotation } from '../faults/index.js';
import { labFault, labFaultClear, labReplicationStatus, labVerify, loadReporter, nodeConnection, readState } from '../lab/index.js';
import type { ConnectionInfo } from '../pg/index.js';
import type { VerifyResult } from '../replication/index.js';
import { prepareLoad, runPrepared, type LoadOptions, type LoadSummary } from '../workload/index.js';
import type { Comparator, Experiment, LoadSpec, Probe, Step } from './types.js';

/**
 * Runs an experiment on a lab, Chaos Toolkit's way: the steady state is probed first (a lab that
 * is not steady is not experimented on), then the method's steps run in file order, each at its
 * `at:` offset; then cleanup — every load it started stopped, every fault it started cleared —
 * runs always (a failed step, an error, Ctrl-C); then the steady state is probed again. Every
 * phase and step is an annotation in the metrics store and an entry in the journal.
 */

export type Phase = 'before' | 'method' | 'cleanup' | 'after';

export interface JournalEntry {
  phase: Phase;
  /** The file line of the step or probe (0: not from the file, such as cleanup). */
  line: number;
  text: string;
  /** The step's planned offset from the method's start, ms. */
  atMs?: number;
  start: string;
  end?: string;
  status: 'ok' | 'failed' | 'error' | 'running' | 'interrupted';
  result: string;
  evidence?: unknown;
}

export interface LoadRecord {
  name: string;
  workload: string;
  node: string;
  line: number;
  start: string;
  end?: string;
  summary?: LoadSummary;
  error?: string;
}

export interface Journal {
  runId: string;
  experiment: { name: string; description: string; source: string; scale: number };
  lab: string;
  startedAt: string;
  endedAt?: string;
  status: 'passed' | 'failed' | 'interrupted' | 'error';
  /** Why it did not pass: one line per failed check or step. */
  failures: string[];
  entries: JournalEntry[];
  loads: LoadRecord[];
  faults: { id: string; kind: string; target: string; start: string; end?: string }[];
  /** The last verify's result: the strongest evidence there is. */
  verify?: VerifyResult;
}

export interface RunOptions {
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Called after every journal change (the CLI writes it to disk as it goes). */
  onJournal?: (j: Journal) => void;
}

class Interrupted extends Error {}

export function newRunId(name: string, at = new Date()): string {
  return `${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${name}-${crypto.randomBytes(2).toString('hex')}`;
}

export async function runExperiment(config: LabConfig, exp: Experiment, opts: RunOptions = {}): Promise<Journal> {
  const log = opts.log ?? (() => {});
  const signal = opts.signal ?? new AbortController().signal;
  const state = readState(config.stateDir);
  if (!state) throw new ProdhomeError('LAB_NOT_UP', `lab "${config.lab}" has not been brought up here`, { hint: 'Run `prodhome up` first.' });
  const store: ConnectionInfo | undefined = config.metrics.store && state.nodes[config.metrics.store] ? nodeConnection(config, config.metrics.store) : undefined;
  const journal: Journal = {
    runId: newRunId(exp.name),
    experiment: { name: exp.name, description: exp.description, source: exp.source, scale: exp.scale },
    lab: config.lab,
    startedAt: new Date().toISOString(),
    status: 'passed',
    failures: [],
    entries: [],
    loads: [],
    faults: [],
  };
  const changed = () => opts.onJournal?.(journal);
  const warn = (l: string) => log(`warning: ${l}`);
  const note = async (text: string, start: Date, end?: Date, tags: Record<string, string> = {}) =>
    annotate(store, { time: start, ...(end ? { end } : {}), kind: 'experiment', text: `${exp.name}: ${text}`, tags: { experiment: exp.name, run: journal.runId, lab: config.lab, ...tags } }, warn);

  const running: { spec: LoadSpec; stop: AbortController; done: Promise<void>; record: LoadRecord; live: Record<string, number> }[] = [];
  const faultIds: string[] = [];
  const errorsSeen = (sqlstate?: string) => {
    let n = 0;
    for (const r of running) {
      const counts = r.record.summary ? Object.fromEntries(r.record.summary.errors.map((e) => [e.code, e.count])) : r.live;
      for (const [code, c] of Object.entries(counts)) if (!sqlstate || code === sqlstate) n += c;
    }
    return n;
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(new Interrupted());
      const t = setTimeout(() => (signal.removeEventListener('abort', onAbort), resolve()), Math.max(0, ms));
      const onAbort = () => (clearTimeout(t), reject(new Interrupted()));
      signal.addEventListener('abort', onAbort, { once: true });
    });

  /** One journal entry around `fn`; its annotation spans the step. */
  const step = async (phase: Phase, line: number, text: string, fn: () => Promise<{ ok: boolean; result: string; evidence?: unknown }>, atMs?: number) => {
    const start = new Date();
    const entry: JournalEntry = { phase, line, text, ...(atMs !== undefined ? { atMs } : {}), start: start.toISOString(), status: 'running', result: '' };
    journal.entries.push(entry);
    changed();
    log(`[${phase}] ${text}`);
    const id = await note(`${phase}: ${text}`, start, undefined, { phase });
    try {
      const r = await fn();
      entry.status = r.ok ? 'ok' : 'failed';
      entry.result = r.result;
      if (r.evidence !== undefined) entry.evidence = r.evidence;
      if (!r.ok) journal.failures.push(`line ${line}: ${text} — ${r.result}`);
      log(`  ${r.ok ? 'ok' : 'FAILED'}: ${r.result}`);
      return r.ok;
    } catch (e) {
      entry.status = e instanceof Interrupted ? 'interrupted' : 'error';
      entry.result = e instanceof Interrupted ? 'interrupted (Ctrl-C)' : messageOf(e);
      if (!(e instanceof Interrupted)) journal.failures.push(`line ${line}: ${text} — ${entry.result}`);
      log(`  ${entry.status}: ${entry.result}`);
      throw e;
    } finally {
      entry.end = new Date().toISOString();
      await endAnnotation(store, id, new Date(), warn);
      changed();
    }
  };

  const probe = async (p: Probe): Promise<{ ok: boolean; result: string; evidence?: unknown }> => {
    const deadline = Date.now() + p.withinMs;
    for (;;) {
      const r = await checkOnce(p);
      if (r.ok || Date.now() >= deadline) return r.ok || !p.withinMs ? r : { ...r, result: `${r.result} (still, after ${Math.round(p.withinMs / 1000)} s)` };
      await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
    }
  };

  const checkOnce = async (p: Probe): Promise<{ ok: boolean; result: string; evidence?: unknown }> => {
    switch (p.kind) {
      case 'verify': {
        const v = await retrying(() => labVerify(config, { waitMs: p.withinMs, maxKeys: 10 }), p.withinMs);
        journal.verify = v;
        const bad = v.tables.filter((t) => !t.match);
        const lagging = v.caughtUp.filter((c) => !c.caughtUp);
        const rows = v.tables.reduce((n, t) => n + t.publisherRows, 0);
        const result = v.ok
          ? `every row arrived: ${v.tables.length} table${v.tables.length === 1 ? '' : 's'}, ${rows} published rows, 0 missing, 0 extra, 0 changed`
          : [
              ...lagging.map((c) => `${c.subscription} did not catch up within ${Math.round(c.waitedMs / 1000)} s`),
              ...bad.map((t) => `${t.subscriber}.${t.table}: ${t.missing.length} missing, ${t.extra.length} extra, ${t.changed.length} changed${t.note ? ` (${t.note})` : ''}`),
            ].join('; ');
        return { ok: v.ok, result, evidence: { caughtUp: v.caughtUp, tables: v.tables.map((t) => ({ subscriber: t.subscriber, table: t.table, publisherRows: t.publisherRows, subscriberRows: t.subscriberRows, match: t.match, missing: t.missing, extra: t.extra, changed: t.changed })) } };
      }
      case 'caught-up':
        return caughtUp(p.withinMs);
      case 'stalled': {
        const subs = await labReplicationStatus(config).catch(() => []);
        const stalled = subs.filter((s) => s.conflict);
        return stalled.length
          ? { ok: true, result: `stalled: ${stalled.map((s) => `${s.subscription} (${s.conflict!.error}${s.conflict!.detail ? `; ${s.conflict!.detail}` : ''})`).join(', ')}`, evidence: stalled.map((s) => s.conflict) }
          : { ok: false, result: `no subscription reports an apply conflict (${subs.map((s) => `${s.subscription} ${s.state}`).join(', ') || 'none read'})` };
      }
      case 'lag': {
        const subs = await labReplicationStatus(config).catch((e: unknown) => new Error(messageOf(e)));
        if (subs instanceof Error) return { ok: false, result: `replication status unreadable: ${subs.message}` };
        const lags = subs.map((s) => ({ subscription: s.subscription, state: s.state, lagSeconds: s.state === 'streaming' || s.state === 'catching up' ? (s.lagSeconds.replay ?? s.lagSeconds.flush ?? 0) : null }));
        const worst = lags.some((l) => l.lagSeconds === null) ? Infinity : Math.max(0, ...lags.map((l) => l.lagSeconds!));
        const ok = compare(worst, p.op, p.seconds);
        const shown = lags.map((l) => `${l.subscription} ${l.lagSeconds === null ? l.state : `${l.lagSeconds.toFixed(3)} s`}`).join(', ');
        return { ok, result: `lag ${Number.isFinite(worst) ? `${worst.toFixed(3)} s` : 'unknown (not streaming)'} ${ok ? 'is' : 'is not'} ${p.op} ${p.seconds} s (${shown})`, evidence: lags };
      }
      case 'errors': {
        const n = errorsSeen(p.sqlstate);
        const ok = compare(n, p.op, p.count);
        const by: Record<string, number> = {};
        for (const r of running) for (const [code, c] of Object.entries(r.record.summary ? Object.fromEntries(r.record.summary.errors.map((e) => [e.code, e.count])) : r.live)) by[code] = (by[code] ?? 0) + c;
        return { ok, result: `${n} error${n === 1 ? '' : 's'}${p.sqlstate ? ` with SQLSTATE ${p.sqlstate}` : ''} in this experiment's loads; wanted ${p.op} ${p.count}`, evidence: { count: n, bySqlstate: by } };
      }
    }
  };

  /** Every subscription has applied what its publisher had when asked (verify's catch-up wait), retried while a node comes back. */
  const caughtUp = async (withinMs: number) => {
    const v = await retrying(() => labVerify(config, { waitMs: withinMs, maxKeys: 0 }), withinMs);
    const late = v.caughtUp.filter((c) => !c.caughtUp);
    return {
      ok: late.length === 0,
      result: late.length ? `not caught up within ${Math.round(withinMs / 1000)} s: ${late.map((c) => c.subscription).join(', ')}` : `caught up: ${v.caughtUp.map((c) => `${c.subscription} in ${(c.waitedMs / 1000).toFixed(1)} s`).join(', ')}`,
      evidence: v.caughtUp,
    };
  };

  /** A node that was just restarted refuses connections for a moment: try again until the limit. */
  const retrying = async <T>(fn: () => Promise<T>, withinMs: number): Promise<T> => {
    const deadline = Date.now() + Math.max(withinMs, 5000);
    for (;;) {
      try {
        return await fn();
      } catch (e) {
        if (Date.now() >= deadline || (e instanceof ProdhomeError && e.code === 'USAGE')) throw e;
        await sleep(1000);
      }
    }
  };

  const startLoad = async (s: Step & { kind: 'load' }) => {
    const spec = s.load;
    const node = spec.node ?? config.nodes.find((n) => n.role === 'publisher')!.name;
    const stop = new AbortController();
    const options: LoadOptions = {
      workload: spec.workload,
      options: spec.weights ? { weights: spec.weights } : {},
      node,
      connection: nodeConnection(config, node),
      clients: spec.clients,
      threads: spec.threads,
      rate: spec.rate,
      schedule: spec.schedule,
      seconds: spec.durationMs === undefined ? undefined : Math.max(1, Math.round(spec.durationMs / 1000)),
      seed: spec.seed,
      signal: stop.signal,
    };
    const record: LoadRecord = { name: spec.name, workload: spec.workload, node, line: s.line, start: new Date().toISOString() };
    const live: Record<string, number> = {};
    // A server that refuses the clients (53300, too many clients) is what this load's users would
    // meet: each client counts as one such error, and the experiment goes on.
    const refused = (e: unknown) => {
      const code = (e as { cause?: { code?: string } }).cause?.code ?? (e as { code?: string }).code;
      if (code !== '53300') return false;
      live['53300'] = (live['53300'] ?? 0) + spec.clients;
      record.error = messageOf(e);
      record.end = new Date().toISOString();
      return true;
    };
    let prepared;
    try {
      prepared = await prepareLoad(options);
    } catch (e) {
      if (!refused(e)) throw e;
      journal.loads.push(record);
      running.push({ spec, stop, done: Promise.resolve(), record, live });
      return { ok: true, result: `${spec.name}: the server refused its ${spec.clients} clients (53300 too many clients); counted as ${spec.clients} errors` };
    }
    const reporter = await loadReporter(config, node, prepared.name, warn, `experiment ${exp.name}: ${s.text}`);
    options.onSecond = (sec) => {
      for (const [code, n] of Object.entries(sec.errors)) live[code] = (live[code] ?? 0) + n;
      reporter.onSecond?.(sec);
    };
    journal.loads.push(record);
    const done = runPrepared(prepared, options)
      .then((summary) => void (record.summary = summary))
      .catch((e: unknown) => void (refused(e) || (record.error = messageOf(e))))
      .finally(async () => {
        record.end = new Date().toISOString();
        await reporter.close();
        changed();
      });
    running.push({ spec, stop, done, record, live });
    return { ok: true, result: `started ${spec.name}: ${prepared.name} on ${node}, ${prepared.clients} client${prepared.clients === 1 ? '' : 's'}${spec.rate ? ` at ${spec.rate} tx/s` : ''}${spec.schedule ? `, ${spec.schedule}` : ''}, ${options.seconds ? `${options.seconds} s` : 'until the experiment ends'}` };
  };

  const runStep = async (s: Step) => {
    switch (s.kind) {
      case 'load':
        return startLoad(s);
      case 'fault': {
        if (s.fault.clear) {
          const ids = [...faultIds];
          if (!ids.length) return { ok: true, result: 'no fault of this experiment is active' };
          const r = await labFaultClear(config, undefined, { log, only: (f) => ids.includes(f.id) });
          faultIds.length = 0;
          for (const c of r.cleared) {
            const f = journal.faults.find((x) => x.id === c.record.id);
            if (f) f.end = new Date().toISOString();
          }
          return { ok: true, result: r.cleared.length ? `cleared ${r.cleared.map((c) => `fault ${c.record.id} (${c.record.kind} ${c.record.args.target})`).join(', ')}` : 'the faults had ended by themselves', evidence: r.cleared.map((c) => ({ id: c.record.id, steps: c.steps })) };
        }
        const r = await labFault(config, s.fault.kind, s.fault.args, { log });
        if (r.record?.id && !r.already) {
          faultIds.push(r.record.id);
          journal.faults.push({ id: r.record.id, kind: s.fault.kind, target: s.fault.args.target, start: r.record.startedAt });
        } else journal.faults.push({ id: '', kind: s.fault.kind, target: s.fault.args.target, start: new Date().toISOString(), end: new Date().toISOString() });
        return { ok: true, result: r.steps.join('; '), evidence: r.record ? { id: r.record.id, summary: r.record.summary } : undefined };
      }
      case 'wait': {
        const w = s.wait;
        if (w.kind === 'time') {
          await sleep(w.ms);
          return { ok: true, result: `waited ${(w.ms / 1000).toFixed(1)} s` };
        }
        if (w.kind === 'loads') {
          // Ctrl-C ends the wait (and cleanup stops the loads).
          await new Promise<void>((resolve, reject) => {
            const onAbort = () => reject(new Interrupted());
            if (signal.aborted) return onAbort();
            signal.addEventListener('abort', onAbort, { once: true });
            void Promise.all(running.map((r) => r.done)).then(() => (signal.removeEventListener('abort', onAbort), resolve()));
          });
          const failed = running.filter((r) => r.record.error).map((r) => `${r.record.name}: ${r.record.error}`);
          return { ok: true, result: `every load ended (${running.length})${failed.length ? `; ${failed.join('; ')}` : ''}` };
        }
        return caughtUp(w.withinMs);
      }
      case 'assert':
        return probe(s.probe);
    }
  };

  const cleanup = async () => {
    const notes: string[] = [];
    // Loads are told to stop first, faults cleared next, and only then are the loads awaited: a
    // client waiting on a held lock (or a frozen node) finishes only once the fault is gone.
    for (const r of running) r.stop.abort();
    const stopped = running.filter((r) => !r.record.end).length;
    let failure: string | undefined;
    if (faultIds.length) {
      const ids = [...faultIds];
      try {
        const r = await labFaultClear(config, undefined, { log, only: (f) => ids.includes(f.id) });
        faultIds.length = 0;
        for (const c of r.cleared) {
          const f = journal.faults.find((x) => x.id === c.record.id);
          if (f) f.end = new Date().toISOString();
        }
        notes.push(`cleared ${r.cleared.length} fault${r.cleared.length === 1 ? '' : 's'} (${ids.join(', ')})`);
      } catch (e) {
        failure = `could not clear faults ${ids.join(', ')}: ${messageOf(e)}`;
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([Promise.all(running.map((r) => r.done)).then(() => true), new Promise<false>((res) => (timer = setTimeout(() => res(false), 30_000)))]);
    clearTimeout(timer);
    if (running.length) notes.unshift(`${stopped} load${stopped === 1 ? '' : 's'} stopped, ${running.length - stopped} had ended${ended ? '' : ' (some still finishing their last transaction after 30 s)'}`);
    if (failure) {
      throw new ProdhomeError('EXPERIMENT_CLEANUP', `experiment ${exp.name}: ${[...notes, failure].join('; ')}`, { hint: 'Run `prodhome fault list` and `prodhome fault clear`.' });
    }
    return { ok: true, result: notes.join('; ') || 'nothing to undo' };
  };

  const runStart = new Date();
  const whole = await note(`run ${journal.runId}`, runStart, undefined, { phase: 'run' });
  let cleaned = false;
  try {
    // The steady state first: an unsteady lab is not experimented on.
    let steady = true;
    for (const p of exp.steadyState) steady = (await step('before', p.line, `steady state: ${p.text}`, () => probe(p))) && steady;
    if (!steady) {
      journal.failures.push('the steady state did not hold before the method; the method was not run');
    } else {
      const t0 = Date.now();
      for (const s of exp.timeline) {
        if (s.atMs !== undefined) await sleep(t0 + s.atMs - Date.now());
        await step('method', s.line, s.text, () => runStep(s), s.atMs);
      }
    }
    cleaned = true;
    await step('cleanup', 0, 'stop loads, clear faults', cleanup);
    if (steady) for (const p of exp.steadyState) await step('after', p.line, `steady state: ${p.text}`, () => probe(p));
    journal.status = journal.failures.length ? 'failed' : 'passed';
  } catch (e) {
    journal.status = e instanceof Interrupted || signal.aborted ? 'interrupted' : 'error';
    if (journal.status === 'interrupted') journal.failures.push('interrupted (Ctrl-C) before the end');
    if (!cleaned) {
      cleaned = true;
      // Ctrl-C must not cut the cleanup short: a fresh signal-free run of it.
      await step('cleanup', 0, 'stop loads, clear faults', cleanup).catch(() => {}); // step() journals the failure
    }
    if (journal.status === 'error' && !(e instanceof ProdhomeError)) throw e;
  } finally {
    journal.endedAt = new Date().toISOString();
    await endAnnotation(store, whole, new Date(), warn);
    changed();
  }
  return journal;
}

function compare(a: number, op: Comparator, b: number): boolean {
  switch (op) {
    case '<': return a < b;
    case '<=': return a <= b;
    case '>': return a > b;
    case '>=': return a >= b;
    case '==': return a === b;
  }
}
