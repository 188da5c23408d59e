import type { ReplicationConfig, SubscriptionSpec, TableRef } from '../config/index.js';
import type { Sql } from '../pg/index.js';
import { qualified, tableKey } from './catalog.js';

/**
 * A row filter (`where:` in the config) is SQL text that prodhome pastes into statements:
 * EXPLAIN … WHERE (…) to check it, CREATE/ALTER PUBLICATION … WHERE (…), and on subscribers
 * SELECT/DELETE … WHERE (…) to tell one subscription's rows from another's. Config files get
 * shared, so the text must stay ONE expression inside those parentheses. The lexical check
 * below refuses everything that could end it early or hide what follows: a `;`, a comment, a
 * `)` closing a parenthesis it did not open, an unclosed quote, and the two quotings whose end
 * depends on server settings or is easy to get wrong (backslash escapes, dollar quotes).
 * The probe then runs in a READ ONLY transaction that is always rolled back, over the
 * extended protocol (one statement per message, whatever the text says).
 */

/** Why `text` is not one expression prodhome will paste, or undefined when it is. */
export function validateRowFilter(text: string): string | undefined {
  if (!text.trim()) return 'it is empty';
  if (text.includes('\\')) return "it contains a backslash (E'…' escapes are not accepted in a row filter; write the character itself)";
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'" || c === '"') {
      const end = closing(text, i, c);
      if (end < 0) return `a ${c === "'" ? 'string literal' : 'quoted identifier'} is not closed`;
      i = end;
      continue;
    }
    if (c === ';') return 'it contains ";" outside a string literal: a row filter is one expression, not statements';
    if (c === '$') return 'it contains "$" (dollar quoting and $n parameters are not accepted in a row filter; use \'…\' literals)';
    if (c === '-' && text[i + 1] === '-') return 'it contains a comment (--)';
    if (c === '/' && text[i + 1] === '*') return 'it contains a comment (/*)';
    if (c === '\0') return 'it contains a NUL character';
    if (c === '(') depth++;
    if (c === ')' && --depth < 0) return 'a ")" closes a parenthesis the filter did not open';
  }
  if (depth > 0) return 'a "(" is not closed';
  return undefined;
}

/** Index of the quote that closes the one at `start` (a doubled quote stays inside), or -1. */
function closing(text: string, start: number, q: string): number {
  for (let j = start + 1; j < text.length; j++) {
    if (text[j] !== q) continue;
    if (text[j + 1] === q) {
      j++;
      continue;
    }
    return j;
  }
  return -1;
}

/** Throws when a filter is not one expression; used right before a filter is pasted into SQL. */
export function assertRowFilter(text: string, where: string): string {
  const why = validateRowFilter(text);
  if (why) throw new Error(`${where}: the row filter (${text}) is refused: ${why}`);
  return text;
}

const ROLLBACK = Symbol('rollback');
/**
 * The driver sends an unparameterised `unsafe` text as a simple Query, which runs every
 * statement in it; `simple: false` (honoured at run time, missing from its typings) makes it
 * Parse/Bind/Execute, which refuses a second statement.
 */
const EXTENDED = { simple: false } as { prepare?: boolean };

/**
 * Runs one read-only query built around a validated filter, in a READ ONLY transaction that is
 * always rolled back, with a statement timeout, over the extended protocol.
 */
export async function readOnlyProbe<T extends Record<string, unknown>>(sql: Sql, text: string): Promise<T[]> {
  let rows: T[] = [];
  try {
    await sql.begin('read only', async (tx) => {
      await tx`set local statement_timeout = '10s'`;
      rows = (await tx.unsafe(text, [], EXTENDED)) as unknown as T[];
      throw ROLLBACK;
    });
  } catch (e) {
    if (e !== ROLLBACK) throw e;
  }
  return rows;
}

/** Checks a filter on the publisher: one expression (lexically), then a boolean over the table's columns; says why not ("refused: …" / "not valid: …"). */
export async function checkRowFilter(sql: Sql, table: TableRef, where: string): Promise<string | undefined> {
  const why = validateRowFilter(where);
  if (why) return `refused: ${why}`;
  try {
    await readOnlyProbe(sql, `EXPLAIN SELECT FROM ${qualified(table)} WHERE (${where})`);
  } catch (e) {
    return `not valid: ${(e as Error).message}`;
  }
  return undefined;
}

/**
 * The row filters under which a subscription receives a table, from the config (with the
 * heartbeat added): `all` when one of its publications sends every row of it, undefined when
 * it does not receive the table at all.
 */
export function filtersOf(config: ReplicationConfig, sub: SubscriptionSpec, table: TableRef): string[] | 'all' | undefined {
  const key = tableKey(table);
  let found: string[] | 'all' | undefined;
  for (const p of config.publications.filter((x) => sub.publications.includes(x.name))) {
    if (p.allTables) return 'all';
    const t = p.tables.find((x) => tableKey(x.table) === key);
    if (!t) continue;
    if (!t.where) return 'all';
    found = [...(found ?? []), t.where];
  }
  return found;
}

/** SQL that is true for the rows these filters select (each validated before it is pasted). */
export function filterPredicate(filters: string[] | 'all', where: string): string {
  if (filters === 'all') return 'true';
  return `(${filters.map((f) => `(${assertRowFilter(f, where)})`).join(' OR ')}) IS TRUE`;
}
