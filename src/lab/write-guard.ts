import type { LabConfig, SubscriptionSpec, TableRef } from '../config/index.js';
import { ProdhomeError } from '../errors.js';

/**
 * Writes aimed at a subscriber's replicated tables: a row seeded or imported there takes a key
 * the publisher will send later, and that insert then fails on the subscriber with a duplicate
 * key — the subscription stalls until someone resolves it. Data commands are refused there
 * unless --force, naming the subscription and the conflict.
 */

export interface WriteIntent {
  /** The command as the user typed it, e.g. "seed books". */
  what: string;
  tables: TableRef[];
  force?: boolean;
}

/** The subscriptions that feed `table` on `node`, by the config. */
export function feedingSubscriptions(config: LabConfig, node: string, table: TableRef): SubscriptionSpec[] {
  return config.replication.subscriptions.filter(
    (s) =>
      s.node === node &&
      s.publications.some((name) => {
        const pub = config.replication.publications.find((p) => p.name === name);
        return pub && (pub.allTables || pub.tables.some((t) => t.table.schema === table.schema && t.table.name === table.name));
      }),
  );
}

/** Throws when the writes land on tables a subscription feeds on `node`; with force, returns the warning instead. */
export function guardWrites(config: LabConfig, node: string, intent: WriteIntent): string | undefined {
  const hits = intent.tables.flatMap((t) => feedingSubscriptions(config, node, t).map((s) => ({ t, s })));
  const first = hits[0];
  if (!first) return undefined;
  const subs = [...new Set(hits.map((h) => h.s.name))];
  const tables = [...new Set(hits.map((h) => `${h.t.schema}.${h.t.name}`))];
  const message =
    `${intent.what} on ${node}: ${tables.join(', ')} ${tables.length > 1 ? 'are' : 'is'} replicated there by subscription ${subs.map((s) => `"${s}"`).join(', ')} from ${first.s.publisher}. ` +
    `Rows written on ${node} take keys ${first.s.publisher} will send too: its next insert of such a key fails there with a duplicate key and stops ${subs.join(', ')} until resolved (\`prodhome replication resolve\`)`;
  if (intent.force) return `${message}; going ahead (--force)`;
  throw new ProdhomeError('REPLICATED_TABLE', message, {
    hint: `Write on ${first.s.publisher} instead (it replicates to ${node}), or pass --force to write on ${node} anyway.`,
  });
}

/** Tables a SQL script writes (INSERT INTO, UPDATE, DELETE FROM, COPY … FROM, TRUNCATE, MERGE INTO): best effort from its text. */
export function writtenTables(script: string): TableRef[] {
  const found = new Map<string, TableRef>();
  const text = script.replace(/--[^\n]*/g, ' ');
  const re = /\b(?:insert\s+into|update|delete\s+from|merge\s+into|truncate(?:\s+table)?|copy)\s+(?:only\s+)?((?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)(?:\s*\.\s*(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*))?)/gi;
  for (const m of text.matchAll(re)) {
    if (/^copy/i.test(m[0]) && !new RegExp(`${escape(m[1]!)}[^;]*\\bfrom\\b`, 'i').test(text.slice(m.index!))) continue;
    const parts = m[1]!.split(/\s*\.\s*/).map((p) => (p.startsWith('"') ? p.slice(1, -1).replace(/""/g, '"') : p.toLowerCase()));
    const ref = parts.length === 2 ? { schema: parts[0]!, name: parts[1]! } : { schema: 'public', name: parts[0]! };
    found.set(`${ref.schema}.${ref.name}`, ref);
  }
  return [...found.values()];
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
