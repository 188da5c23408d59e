export { parseExperiment, parseFault, parseProbe, MIN_WITHIN_MS } from './parse.js';
export { runExperiment, newRunId, type Journal, type JournalEntry, type LoadRecord, type Phase, type RunOptions } from './run.js';
export { builtinNames, experimentText, loadExperiment, BUILTIN_DIR } from './builtin.js';
export type { Experiment, Step, Probe, LoadSpec, FaultSpec, Action, Comparator } from './types.js';
export { writeJournal, writeReport, readJournal, readRunMetrics, listRuns, runDir, experimentsDir, headline, renderMarkdown, renderHtml, type Chart, type Band } from './report.js';
