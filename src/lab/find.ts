import fs from 'node:fs';
import path from 'node:path';
import { CONFIG_FILE_NAME, configFromText, findConfigFile, loadConfig, type LabConfig, type LoadOptions, type NodeSpec } from '../config/index.js';
import { isProdhomeError, type ProdhomeError } from '../errors.js';
import { runningPid } from '../runtime/index.js';
import { agentPid } from './agent.js';
import { files, labIdFor, readState, type LabState } from './state.js';

/**
 * The lab `status`, `down` and `destroy` act on. Usually the config's; but a lab must stay
 * within reach when its config no longer names it — the file is broken, gone, or its `lab:` was
 * renamed after `up` — so these three fall back on the lab's state dir, as `git` works on a
 * repository whatever its worktree holds. A state dir is taken only when its state.json says it
 * was brought up from that very config file and it sits where that lab puts it
 * (`.prodhome/<lab>`, with the lab id that path gives): nothing another lab made is acted on.
 */
export interface LabTarget {
  config: LabConfig;
  /** Why the lab acted on is not the config's, in one line (printed on stderr). */
  note?: string;
}

export function findLab(options: LoadOptions = {}): LabTarget {
  const cwd = options.cwd ?? process.cwd();
  let config: LabConfig;
  try {
    config = loadConfig(options);
  } catch (e) {
    if (!isProdhomeError(e) || !['CONFIG_SYNTAX', 'CONFIG_INVALID', 'CONFIG_NOT_FOUND'].includes(e.code)) throw e;
    const file = options.file ? path.resolve(cwd, options.file) : findConfigFile(cwd);
    if (!file) throw e;
    const labs = labsFrom(path.dirname(file), file);
    if (labs.length !== 1) {
      if (labs.length > 1) e.message += `\n(labs brought up from it: ${labs.map((l) => `"${l.state.lab}" in ${l.stateDir}`).join(', ')}; fix the config to act on one)`;
      throw e;
    }
    const [found] = labs as [FoundLab];
    const label = path.relative(cwd, file) || file;
    const why = e.code === 'CONFIG_NOT_FOUND' ? `${label} does not exist` : `${label} is broken (${firstProblem(e)})`;
    return { config: configOf(found), note: `${why}; acting on the ${condition(found)} lab "${found.state.lab}" from its state in ${found.stateDir}` };
  }
  const own = readState(config.stateDir);
  if (own) {
    // The default lab's name is the one a renamed or deleted prodhome.yaml often had.
    const recorded = recordedConfig(config.stateDir, own);
    if (recorded && recorded !== config.configFile && !fs.existsSync(recorded)) {
      const found = { stateDir: config.stateDir, state: { ...own, configFile: recorded } };
      return { config: configOf(found), note: `${recorded} is gone; acting on the ${condition(found)} lab "${own.lab}" from its state in ${config.stateDir}` };
    }
    return { config };
  }
  if (config.configFile) {
    // `lab:` renamed after up: the state of this file's lab sits under its old name.
    const labs = labsFrom(config.baseDir, config.configFile).filter((l) => l.state.lab !== config.lab);
    if (labs.length === 1) {
      const [found] = labs as [FoundLab];
      const label = path.relative(cwd, config.configFile) || config.configFile;
      return {
        config: configOf(found),
        note: `lab "${config.lab}" (${label}) has not been brought up, but this file brought up lab "${found.state.lab}" (its lab: was renamed?); acting on that ${condition(found)} lab from its state in ${found.stateDir}`,
      };
    }
    return { config };
  }
  // No config file found: a lab brought up from the prodhome.yaml this command would have read
  // here (or above), now renamed or deleted. (A lab of `-f other.yaml` is left to `-f`.)
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    const labs = labsFrom(dir, path.join(dir, CONFIG_FILE_NAME));
    if (labs.length === 1) {
      const [found] = labs as [FoundLab];
      return { config: configOf(found), note: `${found.state.configFile} is gone; acting on the ${condition(found)} lab "${found.state.lab}" from its state in ${found.stateDir}` };
    }
    if (labs.length > 1 || fs.existsSync(path.join(dir, '.prodhome')) || path.dirname(dir) === dir) return { config };
  }
}

