import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Command } from 'commander';
import { ProdhomeError } from '../errors.js';
import {
  builtinNames, experimentText, headline, loadExperiment, readJournal, readRunMetrics, runDir, runExperiment, writeJournal, writeReport, type Journal,
} from '../experiment/index.js';
import { printJson, table } from './render.js';
import { configFrom } from './shared.js';

/** experiment run|list|show|report. */
export function registerExperimentCommands(program: Command): void {
  const experiment = program.command('experiment').description('repeatable timelines of load and faults with a verdict: run, list, show, report');

  experiment
    .command('run')
    .description('run an experiment (a YAML file or a built-in name) on the lab; exits 1 when a check fails, naming it')
    .argument('<experiment>', 'FILE.yaml or a built-in name (`prodhome experiment list`)')
    .option('--duration-scale <x>', 'multiply every time in the file by X (0.1: a tenth as long)', '1')
    .option('--json', 'print the journal as JSON')
    .action(async (ref: string, opts: { durationScale: string; json?: boolean }, cmd: Command) => {
      const scale = Number(opts.durationScale);
      if (!(scale > 0) || !Number.isFinite(scale)) throw new ProdhomeError('USAGE', `--duration-scale ${opts.durationScale}: expected a number above 0, such as 0.1`);
      const config = configFrom(cmd);
      // The whole file is checked, against this lab, before anything starts.
      const exp = loadExperiment(ref, { scale, config });
      const log = (l: string) => process.stderr.write(`${l}\n`);
      const stop = new AbortController();
      const onSigint = () => {
        if (stop.signal.aborted) {
          log('second Ctrl-C: quitting now; `prodhome fault list` shows what may still be active');
          process.exit(130);
        }
        log('Ctrl-C: stopping loads and clearing faults (Ctrl-C again quits at once)');
        stop.abort();
      };
      process.on('SIGINT', onSigint);
      process.on('SIGTERM', onSigint);
      log(`experiment ${exp.name}: ${exp.timeline.length} steps${scale !== 1 ? `, times scaled by ${scale}` : ''}`);
      let journal: Journal;
      try {
        journal = await runExperiment(config, exp, { signal: stop.signal, log, onJournal: (j) => writeJournal(config.stateDir, j) });
      } finally {
        process.off('SIGINT', onSigint);
        process.off('SIGTERM', onSigint);
      }
      const report = writeReport(config.stateDir, journal, await readRunMetrics(config, journal, (l) => log(`warning: ${l}`)));
      if (opts.json) printJson(journal);
      else console.log(renderOutcome(journal, report.dir));
      if (journal.status === 'interrupted') throw new ProdhomeError('INTERRUPTED', `experiment ${exp.name} interrupted; its loads were stopped and its faults cleared`, { exitCode: 130 });
      if (journal.status !== 'passed') {
        throw new ProdhomeError('EXPERIMENT_FAILED', `experiment ${exp.name} ${journal.status === 'error' ? 'stopped on an error' : 'failed'}:\n  ${journal.failures.join('\n  ')}`, {
          exitCode: 1,
          hint: `The report says why, with the evidence: ${path.join(report.dir, 'report.md')}`,
        });
      }
    });

  experiment
    .command('list')
    .description('the built-in experiments')
    .option('--json', 'print as JSON')
    .action((opts: { json?: boolean }) => {
      const rows = builtinNames().map((name) => {
        const e = loadExperiment(name);
        return { name, description: e.description.split('\n')[0]!, steps: e.timeline.length };
      });
      if (opts.json) return printJson(rows);
      console.log(table(['NAME', 'STEPS', 'WHAT'], rows.map((r) => [r.name, String(r.steps), r.description])));
      console.log('\n`prodhome experiment show NAME` prints one; `prodhome experiment run NAME --duration-scale 0.1` runs it ten times faster.');
    });

  experiment
    .command('show')
    .description('print an experiment (built-in name or file) as written, after checking it')
    .argument('<experiment>')
    .action((ref: string) => {
      loadExperiment(ref); // checked: a broken file says where
      process.stdout.write(experimentText(ref).text);
    });

  experiment
    .command('report')
    .description("a run's report (default: the newest): rewrites report.md and report.html from its journal and the metrics store")
    .argument('[run]', 'the run id (a directory under experiments/ in the state dir)')
    .option('--open', 'open report.html in a browser')
    .action(async (run: string | undefined, opts: { open?: boolean }, cmd: Command) => {
      const config = configFrom(cmd);
      const journal = readJournal(config.stateDir, run);
      const report = writeReport(config.stateDir, journal, await readRunMetrics(config, journal, (l) => process.stderr.write(`warning: ${l}\n`)));
      console.log(renderOutcome(journal, report.dir));
      if (opts.open) openInBrowser(path.join(runDir(config.stateDir, journal.runId), 'report.html'));
    });
}

function renderOutcome(j: Journal, dir: string): string {
  const h = headline(j);
  return [
    `experiment ${j.experiment.name}: ${j.status.toUpperCase()} (run ${j.runId})`,
    ...j.failures.map((f) => `  ✘ ${f}`),
    `faults ${h.faults}, rows verified ${h.rowsVerified ?? '—'}, rows lost ${h.rowsLost ?? '—'}`,
    `report: ${path.join(dir, 'report.html')} (and report.md, summary.json)`,
  ].join('\n');
}

function openInBrowser(file: string): void {
  const opener = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  const child = spawn(opener, [file], { detached: true, stdio: 'ignore' });
  child.on('error', () => console.log(`could not start ${opener}; open ${file} in a browser`));
  child.unref();
}
