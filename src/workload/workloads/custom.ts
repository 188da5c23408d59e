import fs from 'node:fs';
import { ProdhomeError, messageOf } from '../../errors.js';
import { parseScript, type Defines } from '../script.js';
import { scriptSource } from '../script-source.js';
import type { Workload } from '../types.js';
import { pgbenchScale } from './tpcb.js';

interface CustomShared {
  file: string;
  text: string;
  scale: number;
  /** -D NAME=VALUE as given: pgbench gets them as they are. */
  defines: Record<string, string>;
}

/**
 * A pgbench-syntax script file: \set with random functions, :var substitution, several statements, \sleep.
 * Under --engine pgbench the script is pgbench's business: prodhome does not parse it, so pgbench
 * runs whatever it accepts and reports its own errors.
 */
export const custom: Workload<CustomShared> = {
  name: 'custom',
  description: 'a pgbench-syntax script: prodhome load custom FILE.sql',
  takes: ['file', 'scale', 'defines'],
  async prepare({ sql, options, engine }) {
    const file = options.file;
    if (!file) throw new ProdhomeError('USAGE', 'the custom workload needs a script file: prodhome load custom FILE.sql');
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new ProdhomeError('USAGE', `cannot read the script ${file}: ${messageOf(e)}`);
    }
    const defines = options.defines ?? {};
    if (engine === 'prodhome') {
      const script = parseScript(text, file, numericDefines(defines)); // syntax errors surface here, before any client starts
      if (!script.commands.some((c) => c.kind === 'sql')) throw new ProdhomeError('SCRIPT_SYNTAX', `${file}: the script has no SQL statement to run`);
    }
    // pgbench sets :scale from -s (default 1); reading pgbench_branches when it exists is friendlier.
    const scale = options.scale ?? (await pgbenchScale(sql)) ?? 1;
    return { file, text, scale, defines };
  },
  client({ file, text, scale, defines }, { clientId, random, seed }) {
    const numbers = numericDefines(defines);
    return scriptSource(parseScript(text, file, numbers), { ...numbers, scale, client_id: clientId, random_seed: seed, default_seed: seed }, random);
  },
  plan: ({ file, text, scale }) => ({ summary: `script ${file}, :scale ${scale}`, script: text }),
  pgbench: ({ file, scale, defines }) => ['-f', file, '-s', String(scale), ...Object.entries(defines).flatMap(([k, v]) => ['-D', `${k}=${v}`])],
};

/** The prodhome engine's -D variables: numbers (pgbench's strings pass through --engine pgbench only). */
function numericDefines(raw: Record<string, string>): Defines {
  const out: Defines = {};
  for (const [name, text] of Object.entries(raw)) {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n)) {
      throw new ProdhomeError('USAGE', `-D ${name}=${text}: the prodhome engine takes numbers for -D variables`, { hint: 'Give a number, or run the script with --engine pgbench, which takes text.' });
    }
    out[name] = n;
  }
  return out;
}
