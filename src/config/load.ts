import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { LineCounter, Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { ProdhomeError } from '../errors.js';
import { DEFAULT_LAB_PARSED } from './default-parsed.js';
import { cachedParse, rememberParse } from './cache.js';
import { CONFIG_FILE_CAP, SCHEMA_FILE_CAP, SEED_FILE_CAP, readBoundedFile } from './files.js';
import { labSchema, type LabParsed, type NodeParsed } from './schema.js';
import { parseDuration } from './duration.js';
import { parsePgMemory, parseSize } from './sizes.js';
import type { LabConfig, NodeSpec, PublicationSpec, ReplicationConfig, SubscriptionSpec, TableRef } from './types.js';

export const CONFIG_FILE_NAME = 'prodhome.yaml';

/** The YAML parser, loaded on first use (the default lab and the `--version` path need none). */
const yaml = () => createRequire(import.meta.url)('yaml') as typeof import('yaml');

/** Aliases a config may expand (the yaml library's maxAliasCount); its default, stated. */
const MAX_ALIAS_COUNT = 100;

export interface LoadOptions {
  /** `-f FILE`; otherwise prodhome.yaml in `cwd`, otherwise the default lab. */
  file?: string;
  cwd?: string;
}

/** Finds, parses and validates the lab's config. Throws a ProdhomeError naming file:line and field. */
export function loadConfig(options: LoadOptions = {}): LabConfig {
  const cwd = options.cwd ?? process.cwd();
  let file: string | undefined;
  let text: string | undefined;
  if (options.file) {
    file = path.resolve(cwd, options.file);
    if (!fs.existsSync(file)) {
      throw new ProdhomeError('CONFIG_NOT_FOUND', `config file ${options.file} does not exist`, {
        hint: `Check the path, or run \`prodhome init -f ${options.file}\` to write a default one.`,
      });
    }
  } else {
    file = findConfigFile(cwd);
  }
  if (file) {
    // Capped before parsing: a 50 MB config would cost gigabytes of memory in any command.
    text = readBoundedFile(file, {
      what: 'config file',
      cap: CONFIG_FILE_CAP,
      checkPrivilege: false,
      hint: 'A prodhome.yaml is a few KiB; keep data in files it names (schema: file:, seed: file:) or load it with `prodhome import`.',
    });
  }
  // The default lab is known data: no YAML parser, no zod (default-parsed.ts).
  let parsed: LabParsed;
  if (text === undefined) parsed = structuredClone(DEFAULT_LAB_PARSED);
  else {
    // An unchanged config validated before needs no YAML parser and no zod (cache.ts).
    const cached = cachedParse(file!, text);
    parsed = cached ?? parseConfigText(text, path.relative(cwd, file!) || file!);
    if (!cached) rememberParse(file!, text, parsed);
  }
  const baseDir = file ? path.dirname(file) : cwd;
  return normalise(parsed, file, baseDir);
}

/**
 * A config from text that stands for `file` (undefined: the default lab) in `baseDir`: the copy
 * of the config a lab was last brought up with, read when the file itself is broken or gone.
 */
export function configFromText(text: string, where: { file?: string; baseDir: string; label: string }): LabConfig {
  return normalise(parseConfigText(text, where.label), where.file, where.baseDir);
}

/**
 * YAML text parsed with positions kept: the data, and the line of any path in it. Syntax errors,
 * duplicate keys and alias bombs are one CONFIG_SYNTAX/CONFIG_INVALID error naming file:line.
 * Shared by prodhome.yaml and experiment files.
 */
export interface YamlWithLines {
  data: unknown;
  /** 1-based line of the value at `path` (or the key, with `key`), else of the deepest node found. */
  lineOf(path: readonly PropertyKey[], key?: boolean): number;
}

export function parseYamlWithLines(text: string, label: string): YamlWithLines {
  const { LineCounter, parseDocument } = yaml();
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const lines = doc.errors.map((err) => {
      const pos = lineCounter.linePos(err.pos[0]);
      const what = err.code === 'DUPLICATE_KEY' ? 'a key appears twice (each node name and setting must be unique)' : firstLine(err.message);
      return `${label}:${pos.line}:${pos.col}: ${what}`;
    });
    throw new ProdhomeError('CONFIG_SYNTAX', `${label} is not valid YAML:\n  ${lines.join('\n  ')}`, {
      hint: 'Fix the YAML at the line shown (indentation and "key: value" pairs are the usual culprits).',
    });
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) ?? {};
  } catch (e) {
    // The yaml library refuses to expand aliases past the limit (a "billion laughs" document).
    if (e instanceof ReferenceError && /alias/i.test(e.message)) {
      throw new ProdhomeError('CONFIG_INVALID', `${label}: its YAML aliases (*name) expand to more than ${MAX_ALIAS_COUNT} copies of their anchors (&name); prodhome refuses such a document, which would exhaust memory`, {
        hint: 'Write the repeated parts out, or use fewer aliases: a lab config needs a handful at most.',
      });
    }
    throw e;
  }
  return { data, lineOf: (p, key = false) => lineAt(doc.contents, lineCounter, p.map(String), key) };
}

