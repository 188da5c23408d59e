import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { followLogs, labLogs, logFileOf, nodeConnection, readLogTail, readState, type LogSource } from '../lab/index.js';
import { connectionUrl, pgEnv } from '../pg/index.js';
import { findPsql } from '../runtime/index.js';
import { configFrom } from './shared.js';

/** logs, psql, env: reaching one node. */
export function registerNodeCommands(program: Command): void {
  program
    .command('logs')
    .description("print a node's Postgres log, the agent's (logs agent), or every log of the lab merged (no NODE)")
    .argument('[node]', 'node name, or "agent"; none for every log, each line prefixed with its source')
    .option('-f, --follow', 'keep printing new lines until Ctrl-C')
    .option('-n, --lines <n>', 'print only the last N lines (of each log)', (v) => Number(v))
    .action(async (node: string | undefined, opts: { follow?: boolean; lines?: number }, cmd: Command) => {
      const config = configFrom(cmd);
      const sources = node === undefined ? labLogs(config) : [{ name: node, file: logFileOf(config, node) }];
      const print = node === undefined ? prefixer(sources.map((s) => s.name)) : (_: LogSource, line: string) => line;
      for (const source of sources) {
        const tail = readLogTail(source.file, opts.lines);
        for (const line of tail.split('\n').slice(0, -1)) process.stdout.write(`${print(source, line)}\n`);
      }
      if (opts.follow) await followLogs(sources, (source, line) => process.stdout.write(`${print(source, line)}\n`));
    });

  program
    .command('psql')
    .description('open psql on a node (prints its URL when psql is not installed)')
    .argument('<node>', 'node name')
    .argument('[args...]', 'extra psql arguments, after --')
    .action(async (node: string, args: string[], _opts: unknown, cmd: Command) => {
      const config = configFrom(cmd);
      const info = nodeConnection(config, node);
      const state = readState(config.stateDir)?.nodes[node];
      const psql = findPsql(state?.runtime === 'local' ? state.binDir : undefined);
      if (!psql) {
        console.log(connectionUrl(info));
        console.error('psql is not installed here. Connect with the URL above; `prodhome env NODE` prints PG* variables with the password.');
        return;
      }
      // The password travels in the child's environment, never on its command line.
      const child = spawn(psql, args, { stdio: 'inherit', env: { ...process.env, ...pgEnv(info) } });
      const code: number = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));
      process.exitCode = code;
    });

  program
    .command('env')
    .description('print `export PG…` lines for a node: eval "$(prodhome env NODE)"')
    .argument('<node>', 'node name')
    .action((node: string, _opts: unknown, cmd: Command) => {
      const info = nodeConnection(configFrom(cmd), node);
      for (const [k, v] of Object.entries(pgEnv(info))) console.log(`export ${k}=${shellQuote(v)}`);
    });
}

function shellQuote(v: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`;
}

/** `name | ` before each line, names padded alike and coloured per source when stdout is a terminal (as compose does). */
function prefixer(names: string[]): (source: LogSource, line: string) => string {
  const width = Math.max(...names.map((n) => n.length));
  const colours = [36, 33, 32, 35, 34, 31];
  const tty = process.stdout.isTTY && !process.env.NO_COLOR;
  return (source, line) => {
    const label = source.name.padEnd(width);
    const c = colours[names.indexOf(source.name) % colours.length];
    return `${tty ? `\x1b[${c}m${label} |\x1b[0m` : `${label} |`} ${line}`;
  };
}
