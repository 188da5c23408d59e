import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { dashboardSnapshot, grafanaExport, grafanaPush, loadPanels, PASSWORD_ENV } from '../dashboard/index.js';
import { durationOption } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { dashboardUrl, nodeConnection, readSecrets, readState } from '../lab/index.js';
import { configFrom } from './shared.js';

/** `prodhome dashboard`: where the agent serves the lab's live dashboard. */
export function registerDashboardCommands(program: Command): void {
  const dashboard = program
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
  dashboard
    .command('snapshot')
    .description('write the dashboard over a range as one self-contained HTML file (data and charts inline; opens offline)')
    .option('--range <duration>', 'how far back from now', '15m')
    .requiredOption('-o, --output <file>', 'the HTML file to write')
    .action(async (opts: { range: string; output: string }, cmd: Command) => {
      const rangeMs = durationOption(opts.range, '--range');
      if (rangeMs <= 0 || rangeMs > 31 * 86_400_000) throw new ProdhomeError('USAGE', `--range ${opts.range}: expected a range from 1s to 31d`);
      const html = await dashboardSnapshot(await dashboardUrl(configFrom(cmd)), rangeMs);
      fs.writeFileSync(opts.output, html);
      console.log(`wrote ${opts.output} (${Math.round(html.length / 1024)} KiB): the dashboard over the last ${opts.range}, opens without the lab`);
    });

  const grafana = program.command('grafana').description("the dashboard's panels for Grafana");
  grafana
    .command('export')
    .description('write Grafana provisioning files (a Postgres data source on the metrics node, read-only; the dashboard) into DIR')
    .argument('<dir>', 'directory to write into (created if missing)')
    .action((dir: string, _opts: unknown, cmd: Command) => {
      const config = configFrom(cmd);
      const { source, secret } = grafanaSourceOf(config);
      const out = grafanaExport(loadPanels(), source);
      for (const [rel, text] of Object.entries(out.files)) {
        const file = path.join(dir, rel);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, text);
        console.log(`wrote ${file}`);
      }
      console.log(`Grafana reads the metrics node as ${secret.user}; give it the password in ${PASSWORD_ENV} (it is "dashboard.password" in ${path.join(config.stateDir, 'secrets.json')}).`);
    });

  grafana
    .command('push')
    .description("create or update the data source and dashboard in a running Grafana through its HTTP API (idempotent by uid; says what changed)")
    .requiredOption('--url <url>', "Grafana's address, e.g. http://127.0.0.1:3000")
    .option('--token-file <file>', 'a file holding a Grafana service account token (else GRAFANA_TOKEN)')
    .action(async (opts: { url: string; tokenFile?: string }, cmd: Command) => {
      const config = configFrom(cmd);
      const token = opts.tokenFile ? fs.readFileSync(opts.tokenFile, 'utf8').trim() : process.env.GRAFANA_TOKEN;
      if (!token) throw new ProdhomeError('USAGE', 'grafana push needs an API token', { hint: 'Put a service account token in a file and pass --token-file FILE, or set GRAFANA_TOKEN.' });
      const { source, secret } = grafanaSourceOf(config);
      const report = await grafanaPush(grafanaExport(loadPanels(), source), { ...source, password: secret.password }, { url: opts.url, token });
      for (const line of report.changes) console.log(line);
    });
}

/** The metrics node as Grafana should reach it, and the read-only role's secret; clear errors when there is none yet. */
function grafanaSourceOf(config: ReturnType<typeof configFrom>) {
  const store = config.metrics.store;
  if (!store) throw new ProdhomeError('USAGE', `lab "${config.lab}" has no metrics store (metrics.store), so Grafana would have nothing to read`);
  const secret = readSecrets(config.stateDir).dashboard;
  if (!readState(config.stateDir)?.nodes[store] || !secret) {
    throw new ProdhomeError('LAB_NOT_UP', `lab "${config.lab}" has not been brought up here, so its metrics node has no address or read-only role yet`, { hint: 'Run `prodhome up` first.' });
  }
  const at = nodeConnection(config, store);
  return { source: { lab: config.lab, host: at.host, port: at.port, database: at.database, user: secret.user }, secret };
}

function openBrowser(url: string): void {
  const opener = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  const child = spawn(opener, [url], { detached: true, stdio: 'ignore' });
  child.on('error', () => process.stderr.write(`could not start ${opener}; open the URL above by hand\n`));
  child.unref();
}
