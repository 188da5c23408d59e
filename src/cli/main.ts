import { Command, CommanderError } from 'commander';
import { isProdhomeError } from '../errors.js';

type Register = (program: Command) => void;

/**
 * The command table: which top-level commands each group file registers, loaded only when one
 * of its commands runs — a command pays for its own parts, not everyone's (`prodhome status`
 * never loads the load generator or the dashboard's web server). `--help`, no command or an
 * unknown one load every group. A test checks this table against what each group registers.
 */
export const COMMAND_GROUPS: { commands: readonly string[]; load: () => Promise<Register> }[] = [
  { commands: ['up', 'stop', 'start', 'restart', 'status', 'down', 'destroy'], load: async () => (await import('./lab-commands.js')).registerLabCommands },
  { commands: ['logs', 'psql', 'env'], load: async () => (await import('./node-commands.js')).registerNodeCommands },
  { commands: ['replicate', 'verify', 'replication'], load: async () => (await import('./replication-commands.js')).registerReplicationCommands },
  { commands: ['metrics', 'sample'], load: async () => (await import('./metrics-commands.js')).registerMetricsCommands },
  { commands: ['load'], load: async () => (await import('./load-commands.js')).registerLoadCommands },
  { commands: ['init', 'schema', 'doctor', 'agent'], load: async () => (await import('./setup-commands.js')).registerSetupCommands },
  { commands: ['seed', 'import'], load: async () => (await import('./data-commands.js')).registerDataCommands },
  { commands: ['dashboard', 'grafana'], load: async () => (await import('./dashboard-commands.js')).registerDashboardCommands },
  { commands: ['fault', 'fault-proxy', 'fault-holder'], load: async () => (await import('./fault-commands.js')).registerFaultCommands },
  { commands: ['experiment'], load: async () => (await import('./experiment-commands.js')).registerExperimentCommands },
];

/** The command a command line names: its first word that is not a program option (or its value). */
export function commandOf(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-f' || a === '--file') i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/** The program with the groups `args` needs (all of them when `args` is not given). */
export async function buildProgram(args?: readonly string[]): Promise<Command> {
  const program = new Command('prodhome')
    .description('production at home: a production-like Postgres estate on this machine')
    .version(VERSION)
    .option('-f, --file <file>', 'config file (default: ./prodhome.yaml, else the default lab)')
    .option('--debug', 'show stack traces for errors')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text) });
  const command = args && commandOf(args);
  const justVersion = command === undefined && (args?.includes('-V') || args?.includes('--version'));
  const own = COMMAND_GROUPS.find((g) => command !== undefined && g.commands.includes(command));
  const groups = justVersion ? [] : own ? [own] : COMMAND_GROUPS;
  for (const register of await Promise.all(groups.map((g) => g.load()))) register(program);
  acceptGlobalOptionsAnywhere(program);
  return program;
}

/**
 * `-f FILE` and `--debug` work before the command (`prodhome -f lab.yaml up`, as compose) and
 * after it (`prodhome up -f lab.yaml`). Program options are positional, so a command's own
 * `-f` (`logs -f`: follow) is its own; such a command still takes `--file`.
 */
function acceptGlobalOptionsAnywhere(cmd: Command): void {
  for (const sub of cmd.commands) {
    if (sub.commands.length) {
      acceptGlobalOptionsAnywhere(sub);
      // A group that is also a command of its own (`dashboard`, beside `dashboard snapshot`).
      if (!(sub as unknown as { _actionHandler?: unknown })._actionHandler) continue;
    }
    const has = (flag: string) => sub.options.some((o) => o.short === flag || o.long === flag);
    if (!has('--file')) sub.option(has('-f') ? '--file <file>' : '-f, --file <file>', 'config file (default: ./prodhome.yaml, else the default lab)');
    if (!has('--debug')) sub.option('--debug', 'show stack traces for errors');
  }
}

const VERSION = '0.1.0';

/** Runs the CLI; user errors print one message (no stack) and exit 2, bugs say so. */
export async function main(argv = process.argv): Promise<void> {
  const program = await buildProgram(argv.slice(2));
  const debug = argv.includes('--debug');
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    if (isProdhomeError(e)) {
      process.stderr.write(`prodhome: ${e.message}\n${e.hint ? `${e.hint}\n` : ''}`);
      if (debug && e.stack) process.stderr.write(`${e.stack}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    process.stderr.write(
      `prodhome: unexpected error — this is a bug (prodhome ${VERSION}, node ${process.version}, ${process.platform}-${process.arch}):\n${
        debug ? (e as Error).stack : (e as Error).message
      }\nRun again with --debug for the stack trace.\n`,
    );
    process.exitCode = 70;
  }
}
