import fs from 'node:fs';
import { isMap, isScalar, parseDocument, stringify, type Document, type Pair, type YAMLMap } from 'yaml';
import { DEFAULT_CONFIG_YAML, parseConfigText, type LabConfig } from '../config/index.js';
import { ProdhomeError } from '../errors.js';

/**
 * `replication add` writes into the user's prodhome.yaml. Re-serialising the file would move
 * their comments, spacing and flow style about, so new entries are inserted as text after the
 * last entry of their section, in its indentation and style; nothing else in the file changes.
 */

type Entry = Record<string, string | string[]>;

/** A new subscription (and subscriber node if needed) written into prodhome.yaml; returns what changed. */
export function addSubscriptionToConfig(config: LabConfig, sub: { name: string; node: string; publications: string[] }): string[] {
  if (!config.configFile) {
    throw new ProdhomeError('USAGE', 'the default lab has no prodhome.yaml to add a subscription to', { hint: 'Run `prodhome init` first, then add it.' });
  }
  let text = fs.readFileSync(config.configFile, 'utf8');
  const changes: string[] = [];
  if (parseDocument(text).hasIn(['subscriptions', sub.name])) throw new ProdhomeError('USAGE', `subscription "${sub.name}" is already in ${config.configFile}`);
  if (!config.nodes.some((n) => n.name === sub.node)) {
    const caps = subscriberCaps(parseDocument(text));
    text = addEntry(text, 'nodes', sub.node, { role: 'subscriber', ...caps });
    changes.push(`nodes.${sub.node}: a new subscriber node${Object.keys(caps).length ? ` (${Object.entries(caps).map(([k, v]) => `${k}: ${v}`).join(', ')}, as the lab's other subscribers)` : ''}`);
  }
  text = addEntry(text, 'subscriptions', sub.name, { node: sub.node, publications: sub.publications });
  changes.push(`subscriptions.${sub.name}: ${sub.node} subscribes to ${sub.publications.join(', ')}`);
  // Validate before writing: a bad addition must not leave a broken config behind.
  parseConfigText(text, config.configFile);
  fs.writeFileSync(config.configFile, text);
  return changes;
}

const CAPS = ['memory', 'cpus'] as const;

/** The caps a new subscriber gets: those of the file's first subscriber that has some, else the default lab's. */
function subscriberCaps(doc: Document): Record<string, string> {
  const fromMap = (node: unknown): Record<string, string> => {
    if (!isMap(node)) return {};
    return Object.fromEntries(CAPS.flatMap((k) => (node.has(k) ? [[k, String(node.get(k))]] : [])));
  };
  const nodes = doc.get('nodes', true);
  if (isMap(nodes)) {
    for (const pair of nodes.items) {
      if (!isMap(pair.value) || pair.value.get('role') !== 'subscriber') continue;
      const caps = fromMap(pair.value);
      if (Object.keys(caps).length) return caps;
    }
  }
  return fromMap(parseDocument(DEFAULT_CONFIG_YAML).getIn(['nodes', 'subscriber1'], true));
}

/** Inserts `key: entry` as the last entry of the top-level map `section` (made at the end of the file if absent). */
function addEntry(text: string, section: string, key: string, entry: Entry): string {
  const doc = parseDocument(text);
  const map = doc.get(section, true);
  if (map === undefined || map === null || (isScalar(map) && map.value === null)) {
    const body = blockEntry(key, entry, '  ', '  ');
    const sectionLine = new RegExp(`^${section}:[ \\t]*(#.*)?$`, 'm').exec(text);
    if (sectionLine) return `${text.slice(0, sectionLine.index + sectionLine[0].length)}\n${body}${text.slice(sectionLine.index + sectionLine[0].length)}`;
    return `${text}${text.endsWith('\n') ? '' : '\n'}\n${section}:\n${body}`;
  }
  if (!isMap(map) || map.flow || !map.items.length) {
    // A flow-style section ({ … }) has no lines to insert: the yaml library writes it instead.
    doc.setIn([section, key], doc.createNode(entry));
    return doc.toString();
  }
  const first = map.items[0] as Pair;
  const last = map.items[map.items.length - 1] as Pair;
  const keyStart = (first.key as { range?: [number, number, number] }).range![0];
  const indent = text.slice(text.lastIndexOf('\n', keyStart - 1) + 1, keyStart);
  const value = last.value as (YAMLMap & { range?: [number, number, number] }) | null;
  const end = value?.range?.[1] ?? (last.key as { range: [number, number, number] }).range[1];
  // Insert after the line the last entry's value ends on.
  const lineEnd = text.indexOf('\n', Math.max(0, end - 1));
  const at = lineEnd === -1 ? text.length : lineEnd + 1;
  const unit = indent.length ? indent : '  ';
  const body = isMap(value) && value.flow ? `${indent}${scalar(key)}: ${flowEntry(entry)}\n` : blockEntry(key, entry, indent, unit);
  return `${text.slice(0, at)}${at === text.length && !text.endsWith('\n') ? '\n' : ''}${body}${text.slice(at)}`;
}

const scalar = (v: string) => stringify(v).trim();

function blockEntry(key: string, entry: Entry, indent: string, unit: string): string {
  const inner = indent + unit;
  const lines = [`${indent}${scalar(key)}:`];
  for (const [k, v] of Object.entries(entry)) lines.push(Array.isArray(v) ? `${inner}${k}: [${v.map(scalar).join(', ')}]` : `${inner}${k}: ${scalar(v)}`);
  return `${lines.join('\n')}\n`;
}

function flowEntry(entry: Entry): string {
  return `{ ${Object.entries(entry).map(([k, v]) => `${k}: ${Array.isArray(v) ? `[${v.map(scalar).join(', ')}]` : scalar(v)}`).join(', ')} }`;
}