/**
 * The prodhome.yaml that governs `dir`: its own, or the nearest one above it, as git finds its
 * repository — so a command run from a subdirectory of a lab acts on that lab instead of
 * bringing up a second one. Undefined when there is none up to the root (the default lab).
 */
export function findConfigFile(dir: string): string | undefined {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const candidate = path.join(d, CONFIG_FILE_NAME);
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(d) === d) return undefined;
  }
}

/** Parses YAML text into a validated LabParsed; `label` names the source in messages. */
export function parseConfigText(text: string, label: string): LabParsed {
  const { data, lineOf } = parseYamlWithLines(text, label);
  if (typeof data !== 'object' || Array.isArray(data) || data === null) {
    throw new ProdhomeError('CONFIG_INVALID', `${label}:1: expected a mapping of settings (lab:, nodes:, …), got ${describe(data)}`, {
      hint: 'Start from `prodhome init -f example.yaml`, which writes a commented example.',
    });
  }
  const result = labSchema().safeParse(data);
  if (result.success) return result.data;

  const problems = result.error.issues.map((issue) => {
    const where = locate(lineOf, issue);
    const fieldPath = issue.path.map(String).join('.') || '(top level)';
    return `${label}:${where}: ${fieldPath}: ${explain(issue, data)}`;
  });
  const head = problems.length === 1 ? `${label} has a problem:` : `${label} has ${problems.length} problems:`;
  throw new ProdhomeError('CONFIG_INVALID', `${head}\n  ${problems.join('\n  ')}`, {
    hint: 'Fix the fields named above; `prodhome init -f example.yaml` writes a commented example.',
  });
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

/** The line of the YAML node an issue is about (the key itself for unknown keys). */
function locate(lineOf: YamlWithLines['lineOf'], issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `${lineOf([...issue.path, String(issue.keys[0])], true)}`;
  return `${lineOf(issue.path)}`;
}

/** Walks maps (by key) and sequences (by index) as far as the path goes. */
function lineAt(root: YamlNode | null, lc: LineCounter, keyPath: string[], key: boolean): number {
  const { isMap, isPair, isScalar, isSeq } = yaml();
  let node: unknown = root;
  let best: YamlNode | null = root;
  for (let i = 0; i < keyPath.length; i++) {
    const isLast = i === keyPath.length - 1;
    if (isSeq(node)) {
      const item = node.items[Number(keyPath[i])];
      if (!item) break;
      best = item as YamlNode;
      node = item;
      continue;
    }
    if (!isMap(node)) break;
    const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === keyPath[i]);
    if (!pair) break;
    // For an unknown key point at the key; otherwise at the value.
    const target = (isLast && key) || !pair.value ? pair.key : pair.value;
    best = target as YamlNode;
    node = pair.value;
  }
  return lc.linePos(best?.range?.[0] ?? 0).line;
}

