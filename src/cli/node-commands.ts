import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { followLog, logFileOf, nodeConnection, readLogTail, readState } from '../lab/index.js';
import { connectionUrl, pgEnv } from '../pg/index.js';
import { findPsql } from '../runtime/index.js';
import { configFrom } from './shared.js';

/** logs, psql, env: reaching one node. */
export function registerNodeCommands(program: Command): void {
  program
    .command('logs')
    .description("print a node's Postgres log (or the agent's: prodhome logs agent)")
    .argument('<node>', 'node name, or "agent"')
    .option('-f, --follow', 'keep printing new lines until Ctrl-C')
    .option('-n, --lines <n>', 'print only the last N lines', (v) => Number(v))
    .action(async (node: string, opts: { follow?: boolean; lines?: number }, cmd: Command) => {
      const file = logFileOf(configFrom(cmd), node);
      process.stdout.write(readLogTail(file, opts.lines));
      if (opts.follow) await followLog(file, (chunk) => process.stdout.write(chunk));
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

