import type { Command } from 'commander';
import type { LabConfig } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { guardWrites, loadReporter, nodeConnection, writtenTables } from '../lab/index.js';
import {
  checkLoad, checkPgbench, DEFAULT_WEIGHTS, findPgbench, formatSchedule, prepareLoad, renderSummary, runPgbench, runPrepared, workloads, type LoadOptions, type LoadSummary, type Protocol,
} from '../workload/index.js';
import { printJson } from './render.js';
import { configFrom } from './shared.js';

interface LoadFlags {
  client?: number;
  jobs?: number;
  time?: number;
  transactions?: number;
  rate?: number;
  progress?: number;
  protocol: string;
  scale?: number;
  define?: string[];
  node?: string;
  force?: boolean;
  schedule?: string;
  weights?: string;
  maxErrors?: number;
  randomSeed?: number;
  engine: string;
  pgbench?: string;
  dryRun?: boolean;
  json?: boolean;
}

/** prodhome load WORKLOAD: pgbench's options, prodhome's workloads and schedules. */
export function registerLoadCommands(program: Command): void {
  program
    .command('load')
    .description(`drive load through a node like pgbench does: ${Object.keys(workloads).join(', ')} (custom FILE.sql runs a pgbench-syntax script)`)
    .argument('<workload>', Object.values(workloads).map((w) => `${w.name}: ${w.description}`).join('; '))
    .argument('[file]', 'custom: the script file')
    .option('-c, --client <n>', 'concurrent clients, one connection each (default 1)', number('-c'))
    .option('-j, --jobs <n>', 'threads: 1 runs every client in this process, more use worker threads (default 1)', number('-j'))
    .option('-T, --time <seconds>', 'run this many seconds (without -T or -t: until Ctrl-C)', number('-T'))
    .option('-t, --transactions <n>', 'transactions per client', number('-t'))
    .option('-R, --rate <tps>', 'target rate for all clients together, Poisson arrivals as pgbench; latency counts from the scheduled start', number('-R'))
    .option('-P, --progress <seconds>', 'a progress line on stderr every N seconds', number('-P'))
    .option('-M, --protocol <mode>', 'simple, extended or prepared, as pgbench -M', 'simple')
    .option('-s, --scale <n>', 'custom: the value of :scale (default: count of pgbench_branches, else 1)', number('-s'))
    .option('-D, --define <name=value>', 'custom: a variable for the script (repeat for more)', (v: string, all: string[] = []) => [...all, v])
    .option('--node <node>', "the node to load (default: the lab's first publisher)")
    .option('--schedule <spec>', 'constant, pulse:on=5s,off=15s, ramp:from=10,to=500,over=60s or rayleigh:mean=1ms (the inserter\'s default)')
    .option('--weights <spec>', `mixed: how often each kind runs (default ${DEFAULT_WEIGHTS})`)
    .option('--max-errors <n>', 'stop once there are more than N errors (default: count them and go on)', number('--max-errors'))
    .option('--random-seed <n>', 'seed for the random numbers, to repeat a run (default: random)', number('--random-seed'))
    .option('--engine <engine>', 'prodhome, or pgbench to run the installed pgbench (tpcb and custom only)', 'prodhome')
    .option('--pgbench <path>', 'the pgbench binary for --engine pgbench (default: PRODHOME_PGBENCH, PATH, /usr/lib/postgresql/*/bin)')
    .option('--dry-run', 'show what would run (settings and SQL) and run nothing')
    .option('--force', "run even when the workload writes tables a subscription feeds on that node (their keys collide with the publisher's)")
    .option('--json', 'print the summary as JSON')
    .action(async (workload: string, file: string | undefined, flags: LoadFlags, cmd: Command) => {
      if (flags.engine !== 'prodhome' && flags.engine !== 'pgbench') throw new ProdhomeError('USAGE', `--engine ${flags.engine}: expected prodhome or pgbench`);
      if (file !== undefined && workload !== 'custom') throw new ProdhomeError('USAGE', `unexpected argument "${file}": only the custom workload takes a file`);
      const stop = new AbortController();
      const request = {
        workload,
        options: { file, weights: flags.weights, scale: flags.scale, defines: defines(flags.define) },
        clients: flags.client,
        threads: flags.jobs,
        seconds: flags.time,
        transactions: flags.transactions,
        rate: flags.rate,
        schedule: flags.schedule,
        protocol: flags.protocol as Protocol,
        maxErrors: flags.maxErrors,
        seed: flags.randomSeed,
        progressSeconds: flags.progress,
        onProgress: (line: string) => process.stderr.write(`${line}\n`),
        signal: stop.signal,
        engine: flags.engine as 'prodhome' | 'pgbench',
      };
      // Mistakes in the command line first, before the lab is asked anything.
      const checked = checkLoad(request);
      if (flags.engine === 'pgbench') checkPgbench(checked, request);
      const pgbench = flags.engine === 'pgbench' ? findPgbench(flags.pgbench) : undefined;
      const config = configFrom(cmd);
      const node = flags.node ?? defaultNode(config);
      const options: LoadOptions = { ...request, node, connection: nodeConnection(config, node) };
      const prepared = await prepareLoad(options);
      const plan = prepared.workload.plan(prepared.shared);
      const what = `${prepared.name} (${plan.summary}) on ${node}: ${prepared.clients} client${prepared.clients > 1 ? 's' : ''}, ${prepared.threads} thread${prepared.threads > 1 ? 's' : ''}, ${formatSchedule(prepared.schedule)}${flags.rate ? ` at ${flags.rate} tx/s` : ''}, ${flags.time ? `${flags.time} s` : flags.transactions ? `${flags.transactions} transactions per client` : 'until Ctrl-C'}, engine ${flags.engine}`;
      if (flags.dryRun) {
        console.log(`-- load ${what}\n-- each client runs, per transaction:\n${plan.script.trimEnd()}`);
        return;
      }
      // Writes into a subscriber's replicated tables collide with what the publisher sends.
      const warning = guardWrites(config, node, { what: `load ${prepared.name}`, tables: writtenTables(plan.script), force: flags.force });
      if (warning) process.stderr.write(`warning: ${warning}\n`);
      if (!flags.json) process.stderr.write(`load ${what}\n`);
      // The first Ctrl-C ends the run and still prints the summary; a second one quits at once.
      const onSigint = () => {
        if (stop.signal.aborted) process.exit(130);
        stop.abort();
      };
      process.on('SIGINT', onSigint);
      // While the lab's agent runs, each second goes where its samples go (sinks, /metrics).
      const reporter = await loadReporter(config, node, prepared.name, (l) => process.stderr.write(`warning: ${l}\n`), `prodhome load ${process.argv.slice(process.argv.indexOf('load') + 1).join(' ')}`);
      options.onSecond = reporter.onSecond;
      try {
        const summary = pgbench ? await runPgbench(prepared, options, pgbench) : await runPrepared(prepared, options);
        if (flags.json) printJson(summary);
        else console.log(renderSummary(summary));
        // Ctrl-C: the summary above, then 130 (128 + SIGINT), as import and a shell report it.
        if (summary.stoppedBy === 'interrupted') throw new ProdhomeError('INTERRUPTED', 'interrupted; the summary above covers the run until then', { exitCode: 130 });
        if (summary.stoppedBy === 'max-errors') {
          const worst = summary.errors[0];
          throw new ProdhomeError('LOAD_MAX_ERRORS', `stopped: more than ${flags.maxErrors} errors${worst ? ` (most: ${worst.code} ${worst.message}, ${worst.count} times)` : ''}`, { exitCode: 1 });
        }
        const failing = runErrors(summary);
        if (failing.length) {
          const head = summary.failed ? `${summary.failed} of ${summary.transactions + summary.failed} transactions failed` : 'the run had errors';
          throw new ProdhomeError('LOAD_FAILED', `${head} (${failing.map((e) => `${e.code}${e.name ? ` ${e.name}` : ''}: ${e.count}`).join(', ')})`, {
            hint: `The summary above lists each error with its message. Exit status 2, as pgbench's after a run with errors.`,
          });
        }
      } finally {
        process.off('SIGINT', onSigint);
        await reporter.close();
      }
    });
}