interface FoundLab {
  stateDir: string;
  state: LabState;
}

/**
 * The labs in `<baseDir>/.prodhome/` (brought up from `configFile` when it is given). Each must
 * be a real directory named after its lab, holding the lab id its path gives.
 */
function labsFrom(baseDir: string, configFile?: string): FoundLab[] {
  const root = path.join(baseDir, '.prodhome');
  let names: string[];
  try {
    if (!fs.lstatSync(root).isDirectory()) return [];
    names = fs.readdirSync(root);
  } catch {
    return [];
  }
  const found: FoundLab[] = [];
  for (const name of names) {
    const stateDir = path.join(root, name);
    try {
      if (!fs.lstatSync(stateDir).isDirectory()) continue;
    } catch {
      continue;
    }
    const state = readState(stateDir);
    if (!state || state.lab !== name || state.labId !== labIdFor(name, stateDir)) continue;
    if (configFile !== undefined && recordedConfig(stateDir, state) !== configFile) continue;
    found.push({ stateDir, state: { ...state, configFile: recordedConfig(stateDir, state) } });
  }
  return found;
}

/** The config file a lab was brought up from: state.json says so; older labs' agent.json did. */
function recordedConfig(stateDir: string, state: LabState): string | undefined {
  if (state.configFile) return state.configFile;
  try {
    return (JSON.parse(fs.readFileSync(path.join(stateDir, 'agent.json'), 'utf8')) as { configFile?: string }).configFile;
  } catch {
    return undefined;
  }
}

function condition(found: FoundLab): string {
  const running = agentPid(found.stateDir) !== undefined || Object.values(found.state.nodes).some((n) => n.runtime === 'local' && runningPid(n.dataDir) !== undefined);
  return running ? 'running' : 'stopped';
}

/** The config the lab was last brought up with (its copy in the state dir), else one made from its state. */
function configOf({ stateDir, state }: FoundLab): LabConfig {
  const baseDir = path.dirname(path.dirname(stateDir));
  try {
    const copy = configFromText(fs.readFileSync(files(stateDir).configCopy, 'utf8'), { file: state.configFile, baseDir, label: files(stateDir).configCopy });
    if (copy.lab === state.lab) return { ...copy, stateDir };
  } catch {
    // a lab brought up before the copy was kept, or an unreadable copy: the state alone
  }
  const nodes: NodeSpec[] = Object.entries(state.nodes).map(([name, n]) => ({
    name,
    role: 'standalone',
    runtime: n.runtime,
    url: n.runtime === 'external' ? n.url : undefined,
    settings: {},
    postgres: {},
  }));
  return {
    lab: state.lab,
    runAs: state.runAs?.name ?? 'prodhome',
    ports: { from: 54320, to: 54399 },
    postgres: {},
    nodes,
    configFile: state.configFile,
    baseDir,
    stateDir,
    replication: { schema: [], seed: [], publications: [], subscriptions: [] },
    metrics: { intervalMs: 1000, sinks: [], prometheus: false, retentionDays: 7 },
    dashboard: false,
  };
}

/** "line 3: …" from a config error's first problem. */
function firstProblem(e: ProdhomeError): string {
  const lines = e.message.split('\n').map((l) => l.trim()).filter(Boolean);
  const problems = lines.length > 1 ? lines.slice(1) : lines;
  const m = /^.*?:(\d+)(?::\d+)?: (.*)$/.exec(problems[0]!);
  const first = m ? `line ${m[1]}: ${m[2]}` : problems[0]!;
  return problems.length > 1 ? `${first}; and ${problems.length - 1} more` : first;
}
