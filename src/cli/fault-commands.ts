import type { Command } from 'commander';
import { durationOption, parseRate, parseSize } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { runHolder, runProxyProcess, type FaultArgs, type FaultKind, type FaultRecord } from '../faults/index.js';
import { labFault, labFaultClear, labFaultList, labThaw, type FaultResult } from '../lab/index.js';
import { printJson, table } from './render.js';
import { configFrom } from './shared.js';

/** fault kill|stop|restart|freeze|thaw|cpu|memory|connections|lock|idle-tx|slot|conflict|list|clear. */
export function registerFaultCommands(program: Command): void {
  const fault = program.command('fault').description('break the lab on purpose: node, resource and replication faults; list and clear them');

  const add = (kind: FaultKind, description: string, args: string[], extra: (c: Command) => Command, toArgs: (a: string[], o: Opts) => FaultArgs) => {
    let c = fault.command(kind).description(description);
    for (const a of args) c = c.argument(a);
    c = extra(c).option('--dry-run', 'print what it would do, and do nothing').option('--json', 'print the result as JSON');
    c.action(async (...all: unknown[]) => {
      const cmd = all[all.length - 1] as Command;
      const opts = all[all.length - 2] as Opts;
      const faultArgs = toArgs(all.slice(0, args.length) as string[], opts);
      const log = (l: string) => process.stderr.write(`${l}\n`);
      const result = await labFault(configFrom(cmd), kind, faultArgs, { dryRun: opts.dryRun, log });
      if (opts.json) return printJson(result);
      console.log(renderResult(kind, faultArgs, result));
    });
  };
  const none = (c: Command) => c;
  const node = ([n]: string[]) => ({ target: n! });
  add('kill', 'SIGKILL the postmaster: a crash (clear or `up` starts it again)', ['<node>'], none, node);
  add('stop', 'fast shutdown of a node (clear or `up` starts it again)', ['<node>'], none, node);
  add('restart', 'fast stop and start of a node', ['<node>'], none, node);
  add('freeze', 'SIGSTOP the whole process tree: a hung server (thaw, clear or `up` continues it)', ['<node>'], none, node);
  add('cpu', "lower a node's CPU quota live, e.g. `fault cpu publisher 0.1`", ['<node>', '<cpus>'], none, ([n, c]) => ({ target: n!, cpus: number(c!, 'CPUs') }));
  add('memory', "lower a node's memory cap live, e.g. `fault memory publisher 160MiB`", ['<node>', '<size>'], none, ([n, s]) => ({ target: n!, memoryBytes: size(s!) }));
  const forOption = (c: Command) => c.option('--for <duration>', 'end by itself after this long (e.g. 30s, 2m)');
  add('connections', 'take connection slots and hold them: the next client meets 53300 too many clients', ['<node>'],
    (c) => forOption(c).option('--hold <n>', 'how many to hold (default: every slot the server gives)'),
    ([n], o) => ({ target: n!, hold: o.hold === undefined ? undefined : wholeNumber(o.hold, '--hold'), forMs: forMs(o) }));
  add('lock', 'hold an ACCESS EXCLUSIVE lock on a table: readers and writers queue', ['<node>', '<table>'], forOption, ([n, t], o) => ({ target: n!, table: t!, forMs: forMs(o) }));
  add('idle-tx', 'an idle-in-transaction session holding back vacuum', ['<node>'], forOption, ([n], o) => ({ target: n!, forMs: forMs(o) }));
  add('slot', 'an inactive replication slot retaining WAL', ['<node>'], none, node);
  add('conflict', "a row on the subscriber that the publisher's next insert collides with: the subscription stalls", ['<subscription>'], none, ([s]) => ({ target: s! }));

  add('net', 'a network fault on a replication link (a subscription or its subscriber node), through a TCP proxy', ['<link>'],
    (c) =>
      forOption(c)
        .option('--latency <duration>', 'added one-way delay, e.g. 200ms')
        .option('--jitter <duration>', 'random variation of the latency, e.g. 50ms')
        .option('--bandwidth <rate>', 'a cap per direction, e.g. 1mbit, 512kbit, 100KiB')
        .option('--partition', 'nothing passes either way (connections stay open)')
        .option('--reset-connections', "end the link's connection now (the subscriber reconnects)"),
    ([l], o) => ({
      target: l!,
      forMs: forMs(o),
      net: {
        latencyMs: o.latency === undefined ? undefined : parseFaultDuration(o.latency, '--latency'),
        jitterMs: o.jitter === undefined ? undefined : parseFaultDuration(o.jitter, '--jitter'),
        bytesPerSecond: o.bandwidth === undefined ? undefined : rate(o.bandwidth),
        partition: o.partition,
        reset: o.resetConnections,
      },
    }));

  fault
    .command('thaw')
    .description('continue a frozen node (SIGCONT to its process tree)')
    .argument('<node>')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      for (const line of await labThaw(configFrom(cmd), name, (l) => process.stderr.write(`${l}\n`))) console.log(line);
    });

  fault
    .command('list')
    .description('the active faults: id, kind, target, since, until, what they hold')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const { active, ended } = await labFaultList(configFrom(cmd));
      if (opts.json) return printJson({ active, ended });
      for (const r of ended) console.log(`fault ${r.id} (${r.kind} ${r.args.target}) has ended by itself`);
      if (!active.length) return console.log('no active faults.');
      console.log(table(['ID', 'FAULT', 'TARGET', 'NODE', 'SINCE', 'UNTIL', 'WHAT'], active.map((r) => [r.id, r.kind, r.args.target, r.node, r.startedAt, r.until ?? 'clear', r.summary])));
    });

  fault
    .command('clear')
    .description('undo one fault (by id) or all of them')
    .argument('[id]')
    .option('--json', 'print as JSON')
    .action(async (id: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      const result = await labFaultClear(configFrom(cmd), id, { log: (l) => process.stderr.write(`${l}\n`) });
      if (opts.json) return printJson(result);
      if (!result.cleared.length) return console.log('no active faults; nothing to clear.');
      for (const c of result.cleared) {
        console.log(`cleared fault ${c.record.id} (${c.record.kind} ${c.record.args.target})`);
        for (const s of c.steps) console.log(`  ${s}`);
      }
    });

  program
    .command('fault-proxy', { hidden: true })
    .description("a replication link's TCP proxy (started by prodhome fault net; reads its settings from stdin)")
    .action(async () => runProxyProcess());
  program
    .command('fault-holder', { hidden: true })
    .description('hold sessions for a fault (started by prodhome fault; reads what to hold from stdin)')
    .action(async () => runHolder());
}

