import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { logFileOf, nodeConnection, readState } from '../lab/index.js';
import { connectionUrl, type ConnectionInfo } from '../pg/index.js';
import { sleep } from '../runtime/index.js';
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
      let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
      if (opts.lines !== undefined) text = text.split('\n').slice(-(opts.lines + 1)).join('\n');
      process.stdout.write(text);
      if (!opts.follow) return;
      let offset = fs.existsSync(file) ? fs.statSync(file).size : 0;
      for (;;) {
        await sleep(200);
        const size = fs.existsSync(file) ? fs.statSync(file).size : 0;
        if (size < offset) offset = 0; // truncated or recreated
        if (size > offset) {
          const fd = fs.openSync(file, 'r');
          const buf = Buffer.alloc(size - offset);
          fs.readSync(fd, buf, 0, buf.length, offset);
          fs.closeSync(fd);
          process.stdout.write(buf);
          offset = size;
        }
      }
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

export function pgEnv(info: ConnectionInfo): Record<string, string> {
  const env: Record<string, string> = {
    PGHOST: info.host,
    PGPORT: String(info.port),
    PGUSER: info.user,
    PGDATABASE: info.database,
  };
  if (info.password) env.PGPASSWORD = info.password;
  env.DATABASE_URL = connectionUrl(info, { withPassword: true });
  return env;
}

function shellQuote(v: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`;
}

/** psql to run: PRODHOME_PSQL if set, else beside the node's binaries, on PATH, or Debian's. */
export function findPsql(binDir?: string): string | undefined {
  if (process.env.PRODHOME_PSQL) return isExecutable(process.env.PRODHOME_PSQL) ? process.env.PRODHOME_PSQL : undefined;
  const candidates = [
    ...(binDir ? [path.join(binDir, 'psql')] : []),
    ...(process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, 'psql')),
  ];
  try {
    for (const v of fs.readdirSync('/usr/lib/postgresql').sort().reverse()) candidates.push(path.join('/usr/lib/postgresql', v, 'bin', 'psql'));
  } catch {
    // not a Debian-style install
  }
  return candidates.find(isExecutable);
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

