import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LabConfig } from '../config/index.js';
import { didYouMean } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { parseExperiment } from './parse.js';
import type { Experiment } from './types.js';

/** The built-in experiments are data files beside the source (shipped in the package). */
export const BUILTIN_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'experiment', 'builtin');

/** A file is capped: an experiment is a page of YAML. */
const FILE_CAP = 256 * 1024;

export function builtinNames(dir = BUILTIN_DIR): string[] {
  return fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).map((f) => f.replace(/\.yaml$/, '')).sort();
}

/** The text of an experiment given as a file path or a built-in name. */
export function experimentText(ref: string, cwd = process.cwd()): { text: string; label: string; source: string } {
  const looksLikeFile = /[/\\]|\.ya?ml$/.test(ref);
  if (looksLikeFile) {
    const file = path.resolve(cwd, ref);
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      throw new ProdhomeError('USAGE', `experiment file ${ref} does not exist`, { hint: `Check the path; \`prodhome experiment list\` names the built-in ones.` });
    }
    if (!st.isFile()) throw new ProdhomeError('USAGE', `experiment file ${ref} is not a regular file`);
    if (st.size > FILE_CAP) throw new ProdhomeError('USAGE', `experiment file ${ref} is ${st.size} bytes; an experiment is at most ${FILE_CAP} bytes`);
    return { text: fs.readFileSync(file, 'utf8'), label: path.relative(cwd, file) || file, source: file };
  }
  const names = builtinNames();
  if (!names.includes(ref)) {
    const guess = didYouMean(ref, names);
    throw new ProdhomeError('USAGE', `there is no built-in experiment "${ref}"${guess ? ` (did you mean ${guess}?)` : ''}; built in: ${names.join(', ')}`, {
      hint: 'Give a file (FILE.yaml) or one of the names above; `prodhome experiment list` describes them.',
    });
  }
  return { text: fs.readFileSync(path.join(BUILTIN_DIR, `${ref}.yaml`), 'utf8'), label: `builtin/${ref}.yaml`, source: `builtin:${ref}` };
}

/** Reads and checks an experiment (against the lab when one is given); nothing runs. */
export function loadExperiment(ref: string, opts: { scale?: number; config?: LabConfig; cwd?: string } = {}): Experiment {
  const { text, label, source } = experimentText(ref, opts.cwd);
  return parseExperiment(text, label, source, { scale: opts.scale, config: opts.config });
}
