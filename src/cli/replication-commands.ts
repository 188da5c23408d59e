import type { Command } from 'commander';
import { durationOption } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import {
  addSubscriptionToConfig, labDropSubscriptions, labReplicate, labResolve, labReplicationStatus, labResync, labRevert, labSetSubscriptionEnabled, labUp, labVerify,
} from '../lab/index.js';
import type { ApplyResult, OperationReport, SubscriptionStatus, VerifyResult } from '../replication/index.js';
import { sleep } from '../runtime/index.js';
import { printJson, table } from './render.js';
import { configFrom } from './shared.js';

/** replicate, verify, replication status|pause|resume. */
export function registerReplicationCommands(program: Command): void {
  program
    .command('replicate')
    .description('plan and apply publications and subscriptions from the config (up does this too); `replicate check` runs only the preflight; `replicate revert` removes it all and restores settings')
    .argument('[what]', '"check" for preflight only, "revert" to undo')
    .option('--dry-run', 'print every step and its SQL without changing anything')
    .option('--all', 'with --dry-run: the whole plan, as if nothing were in place yet (a lab that is up shows its full procedure)')
    .option('--json', 'print the result as JSON')
    .action(async (what: string | undefined, opts: { dryRun?: boolean; all?: boolean; json?: boolean }, cmd: Command) => {
      if (opts.all && (!opts.dryRun || what !== undefined)) throw new ProdhomeError('USAGE', '--all goes with --dry-run only: the whole plan is shown, never applied over what exists', { hint: 'Run: prodhome replicate --dry-run --all' });
      if (what !== undefined && what !== 'check' && what !== 'revert') throw new ProdhomeError('USAGE', `unknown replicate action "${what}" (expected: check or revert)`);
      if (what === 'revert') {
        const report = await labRevert(configFrom(cmd), (l) => process.stderr.write(`${l}\n`));
        return opts.json ? printJson(report) : console.log(renderReport(report));
      }
      const checkOnly = what === 'check';
      const result = await labReplicate(configFrom(cmd), { dryRun: opts.dryRun, all: opts.all, checkOnly, log: opts.json ? undefined : (l) => process.stderr.write(`${l}\n`) });
      if (opts.json) return printJson(result);
      if (checkOnly) {
        if (!result.problems.length) return console.log('preflight: no problems found.');
        for (const p of result.problems) console.log(`${p.node}: ${p.what}.\n    Fix: ${p.fix}.`);
        process.exitCode = 2;
        return;
      }
      console.log(renderPlan(result, opts.all ? 'plan from scratch (nothing applied; settings as they are now)' : opts.dryRun ? 'plan (nothing applied)' : 'applied'));
      if (opts.dryRun && !opts.all && !result.steps.length) console.log('(`prodhome replicate --dry-run --all` shows the whole plan, as if nothing were in place yet)');
    });

  program
    .command('verify')
    .description('prove every row arrived: counts and checksums per subscription and table')
    .option('--wait <duration>', 'how long to wait for subscriptions to catch up first', '30s')
    .option('--max-keys <n>', 'primary keys to show per mismatch', (v) => Number(v), 10)
    .option('--json', 'print the result as JSON')
    .action(async (opts: { wait: string; maxKeys: number; json?: boolean }, cmd: Command) => {
      const result = await labVerify(configFrom(cmd), { waitMs: durationOption(opts.wait, '--wait'), maxKeys: opts.maxKeys });
      if (opts.json) printJson(result);
      else console.log(renderVerify(result));
      if (!result.ok) process.exitCode = 1;
    });

  const replication = program.command('replication').description('inspect and operate subscriptions');
  replication
    .command('status')
    .description('per subscription: state, worker, lag in bytes and seconds, slot, table sync, errors')
    .option('--json', 'print as JSON')
    .option('--watch [seconds]', 'refresh every N seconds (default 2) until Ctrl-C')
    .action(async (opts: { json?: boolean; watch?: boolean | string }, cmd: Command) => {
      const config = configFrom(cmd);
      for (;;) {
        const status = await labReplicationStatus(config);
        if (opts.json) printJson(status);
        else {
          if (opts.watch) process.stdout.write('\x1b[2J\x1b[H');
          console.log(renderStatus(status));
        }
        if (!opts.watch) return;
        await sleep((typeof opts.watch === 'string' ? Number(opts.watch) : 2) * 1000);
      }
    });
  for (const [verb, enabled] of [['pause', false], ['resume', true]] as const) {
    replication
      .command(verb)
      .description(`${enabled ? 'enable' : 'disable'} a subscription (ALTER SUBSCRIPTION … ${enabled ? 'ENABLE' : 'DISABLE'})`)
      .argument('<subscription>')
      .action(async (name: string, _opts: unknown, cmd: Command) => {
        console.log(await labSetSubscriptionEnabled(configFrom(cmd), name, enabled));
      });
  }
  replication
    .command('drop')
    .description('drop a subscription (or all) and its slot — cleanly, even when the publisher is down')
    .argument('[subscription]')
    .action(async (name: string | undefined, _opts: unknown, cmd: Command) => {
      console.log(renderReport(await labDropSubscriptions(configFrom(cmd), name)));
    });
  replication
    .command('resync')
    .description("copy a subscription's tables (or one table) afresh from the publisher")
    .argument('<subscription>')
    .argument('[table]', 'table or schema.table')
    .action(async (name: string, table: string | undefined, _opts: unknown, cmd: Command) => {
      console.log(renderReport(await labResync(configFrom(cmd), name, table)));
    });
  replication
    .command('resolve')
    .description("unstall a subscription's apply conflict: --delete-local removes the subscriber's conflicting rows, --skip skips the failed transaction (its rows stay missing)")
    .argument('<subscription>')
    .option('--skip', 'ALTER SUBSCRIPTION … SKIP (lsn = the failed transaction\'s finish LSN)')
    .option('--delete-local', "delete the subscriber's rows the change collides with")
    .option('--lsn <lsn>', 'with --skip: the finish LSN, when prodhome cannot read the subscriber\'s log (external)')
    .action(async (name: string, opts: { skip?: boolean; deleteLocal?: boolean; lsn?: string }, cmd: Command) => {
      if (!!opts.skip === !!opts.deleteLocal) throw new ProdhomeError('USAGE', `replication resolve ${name}: give one of --skip or --delete-local`, { hint: '`prodhome replication status` shows the conflict and what each way out runs.' });
      if (opts.lsn && !/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(opts.lsn)) throw new ProdhomeError('USAGE', `--lsn ${opts.lsn}: expected an LSN such as 0/155D860`);
      console.log(renderReport(await labResolve(configFrom(cmd), name, opts.skip ? 'skip' : 'delete-local', opts.lsn)));
    });
  replication
    .command('add')
    .description('add a subscription (and its subscriber node if new) to prodhome.yaml, then bring it up')
    .argument('<subscription>', 'name of the new subscription')
    .requiredOption('--node <node>', 'the subscriber node (created as role: subscriber if new)')
    .requiredOption('--publication <name...>', 'publication(s) to subscribe to')
    .action(async (name: string, opts: { node: string; publication: string[] }, cmd: Command) => {
      const changes = await addSubscriptionToConfig(configFrom(cmd), { name, node: opts.node, publications: opts.publication });
      for (const c of changes) console.log(`prodhome.yaml: ${c}`);
      const result = await labUp(configFrom(cmd), (l) => process.stderr.write(`${l}\n`));
      console.log(renderPlan(result.replication ?? { steps: [], problems: [] }, 'applied'));
    });
}