/**
 * The errors that make a run fail, by pgbench's rule: pgbench exits 2 when a client aborted, and
 * every SQL error aborts its client except a serialization failure (40001) or a deadlock (40P01),
 * which count as failed transactions (retried with --max-tries) and leave the exit status 0.
 */
export function runErrors(summary: LoadSummary): LoadSummary['errors'] {
  return summary.errors.filter((e) => e.code !== '40001' && e.code !== '40P01');
}

/** The lab's first publisher, or its only node. */
function defaultNode(config: LabConfig): string {
  const publisher = config.nodes.find((n) => n.role === 'publisher') ?? (config.nodes.length === 1 ? config.nodes[0] : undefined);
  if (!publisher) throw new ProdhomeError('USAGE', `lab "${config.lab}" has no publisher node; say which node to load with --node (${config.nodes.map((n) => n.name).join(', ')})`);
  return publisher.name;
}

function number(flag: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new ProdhomeError('USAGE', `${flag} ${v}: expected a number`);
    return n;
  };
}

function defines(list: string[] | undefined): Record<string, string> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string> = {};
  for (const d of list) {
    // As pgbench: NAME=VALUE, the value is text (a number, a word, anything non-empty).
    const m = /^([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)=(.+)$/s.exec(d);
    if (!m) throw new ProdhomeError('USAGE', `-D ${d}: expected NAME=VALUE (a variable name, then a non-empty value)`);
    out[m[1]!] = m[2]!;
  }
  return out;
}