function valueAt(data: unknown, p: PropertyKey[]): unknown {
  let v: unknown = data;
  for (const k of p) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null (an empty value)';
  if (typeof v === 'string') return `"${v}"`;
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

function explain(issue: z.core.$ZodIssue, data: unknown): string {
  const value = valueAt(data, issue.path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = knownKeys(issue.path);
      return issue.keys
        .map((k) => {
          const guess = didYouMean(k, known);
          return `unknown key "${k}"${guess ? ` — did you mean "${guess}"?` : known.length ? ` (expected one of: ${known.join(', ')})` : ''}`;
        })
        .join('; ');
    }
    case 'invalid_type':
      if (value === undefined) return `missing; expected ${issue.expected}`;
      return `${issue.message.startsWith('Invalid input') ? `expected ${issue.expected}` : issue.message}, got ${describe(value)}`;
    case 'invalid_value': {
      const options = issue.values.map(String);
      const guess = typeof value === 'string' ? didYouMean(value, options) : undefined;
      return `expected one of ${options.join(', ')}, got ${describe(value)}${guess ? ` — did you mean "${guess}"?` : ''}`;
    }
    case 'invalid_key': {
      const inner = issue.issues[0];
      return `invalid name: ${inner?.message ?? issue.message}`;
    }
    case 'too_small':
    case 'too_big':
      return `${issue.message}, got ${describe(value)}`;
    default:
      return value === undefined || issue.code === 'custom' ? issue.message : `${issue.message} (got ${describe(value)})`;
  }
}

/** The keys a strict object at `p` accepts, found by walking the schema. */
function knownKeys(p: PropertyKey[]): string[] {
  let schema: z.core.$ZodType = labSchema();
  for (const key of [...p, undefined]) {
    // Unwrap optional/default/pipe wrappers until we reach an object or record.
    for (;;) {
      const def = schema._zod.def as unknown as { type: string; innerType?: z.core.$ZodType; in?: z.core.$ZodType };
      if ((def.type === 'optional' || def.type === 'default' || def.type === 'nullable') && def.innerType) schema = def.innerType;
      else if (def.type === 'pipe' && def.in) schema = def.in;
      else break;
    }
    const def = schema._zod.def as unknown as { type: string; shape?: Record<string, z.core.$ZodType>; valueType?: z.core.$ZodType };
    if (key === undefined) return def.type === 'object' && def.shape ? Object.keys(def.shape) : [];
    if (def.type === 'object' && def.shape?.[String(key)]) schema = def.shape[String(key)]!;
    else if (def.type === 'record' && def.valueType) schema = def.valueType;
    else return [];
  }
  return [];
}

export function didYouMean(word: string, options: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const option of options) {
    const d = levenshtein(word.toLowerCase(), option.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = option;
    }
  }
  const limit = Math.max(1, Math.floor(word.length / 3));
  return bestDistance <= limit ? best : undefined;
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function normalise(parsed: LabParsed, file: string | undefined, baseDir: string): LabConfig {
  const resolveDir = (dir: string | undefined) => (dir ? path.resolve(baseDir, dir) : undefined);
  const nodes: NodeSpec[] = Object.entries(parsed.nodes).map(([name, n]: [string, NodeParsed]) => ({
    name,
    role: n.role ?? 'standalone',
    runtime: n.url ? 'external' : 'local',
    url: n.url,
    port: n.port,
    memoryBytes: n.memory ? parseSize(n.memory) : undefined,
    cpus: n.cpus,
    settings: postgresSettings(n),
    postgres: {
      binDir: resolveDir(n.postgres?.binDir),
      version: n.postgres?.version,
    },
  }));
  return {
    lab: parsed.lab,
    runAs: parsed.runAs,
    ports: parsed.ports,
    postgres: { binDir: resolveDir(parsed.postgres?.binDir), version: parsed.postgres?.version },
    nodes,
    configFile: file,
    baseDir,
    stateDir: path.join(baseDir, '.prodhome', parsed.lab),
    replication: normaliseReplication(parsed, baseDir, file),
    metrics: {
      intervalMs: parseDuration(parsed.metrics.interval)!,
      sinks: parsed.metrics.sinks,
      prometheus: parsed.metrics.prometheus,
      store: parsed.metrics.store === false ? undefined : (parsed.metrics.store ?? nodes.find((n) => n.role === 'metrics')?.name),
      retentionDays: Number(parsed.metrics.retention.slice(0, -1)),
    },
    dashboard: parsed.dashboard,
  };
}