function renderReport(r: OperationReport): string {
  return [...r.ran.map((x) => `-- on ${x.node}\n${x.sql}`), ...r.notes.map((n) => `note: ${n}`)].join('\n') || 'nothing to do.';
}

export function renderPlan(result: ApplyResult, title: string): string {
  if (!result.steps.length && !result.problems.length) return 'replication: already as configured; nothing to do.';
  const out = [`-- replication ${title}: ${result.steps.length} step${result.steps.length > 1 ? 's' : ''}`];
  result.steps.forEach((s, i) => {
    out.push('', `-- ${i + 1}. on ${s.node}: ${s.reason}`, s.show);
  });
  for (const p of result.problems) out.push('', `-- PROBLEM on ${p.node}: ${p.what}. Fix: ${p.fix}.`);
  return out.join('\n');
}

function renderVerify(r: VerifyResult): string {
  const lines: string[] = [];
  if (r.tables.length) {
    lines.push(
      table(
        ['SUBSCRIBER', 'TABLE', 'SUBSCRIPTIONS', 'PUBLISHER ROWS', 'SUBSCRIBER ROWS', 'RESULT'],
        r.tables.map((t) => [t.subscriber, t.table, t.subscriptions.join(','), t.publisherRows, t.subscriberRows, t.match ? 'match' : 'MISMATCH']),
      ),
    );
  } else lines.push('no table compared.');
  // One line per cause, so a MISMATCH always says why.
  for (const c of r.causes) lines.push(`- ${c}`);
  lines.push(r.ok ? 'verify: every row arrived.' : `verify: MISMATCH: ${r.causes.length} cause${r.causes.length > 1 ? 's' : ''} above (exit 1)`);
  return lines.join('\n');
}