interface Opts {
  dryRun?: boolean;
  json?: boolean;
  for?: string;
  hold?: string;
  latency?: string;
  jitter?: string;
  bandwidth?: string;
  partition?: boolean;
  resetConnections?: boolean;
}

function renderResult(kind: FaultKind, args: FaultArgs, r: FaultResult): string {
  if (r.dryRun) return [`-- fault ${kind} ${args.target}: plan (nothing done)`, ...r.steps].join('\n');
  if (r.already) return r.steps.join('\n');
  const rec: FaultRecord | undefined = r.record;
  const tail = rec && rec.id ? `\n\`prodhome fault clear ${rec.id}\` undoes it; \`prodhome fault list\` shows what is active.` : '';
  return `${r.steps.join('\n')}${tail}`;
}

/** A positive duration: 500ms, 30s, 2m, 1h. */
/** A duration above zero for a fault option (`--for -5s` is a mistake, not a fault that ended). */
function parseFaultDuration(text: string, flag: string): number {
  if (/^\s*-/.test(text)) throw new ProdhomeError('USAGE', `${flag} ${text}: a duration must be above zero, such as 30s`);
  const ms = durationOption(text, flag);
  if (!(ms > 0)) throw new ProdhomeError('USAGE', `${flag} ${text}: a duration must be above zero, such as 30s`);
  return ms;
}

function forMs(o: Opts): number | undefined {
  return o.for === undefined ? undefined : parseFaultDuration(o.for, '--for');
}

function number(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new ProdhomeError('USAGE', `"${text}" is not a number of ${what} above 0 (such as 0.1)`);
  return n;
}

function wholeNumber(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new ProdhomeError('USAGE', `${flag} ${text}: expected a whole number above 0`);
  return n;
}

function size(text: string): number {
  const bytes = parseSize(text);
  if (bytes === undefined) throw new ProdhomeError('USAGE', `"${text}" is not a size; write it like 160MiB or 1GiB`);
  return bytes;
}

/** Bytes per second from 1mbit, 512kbit, 100KiB (per second). */
function rate(text: string): number {
  const bytes = parseRate(text);
  if (!bytes) throw new ProdhomeError('USAGE', `--bandwidth ${text}: expected a rate such as 1mbit, 512kbit or 100KiB (per second)`);
  return bytes;
}
