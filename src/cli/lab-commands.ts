import readline from 'node:readline/promises';
import type { Command } from 'commander';
import { formatBytes } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { dashboardUrl, labDestroy, labDown, labNodeControl, labStatus, labUp, type SinkReport } from '../lab/index.js';
import { printJson, table } from './render.js';
import { configFrom, labFrom, type GlobalOptions } from './shared.js';

/** up, stop/start/restart NODE, status, down, destroy: the lab's lifecycle. */
export function registerLabCommands(program: Command): void {
  program
    .command('up')
    .description('bring the lab up: create and start every node (idempotent; restarts nodes that died)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const config = configFrom(cmd, { agent: false });
      const started = Date.now();
      const interrupt = new AbortController();
      process.once('SIGINT', () => {
        process.stderr.write('interrupted: undoing what this run created (Ctrl-C again to quit at once)\n');
        interrupt.abort();
      });
      const result = await labUp(config, opts.json ? undefined : (line) => process.stderr.write(`${line}\n`), interrupt.signal);
      if (opts.json) return printJson(result);
      const took = ((Date.now() - started) / 1000).toFixed(1);
      console.log(
        table(
          ['NODE', 'ROLE', 'VERSION', 'ADDRESS', 'URL', 'DONE'],
          result.nodes.map((n) => [n.name, n.role, n.version, n.address, n.url, n.action]),
        ),
      );
      if (result.replication?.steps.length) {
        console.log(`\nreplication: applied ${result.replication.steps.length} steps (\`prodhome replicate --dry-run\` shows a plan; \`prodhome verify\` checks the rows)`);
      }
      console.log(
        result.changed
          ? `\nlab "${result.lab}" is up (${took}s). Agent pid ${result.agent.pid}. State: ${result.stateDir}`
          : `\nlab "${result.lab}" is already up; nothing changed.`,
      );
      console.log('Connect: prodhome psql NODE, or eval "$(prodhome env NODE)" for PG* variables with the password.');
      const dashboard = config.dashboard === false ? undefined : await dashboardUrl(config).catch((e: Error) => `not served: ${e.message}`);
      if (dashboard) console.log(`Dashboard: ${dashboard}`);
    });

  for (const [action, what] of [
    ['stop', 'stop nodes (fast shutdown), keeping their data; the rest of the lab goes on'],
    ['start', 'start stopped nodes again'],
    ['restart', 'stop and start nodes'],
  ] as const) {
    program
      .command(action)
      .description(what)
      .argument('<node...>', 'node names')
      .option('--json', 'print the result as JSON')
      .action(async (nodes: string[], opts: { json?: boolean }, cmd: Command) => {
        const reports = await labNodeControl(configFrom(cmd), action, nodes, (line) => process.stderr.write(`${line}\n`));
        if (opts.json) return printJson(reports);
        for (const r of reports) {
          console.log(`${r.node}: ${r.done}`);
          for (const c of r.consequences) console.log(`  ${c}`);
        }
      });
  }

  program
    .command('status')
    .description('show every node: role, runtime, version, address, state, pid, caps, data size')
    .option('--json', 'print the status as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const status = await labStatus(labFrom(cmd));
      if (opts.json) return printJson(status);
      console.log(
        table(
          ['NODE', 'ROLE', 'RUNTIME', 'VERSION', 'ADDRESS', 'STATE', 'PID', 'CAPS', 'DATA'],
          status.nodes.map((n) => [
            n.name,
            n.role,
            n.runtime,
            n.version,
            n.address,
            n.diedNoticedAt ? `died (agent saw it at ${n.diedNoticedAt})` : n.condition,
            n.pid,
            n.caps,
            n.dataBytes !== undefined ? formatBytes(n.dataBytes) : undefined,
          ]),
        ),
      );
      const sampling = status.agent.sampling;
      const sampled = sampling
        ? `\nsampling: every ${sampling.intervalMs} ms, last ${sampling.lastSampleAt ?? 'pending'}${sampling.sinks.length ? `, into ${sampling.sinks.join(', ')}` : ''}${sampling.prometheus ? `, Prometheus: ${sampling.prometheus}` : ''}`
        : '';
      if (status.sinks.length) console.log(`\nSINKS\n${sinksTable(status.sinks)}`);
      const services = Object.entries(status.agent.services ?? {});
      if (services.length) {
        console.log(`\nAGENT SERVICES\n${table(['SERVICE', 'STATE', 'SINCE', 'RESTARTS', 'ERROR'], services.map(([name, s]) => [name, s.state, s.since, s.restarts, s.error]))}`);
      }
      console.log(
        status.agent.running
          ? `\nagent: running (pid ${status.agent.pid}, last check ${status.agent.checkedAt ?? 'pending'})${sampled}`
          : status.exists
            ? '\nagent: not running (`prodhome up` starts it)'
            : `\nlab "${status.lab}" has not been brought up here; run \`prodhome up\``,
      );
    });

  program
    .command('down')
    .description('stop the agent and every node; keep all data')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const started = Date.now();
      const result = await labDown(labFrom(cmd, { agent: false }));
      if (opts.json) return printJson(result);
      if (!result.existed) return console.log(`lab "${result.lab}" has not been brought up here; nothing to stop.`);
      for (const n of result.nodes) console.log(`${n.name}: ${n.result}${n.note ? ` (${n.note})` : ''}`);
      console.log(`lab "${result.lab}" is down (${((Date.now() - started) / 1000).toFixed(1)}s); data kept. \`prodhome up\` brings it back.`);
    });

  program
    .command('destroy')
    .description("stop the lab and delete its state directory (this lab's data only)")
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { yes?: boolean; json?: boolean }, cmd: Command) => {
      const config = labFrom(cmd, { agent: false });
      if (!opts.yes) await confirm(`Delete lab "${config.lab}" and all its data in ${config.stateDir}?`);
      const result = await labDestroy(config);
      if (opts.json) return printJson(result);
      if (!result.existed) return console.log(`lab "${result.lab}" does not exist here; nothing to delete.`);
      console.log(`lab "${result.lab}" destroyed; removed ${result.removed.join(', ')}`);
    });
}