export function parseTableRef(text: string): TableRef {
  const dot = text.indexOf('.');
  return dot === -1 ? { schema: 'public', name: text } : { schema: text.slice(0, dot), name: text.slice(dot + 1) };
}

function normaliseReplication(parsed: LabParsed, baseDir: string, file: string | undefined): ReplicationConfig {
  const label = file ? path.basename(file) : '<default lab>';
  const publishers = Object.entries(parsed.nodes).filter(([, n]) => n.role === 'publisher').map(([name]) => name);
  const trustedUid = file ? fs.statSync(file).uid : undefined;
  // Files are read when a command first uses them (replicate, up), never by status or destroy.
  const reader = (rel: string, where: string, what: string, cap: number) =>
    once(() => readBoundedFile(path.resolve(baseDir, rel), { what, cap, where: `${label}: ${where}`, trustedUid, hint: 'Paths in prodhome.yaml are relative to the config file.' }));
  const schema = (parsed.schema ?? []).flatMap((e, i) => {
    const read = e.file !== undefined ? reader(e.file, `schema[${i}].file`, 'schema file', SCHEMA_FILE_CAP) : () => e.sql!;
    return (e.node ? [e.node] : publishers).map((node) => withLazy({ node, origin: e.file ?? `schema[${i}]` }, 'sql', read));
  });
  const seed = (parsed.seed ?? []).flatMap((e, i) => {
    const read = e.file !== undefined ? reader(e.file, `seed[${i}].file`, 'seed file', SEED_FILE_CAP) : () => e.csv!;
    return (e.node ? [e.node] : publishers).map((node) => withLazy({ node, table: parseTableRef(e.table), origin: e.file ?? `seed[${i}]` }, 'csv', read));
  });
  const publications: PublicationSpec[] = Object.entries(parsed.publications ?? {}).map(([name, p]) => ({
    name,
    node: p.node,
    allTables: p.allTables ?? false,
    tables: Object.entries(p.tables ?? {}).map(([t, opts]) => ({ table: parseTableRef(t), ...(opts ?? {}) })),
    publish: p.publish ?? ['insert', 'update', 'delete', 'truncate'],
  }));
  const subscriptions: SubscriptionSpec[] = Object.entries(parsed.subscriptions ?? {}).map(([name, s]) => ({
    name,
    node: s.node,
    publisher: publications.find((p) => p.name === s.publications[0])!.node,
    publications: s.publications,
    options: s.options ?? {},
  }));
  return { schema, seed, publications, subscriptions };
}

/** Reads the files the config names now (before `up` creates anything), so a bad one fails first. */
export function readReplicationFiles(r: ReplicationConfig): void {
  for (const e of r.schema) void e.sql;
  for (const e of r.seed) void e.csv;
}

function once<T>(fn: () => T): () => T {
  let done = false;
  let value: T;
  return () => {
    if (!done) {
      value = fn();
      done = true;
    }
    return value;
  };
}

/** `obj` with an enumerable property `key` computed by `read` when first used. */
function withLazy<T extends object, K extends string>(obj: T, key: K, read: () => string): T & Record<K, string> {
  return Object.defineProperty(obj, key, { enumerable: true, get: read }) as T & Record<K, string>;
}

/** The postgresql.conf lines a node's config asks for (the named shortcuts, then `settings:`). */
function postgresSettings(n: NodeParsed): Record<string, string> {
  const out: Record<string, string> = {};
  if (n.max_connections !== undefined) out.max_connections = String(n.max_connections);
  if (n.shared_buffers !== undefined) out.shared_buffers = pgSize(n.shared_buffers, 8192);
  if (n.work_mem !== undefined) out.work_mem = pgSize(n.work_mem, 1024);
  for (const [k, v] of Object.entries(n.settings ?? {})) out[k] = typeof v === 'boolean' ? (v ? 'on' : 'off') : String(v);
  return out;
}

function pgSize(v: string | number, bareUnit: number): string {
  const bytes = parsePgMemory(v, bareUnit)!;
  return bytes % 1024 === 0 ? `${bytes / 1024}kB` : `${bytes}B`;
}
