import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { CONFIG_FILE_NAME, defaultConfigFor, labJsonSchema } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { doctor, runAgent } from '../lab/index.js';
import { printJson, table } from './render.js';
import type { GlobalOptions } from './shared.js';

/** init, schema, doctor, and the hidden agent entry point. */
export function registerSetupCommands(program: Command): void {
  program
    .command('init')
    .description(`write a commented default ${CONFIG_FILE_NAME} (or the -f file)`)
    .option('--force', 'overwrite an existing file')
    .action((opts: { force?: boolean }, cmd: Command) => {
      const file = path.resolve(cmd.optsWithGlobals<GlobalOptions>().file ?? CONFIG_FILE_NAME);
      if (fs.existsSync(file) && !opts.force) {
        throw new ProdhomeError('USAGE', `${file} already exists; not overwriting it`, { hint: 'Pass --force to replace it.' });
      }
      fs.writeFileSync(file, defaultConfigFor(path.dirname(file)));
      console.log(`wrote ${file} — edit it, then run \`prodhome up\``);
    });

  program
    .command('schema')
    .description('print the JSON Schema of prodhome.yaml (for editor completion)')
    .action(() => printJson(labJsonSchema()));

  program
    .command('doctor')
    .description('check binaries, versions, cgroups, ports and the OS user')
    .option('--json', 'print the checks as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const checks = await doctor(cmd.optsWithGlobals<GlobalOptions>().file);
      if (opts.json) printJson(checks);
      else console.log(table(['CHECK', 'RESULT', 'DETAIL'], checks.map((c) => [c.check, c.result, c.detail])));
      if (checks.some((c) => c.result === 'FAIL')) process.exitCode = 2;
    });

  program
    .command('agent', { hidden: true })
    .description("run a lab's agent in the foreground (up starts it in the background)")
    .requiredOption('--state-dir <dir>', "the lab's state directory")
    .action(async (opts: { stateDir: string }) => runAgent(opts.stateDir));
}