/**
 * Each sink: healthy or failing since when, what happened to its points (losses with their
 * reasons), and under the table the last error of each sink that has one.
 */
export function sinksTable(sinks: SinkReport[], now = Date.now()): string {
  const ago = (iso: string) => {
    const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
    return s < 120 ? `${s} s ago` : s < 7200 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
  };
  const lost = (n: number, by: Record<string, number>) => (n === 0 ? '0' : `${n} (${Object.entries(by).map(([reason, k]) => `${reason} ${k}`).join(', ')})`);
  const rows = sinks.map((s) => [
    s.name,
    `${s.healthy ? 'healthy' : 'FAILING'} since ${s.since.slice(11, 19)} (${ago(s.since)})`,
    s.offered,
    s.written,
    s.buffered,
    s.retries,
    lost(s.dropped, s.droppedBy),
    lost(s.rejected, s.rejectedBy),
  ]);
  const errors = sinks.filter((s) => s.lastError).map((s) => `  ${s.name}: last error ${s.lastErrorAt ? `at ${s.lastErrorAt.slice(11, 19)} ` : ''}${s.lastError}`);
  return [table(['SINK', 'STATE', 'OFFERED', 'WRITTEN', 'BUFFERED', 'RETRIES', 'DROPPED', 'REJECTED'], rows), ...errors].join('\n');
}

async function confirm(question: string): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new ProdhomeError('CONFIRMATION_REQUIRED', `${question} — refusing without confirmation (no terminal to ask on)`, {
      hint: 'Pass --yes to confirm.',
    });
  }
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question(`${question} [y/N] `);
  rl.close();
  if (!/^y(es)?$/i.test(answer.trim())) throw new ProdhomeError('CONFIRMATION_REQUIRED', 'not confirmed; nothing was deleted', { exitCode: 1 });
}

export type { GlobalOptions };
