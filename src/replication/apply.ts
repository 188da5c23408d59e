import fs from 'node:fs';
import type { ReplicationConfig } from '../config/index.js';
import { ProdhomeError, messageOf } from '../errors.js';
import { writeFileSafe } from '../fsafe.js';
import { connect, type Sql } from '../pg/index.js';
import { withHeartbeat } from './heartbeat.js';
import { STAGES, emptyApplied, planStage, type AppliedState, type PlanContext, type PlanNode, type Problem, type Step } from './plan/index.js';

export interface ReplicationEnv {
  config: ReplicationConfig;
  nodes: Map<string, PlanNode>;
  /** replication.json in the lab's state dir. */
  stateFile: string;
  replicationPassword: (publisher: string) => string;
  hasReplicationPassword: (publisher: string) => boolean;
  restart: (node: string) => Promise<void>;
  log?: (line: string) => void;
}

export interface StepReport {
  node: string;
  reason: string;
  show: string;
  kind: Step['kind'];
}

export interface ApplyResult {
  steps: StepReport[];
  problems: Problem[];
}

export function readApplied(stateFile: string): AppliedState {
  try {
    return { ...emptyApplied(), ...JSON.parse(fs.readFileSync(stateFile, 'utf8')) };
  } catch {
    return emptyApplied();
  }
}

export function writeApplied(stateFile: string, applied: AppliedState): void {
  writeFileSafe(stateFile, `${JSON.stringify(applied, null, 2)}\n`);
}

/** One pool per node for the whole run, closed at the end. */
export function pools(nodes: Map<string, PlanNode>, settingsOf: (node: PlanNode) => Record<string, string> | undefined = () => undefined): { sql: (node: string) => Sql; end: () => Promise<void> } {
  const open = new Map<string, Sql>();
  return {
    sql: (node) => {
      let s = open.get(node);
      if (!s) {
        const n = nodes.get(node);
        if (!n) throw new Error(`no connection for node ${node}`);
        s = connect(n.connection, { max: 2, settings: settingsOf(n) });
        open.set(node, s);
      }
      return s;
    },
    end: async () => {
      await Promise.all([...open.values()].map((s) => s.end({ timeout: 2 })));
      open.clear();
    },
  };
}

const report = (s: Step): StepReport => ({ node: s.node, reason: s.reason, show: s.show, kind: s.kind });

/** Renders problems as one ProdhomeError: each names the node, what is wrong and the fix. */
export function problemsError(problems: Problem[]): ProdhomeError {
  const lines = problems.map((p) => `${p.node}: ${p.what}.\n    Fix: ${p.fix}.`);
  return new ProdhomeError('REPLICATION_PREFLIGHT', `replication preflight found ${problems.length} problem${problems.length > 1 ? 's' : ''}:\n  ${lines.join('\n  ')}`, {
    hint: 'Nothing was changed by this stage. `prodhome replicate check` lists the problems again.',
  });
}

/**
 * Plans and applies stage by stage. With dryRun, only plans (later stages see the servers as
 * they are, so steps that depend on earlier ones are shown as what they will do). A failure
 * undoes this run's steps in reverse; what cannot be undone is named in the error.
 */
export async function applyReplication(env: ReplicationEnv, { dryRun = false, checkOnly = false, all = false } = {}): Promise<ApplyResult> {
  // The whole plan is only ever shown, never applied over what exists.
  if (all) dryRun = true;
  const applied = readApplied(env.stateFile);
  const db = pools(env.nodes);
  // The heartbeat table rides along with every subscribed publication (see heartbeat.ts).
  const ctx: PlanContext = { config: withHeartbeat(env.config), nodes: env.nodes, sql: db.sql, replicationPassword: env.replicationPassword, hasReplicationPassword: env.hasReplicationPassword, restart: env.restart, applied, dryRun, all };
  const done: Step[] = [];
  const steps: StepReport[] = [];
  const problems: Problem[] = [];
  try {
    for (const stage of STAGES) {
      const plan = await planStage(stage, ctx);
      problems.push(...plan.problems);
      steps.push(...plan.steps.map(report));
      if (dryRun || checkOnly) continue;
      if (plan.problems.length) throw problemsError(plan.problems);
      for (const step of plan.steps) {
        env.log?.(`${step.node}: ${step.reason}`);
        try {
          await step.exec(ctx);
        } catch (e) {
          throw new ProdhomeError('REPLICATION_FAILED', `${step.node}: ${step.reason} — failed: ${pgMessage(e)}\n  while running: ${step.show.split('\n')[0]}`, {
            hint: 'Fix the cause and run `prodhome replicate` again (or `prodhome up`).',
          });
        }
        done.push(step);
        step.record?.(applied);
      }
    }
    if (!dryRun && !checkOnly) writeApplied(env.stateFile, applied);
    return { steps, problems };
  } catch (e) {
    const remains = await undo(done, ctx);
    if (e instanceof ProdhomeError && remains.length) {
      throw new ProdhomeError(e.code, `${e.message}\n  Undone: everything this run created${remains.length ? `, except: ${remains.join('; ')}` : ''}.`, { hint: e.hint });
    }
    throw e;
  } finally {
    await db.end();
  }
}

async function undo(done: Step[], ctx: PlanContext): Promise<string[]> {
  const remains: string[] = [];
  for (const step of [...done].reverse()) {
    if (step.undo) {
      try {
        await step.undo(ctx);
      } catch (e) {
        remains.push(`${step.node}: could not undo "${step.show.split('\n')[0]}": ${messageOf(e)}`);
      }
    } else if (step.remains) remains.push(step.remains);
  }
  return remains;
}

/** A Postgres error with its detail and hint, as one line. */
export function pgMessage(e: unknown): string {
  const err = e as { message?: string; detail?: string; hint?: string };
  return [err.message ?? String(e), err.detail ? `(${err.detail})` : '', err.hint ? `Hint: ${err.hint}` : ''].filter(Boolean).join(' ');
}
