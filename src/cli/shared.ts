import type { Command } from 'commander';
import { loadConfig, type LabConfig } from '../config/index.js';

export interface GlobalOptions {
  file?: string;
  debug?: boolean;
}

/** The lab config for a command, from `-f FILE` or ./prodhome.yaml or the default lab. */
export function configFrom(cmd: Command): LabConfig {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  return loadConfig({ file: opts.file });
}
