import type { Command } from 'commander';
import { labNodes, readState, sampleSummary } from '../lab/index.js';
import { didYouMean, durationOption } from '../config/index.js';
import { Collector, ProcessSampler, forStores, loadCatalog, type Point } from '../metrics/index.js';
import { ProdhomeError } from '../errors.js';
import { heartbeatPublications } from '../replication/index.js';
import { createSink, SINK_SCHEMES } from '../sinks/index.js';
import { runningPid, sleep } from '../runtime/index.js';
import { printJson, table } from './render.js';
import { configFrom } from './shared.js';

/** metrics list, sample: the origin's pg_sampler, done right. */
export function registerMetricsCommands(program: Command): void {
  const metrics = program.command('metrics').description('the metric catalog');
  metrics
    .command('list')
    .description('every metric: family, roles, Postgres versions, tags and fields')
    .option('--json', 'print as JSON')
    .action((opts: { json?: boolean }) => {
      const catalog = loadCatalog();
      if (opts.json) return printJson(catalog);
      console.log(
        table(
          ['METRIC', 'FAMILY', 'ROLES', 'POSTGRES', 'EVERY', 'TAGS', 'FIELDS'],
          catalog.map((m) => [
            m.name,
            m.family,
            m.roles?.join(',') ?? 'all',
            `${Math.min(...Object.keys(m.sql).map(Number))}+`,
            m.everyMs ? `${m.everyMs / 1000}s` : 'scrape',
            m.tags.join(',') || '-',
            Object.entries(m.fields).map(([f, d]) => `${f}${d.kind === 'counter' ? '(c)' : ''}`).join(','),
          ]),
        ),
      );
      console.log('\n(c) counter: sampled as the cumulative value and as <field>_rate per second. EVERY: how often it is sampled, for what changes slowly. `--json` adds each metric\'s help and SQL.');
    });

  program
    .command('sample')
    .description("sample every node's statistics in the foreground with a live summary (the origin's pg_sampler)")
    .option('--interval <duration>', 'time between samples (250ms at the least)', '1s')
    .option('--duration <duration>', 'stop after this long (default: until Ctrl-C)')
    .option('--json', 'print every point as one JSON line instead of the summary')
    .option('--wide', 'the whole lab on one wide line per sample, instead of one short line per node')
    .option('--metric <name...>', 'sample only these catalog metrics (see `prodhome metrics list`)')
    .option('--sink <uri...>', `also write every point to sinks (${SINK_SCHEMES.map((s) => `${s}:`).join(', ')}), e.g. influx://127.0.0.1:8086/prodhome or file:-`)
    .action(async (opts: { interval: string; duration?: string; json?: boolean; wide?: boolean; sink?: string[]; metric?: string[] }, cmd: Command) => {
      const config = configFrom(cmd);
      const interval = durationOption(opts.interval, '--interval');
      if (interval < 250) throw new ProdhomeError('USAGE', `--interval ${opts.interval}: 250ms is the shortest interval`);
      const until = opts.duration ? Date.now() + durationOption(opts.duration, '--duration') : Infinity;
      const state = readState(config.stateDir);
      if (!state) throw new ProdhomeError('LAB_NOT_UP', `lab "${config.lab}" has not been brought up here`, { hint: 'Run `prodhome up` first.' });
      const nodes = [...labNodes(config, state).values()];
      const catalog = loadCatalog();
      for (const name of opts.metric ?? []) {
        if (catalog.some((m) => m.name === name)) continue;
        const guess = didYouMean(name, catalog.map((m) => m.name));
        throw new ProdhomeError('USAGE', `--metric ${name}: no such metric${guess ? ` — did you mean "${guess}"?` : ''}`, { hint: '`prodhome metrics list` shows them all.' });
      }
      const metrics = opts.metric ? catalog.filter((m) => opts.metric!.includes(m.name)) : catalog;
      const collector = new Collector(nodes, { metrics, warn: (w) => process.stderr.write(`warning: ${w}\n`), heartbeats: heartbeatPublications(config.replication) });
      const processes = new ProcessSampler();
      const targets = () =>
        config.nodes.flatMap((n) => {
          const s = readState(config.stateDir)?.nodes[n.name];
          return s?.runtime === 'local' ? [{ name: n.name, role: n.role, pid: runningPid(s.dataDir), cgroupDirs: s.caps.cgroupDirs }] : [];
        });
      const warn = (w: string) => process.stderr.write(`warning: ${w}\n`);
      const sinks = (opts.sink ?? []).map((uri) => createSink(uri, { warn }));
      for (const sink of sinks) await sink.open?.();
      let stop = false;
      process.once('SIGINT', () => (stop = true));
      try {
        let next = Date.now();
        while (!stop && Date.now() < until) {
          const points = (await Promise.all([collector.scrape(), processes.sample(targets())])).flat();
          const stored = sinks.length ? forStores(points) : [];
          for (const sink of sinks) await sink.write(stored);
          if (opts.json) for (const p of points) process.stdout.write(`${JSON.stringify(p)}\n`);
          else console.log(sampleSummary(points, nodes.map((n) => n.name), { intervalMs: interval, wide: opts.wide }).join('\n'));
          next += interval;
          await sleep(Math.max(0, next - Date.now()));
        }
      } finally {
        await collector.close();
        for (const sink of sinks) {
          await sink.close();
          const s = sink.stats;
          if (s.dropped + s.rejected > 0) process.stderr.write(`warning: ${sink.name}: ${s.dropped} points dropped, ${s.rejected} refused of ${s.offered}${s.lastError ? ` (last error: ${s.lastError})` : ''}\n`);
        }
      }
    });
}