function renderStatus(rows: SubscriptionStatus[]): string {
  const bytes = (n: number | null) => (n === null ? '-' : String(n));
  const secs = (n: number | null) => (n === null ? '-' : n.toFixed(3));
  const main = table(
    ['SUBSCRIPTION', 'SUBSCRIBER', 'PUBLISHER', 'STATE', 'PID', 'LAG BYTES w/f/r', 'LAG SECONDS w/f/r', 'E2E (BEAT AGE)', 'SLOT RETAINED', 'ERRORS apply/sync'],
    rows.map((s) => [
      s.subscription,
      s.subscriber,
      s.publisher,
      s.state,
      s.workerPid ?? undefined,
      `${bytes(s.lagBytes.write)}/${bytes(s.lagBytes.flush)}/${bytes(s.lagBytes.replay)}`,
      `${secs(s.lagSeconds.write)}/${secs(s.lagSeconds.flush)}/${secs(s.lagSeconds.replay)}`,
      s.heartbeat ? `${(s.heartbeat.latencySeconds * 1000).toFixed(1)}ms (${s.heartbeat.ageSeconds.toFixed(1)}s)` : '-',
      s.slot ? `${s.slot.retainedWalBytes ?? '-'} B${s.slot.active ? '' : ' (inactive)'}` : '-',
      `${s.applyErrors ?? '-'}/${s.syncErrors ?? '-'}`,
    ]),
  );
  const details = rows.flatMap((s) => [
    ...(s.downReason ? [`${s.subscription}: ${s.downReason}${s.slot ? `; ${s.publisher} keeps its slot ${s.slot.active ? 'active' : 'inactive'}, retaining ${s.slot.retainedWalBytes ?? '?'} bytes of WAL until ${s.subscriber} is back` : ''}`] : []),
    `${s.subscription} tables: ${s.tables.map((t) => `${t.table}=${t.state}`).join(', ') || '-'}`,
    // A stalled subscription's own error (below) says more than the log's last line.
    ...(s.lastError && !s.conflict ? [`${s.subscription} last error ${s.lastError}`] : []),
    ...(s.conflict ? [] : s.errors.slice(1).map((e) => `  earlier: at ${e.at} (pid ${e.pid}) ${e.level}: ${e.text}`)),
    ...(s.conflict ? renderConflict(s) : s.fix ? [`${s.subscription} fix: ${s.fix}`] : []),
  ]);
  return [main, '', ...details].join('\n');
}

/** A stalled subscription: what failed, and the exact way out. */
function renderConflict(s: SubscriptionStatus): string[] {
  const c = s.conflict!;
  const lines = [
    `${s.subscription} STALLED (${c.at}): ${c.error}${c.detail ? ` — ${c.detail}` : ''}${c.relation ? ` in ${c.relation}` : ''}${c.xid ? `, transaction ${c.xid}` : ''}${c.finishLsn ? ` finishing at ${c.finishLsn}` : ''}`,
  ];
  if (c.deleteLocalSql) lines.push(`  way out, keeping every row: prodhome replication resolve ${s.subscription} --delete-local   (runs on ${s.subscriber}: ${c.deleteLocalSql};)`);
  if (c.skipSql) lines.push(`  or skip that transaction (its rows stay missing on ${s.subscriber}): prodhome replication resolve ${s.subscription} --skip   (runs: ${c.skipSql};)`);
  return lines;
}
