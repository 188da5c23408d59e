import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { dashboardUrl } from '../lab/index.js';
import { configFrom } from './shared.js';

/** `prodhome dashboard`: where the agent serves the lab's live dashboard. */
export function registerDashboardCommands(program: Command): void {
  program
    .command('dashboard')
    .description("print the URL of the lab's live web dashboard (served by the agent on 127.0.0.1)")
    .option('--open', 'open it in the browser too')
    .option('--print-url', 'print only the URL')
    .action(async (opts: { open?: boolean; printUrl?: boolean }, cmd: Command) => {
      const url = await dashboardUrl(configFrom(cmd));
      if (opts.printUrl) console.log(url);
      else console.log(`Dashboard: ${url}\n(the token in the URL is this lab's; anyone with it can read the lab's metrics)`);
      if (opts.open) openBrowser(url);
    });
}

function openBrowser(url: string): void {
  const opener = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  const child = spawn(opener, [url], { detached: true, stdio: 'ignore' });
  child.on('error', () => process.stderr.write(`could not start ${opener}; open the URL above by hand\n`));
  child.unref();
}
