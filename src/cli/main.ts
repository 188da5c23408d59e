import { Command, CommanderError } from 'commander';
import { isProdhomeError } from '../errors.js';
import { registerDashboardCommands } from './dashboard-commands.js';
import { registerDataCommands } from './data-commands.js';
import { registerFaultCommands } from './fault-commands.js';
import { registerLabCommands } from './lab-commands.js';
import { registerLoadCommands } from './load-commands.js';
import { registerMetricsCommands } from './metrics-commands.js';
import { registerNodeCommands } from './node-commands.js';
import { registerReplicationCommands } from './replication-commands.js';
import { registerSetupCommands } from './setup-commands.js';

/** The command table. Each command lives with its group; this file only wires them up. */
export function buildProgram(): Command {
  const program = new Command('prodhome')
    .description('production at home: a production-like Postgres estate on this machine')
    .version(VERSION)
    .option('-f, --file <file>', 'config file (default: ./prodhome.yaml, else the default lab)')
    .option('--debug', 'show stack traces for errors')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text) });
  registerLabCommands(program);
  registerNodeCommands(program);
  registerReplicationCommands(program);
  registerMetricsCommands(program);
  registerLoadCommands(program);
  registerSetupCommands(program);
  registerDataCommands(program);
  registerDashboardCommands(program);
  registerFaultCommands(program);
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
      continue;
    }
    const has = (flag: string) => sub.options.some((o) => o.short === flag || o.long === flag);
    if (!has('--file')) sub.option(has('-f') ? '--file <file>' : '-f, --file <file>', 'config file (default: ./prodhome.yaml, else the default lab)');
    if (!has('--debug')) sub.option('--debug', 'show stack traces for errors');
  }
}

const VERSION = '0.1.0';

/** Runs the CLI; user errors print one message (no stack) and exit 2, bugs say so. */
export async function main(argv = process.argv): Promise<void> {
  const program = buildProgram();
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
