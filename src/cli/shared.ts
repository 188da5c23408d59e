import type { Command } from 'commander';
import { loadConfig, type LabConfig } from '../config/index.js';
import { findLab, reviveAgent } from '../lab/index.js';

export interface GlobalOptions {
  file?: string;
  debug?: boolean;
}

/**
 * The lab config for a command, from `-f FILE` or the nearest prodhome.yaml or the default lab.
 * A lab that is up but whose agent is dead gets it back here, said on stderr — except for the
 * commands that see to the agent themselves (`up`, `down`, `destroy`: `agent: false`).
 */
export function configFrom(cmd: Command, { agent = true }: { agent?: boolean } = {}): LabConfig {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  const config = loadConfig({ file: opts.file });
  if (agent) revive(config.stateDir, cmd);
  return config;
}

/**
 * For status, down and destroy: the config's lab, or — when the config is broken, gone, or its
 * `lab:` was renamed — the lab its state says was brought up from it (the reason on stderr).
 */
export function labFrom(cmd: Command, { agent = true }: { agent?: boolean } = {}): LabConfig {
  const { config, note } = findLab({ file: cmd.optsWithGlobals<GlobalOptions>().file });
  if (note) process.stderr.write(`prodhome: ${note}\n`);
  if (agent) revive(config.stateDir, cmd);
  return config;
}

function revive(stateDir: string, cmd: Command): void {
  const pid = reviveAgent(stateDir, commandLine(cmd));
  if (pid) process.stderr.write(`prodhome: the lab's agent was not running; restarted it (pid ${pid})\n`);
}

/** "replication status", for the lock's note of who holds it. */
function commandLine(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join('-') || 'prodhome';
}
