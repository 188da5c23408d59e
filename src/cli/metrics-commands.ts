import type { Command } from 'commander';
import { labSample, sampleSummary } from '../lab/index.js';
import { didYouMean, durationOption } from '../config/index.js';
import { loadCatalog } from '../metrics/index.js';
import { ProdhomeError } from '../errors.js';
import { createSink, SINK_SCHEMES, type Point } from '../sinks/index.js';
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
      const durationMs = opts.duration ? durationOption(opts.duration, '--duration') : undefined;
      const catalog = loadCatalog();
      for (const name of opts.metric ?? []) {
        if (catalog.some((m) => m.name === name)) continue;
        const guess = didYouMean(name, catalog.map((m) => m.name));
        throw new ProdhomeError('USAGE', `--metric ${name}: no such metric${guess ? ` — did you mean "${guess}"?` : ''}`, { hint: '`prodhome metrics list` shows them all.' });
      }
      const metrics = opts.metric ? catalog.filter((m) => opts.metric!.includes(m.name)) : catalog;
      const warn = (w: string) => process.stderr.write(`warning: ${w}\n`);
      const sinks = (opts.sink ?? []).map((uri) => createSink(uri, { warn }));
      for (const sink of sinks) await sink.open?.();
      try {
        const loop = await labSample(config, {
          intervalMs: interval,
          durationMs,
          metrics,
          sinks,
          warn,
          onSample: (points: Point[], names: string[]) => {
            if (opts.json) for (const p of points) process.stdout.write(`${JSON.stringify(p)}\n`);
            else console.log(sampleSummary(points, names, { intervalMs: interval, wide: opts.wide }).join('\n'));
          },
        });
        process.once('SIGINT', () => void loop.stop());
        await loop.done;
      } finally {
        for (const sink of sinks) {
          await sink.close();
          const s = sink.stats;
          if (s.dropped + s.rejected > 0) process.stderr.write(`warning: ${sink.name}: ${s.dropped} points dropped, ${s.rejected} refused of ${s.offered}${s.lastError ? ` (last error: ${s.lastError})` : ''}\n`);
        }
      }
    });
}
