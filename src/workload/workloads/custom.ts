import fs from 'node:fs';
import { ProdhomeError, messageOf } from '../../errors.js';
import { parseScript, sharedScript, type Defines } from '../script.js';
import { PgbenchRandom } from '../random.js';
import { scriptSource } from '../script-source.js';
import type { Workload } from '../types.js';
import { pgbenchScale } from './tpcb.js';

interface CustomShared {
  file: string;
  text: string;
  scale: number;
  /** -D NAME=VALUE as given: text, as pgbench takes them (and gets them under --engine pgbench). */
  defines: Record<string, string>;
}

/**
 * A pgbench script file, in the whole of pgbench's script language (see script.ts). Under
 * --engine pgbench the script is pgbench's business: prodhome does not parse it, so pgbench runs
 * whatever it accepts and reports its own errors.
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
      const script = parseScript(text, file, defines); // syntax errors surface here, before any client starts
      if (!script.commands.some((c) => c.kind === 'sql')) throw new ProdhomeError('SCRIPT_SYNTAX', `${file}: the script has no SQL statement to run`);
    }
    // pgbench sets :scale from -s (default 1); reading pgbench_branches when it exists is friendlier.
    const scale = options.scale ?? (await pgbenchScale(sql)) ?? 1;
    return { file, text, scale, defines };
  },
  client({ file, text, scale, defines }, { clientId, clients, seed }) {
    // pgbench's generator, seeded per client as pgbench does: the same --random-seed draws the same numbers
    return scriptSource(sharedScript(text, file, defines), { scale, clientId, seed, defaultSeed: PgbenchRandom.defaultSeed(seed, clients), defines }, PgbenchRandom.forClient(seed, clientId));
  },
  plan: ({ file, text, scale }) => ({ summary: `script ${file}, :scale ${scale}`, script: text }),
  pgbench: ({ file, scale, defines }) => ['-f', file, '-s', String(scale), ...Object.entries(defines).flatMap(([k, v]) => ['-D', `${k}=${v}`])],
};
