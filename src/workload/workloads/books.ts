import { ProdhomeError } from '../../errors.js';
import type { Sql } from '../../pg/index.js';
import type { Random } from '../random.js';
import { statement } from '../statement.js';

/**
 * What the books workloads (inserter, read, mixed) share: the lab's books table, its id range,
 * ids that never collide between clients, and titles made from small word lists.
 */
export const TOPICS = ['leadership', 'technical'] as const;

export const INSERT = statement('INSERT INTO books (id, sku, title, topic) VALUES ($1, $2, $3, $4)');
export const SELECT = statement('SELECT id, sku, title, topic FROM books WHERE id = $1');
/** Flips the topic, so the row leaves one row-filtered publication and enters the other. */
export const FLIP = statement("UPDATE books SET topic = CASE topic WHEN 'leadership' THEN 'technical' ELSE 'leadership' END WHERE id = $1");
export const DELETE = statement('DELETE FROM books WHERE id = $1');

export interface IdRange {
  /** Lowest and highest id when the run began; max 0 and min 1 for an empty table. */
  min: number;
  max: number;
}

/** min(id) and max(id) of books, or a clear error when the table is missing. */
export async function bookIds(sql: Sql, node: string): Promise<IdRange> {
  try {
    const [row] = await sql<{ min: string | null; max: string | null }[]>`select min(id)::text as min, max(id)::text as max from books`;
    return { min: row?.min === null || row?.min === undefined ? 1 : Number(row.min), max: row?.max === null || row?.max === undefined ? 0 : Number(row.max) };
  } catch (e) {
    if ((e as { code?: string }).code === '42P01') {
      throw new ProdhomeError('WORKLOAD_SETUP', `${node}: table "books" does not exist`, {
        hint: 'The default lab creates it (prodhome up); elsewhere: CREATE TABLE books (id bigint PRIMARY KEY, sku int, title text, topic text).',
      });
    }
    throw e;
  }
}

/**
 * Ids for one client's inserts: after the table's max(id), interleaved by client (client k of n
 * takes max+1+k, max+1+k+n, …), so clients never collide with each other.
 */
export class IdAllocator {
  private n = 0;
  constructor(
    private readonly range: IdRange,
    private readonly clientId: number,
    private readonly clients: number,
  ) {}

  next(): number {
    return this.range.max + 1 + this.clientId + this.n++ * this.clients;
  }

  /** A random id that probably exists: the starting range plus roughly what all clients inserted. */
  existing(random: Random): number {
    const hi = this.range.max + this.n * this.clients;
    return hi < this.range.min ? this.range.min : random.int(this.range.min, hi);
  }
}

const ADJECTIVES = ['Quiet', 'Distributed', 'Practical', 'Lean', 'Radical', 'Scalable', 'Humble', 'Resilient', 'Elegant', 'Unfinished', 'Durable', 'Candid'];
const NOUNS = ['Leader', 'Database', 'Team', 'System', 'Index', 'Habit', 'Replica', 'Manager', 'Query', 'Engineer', 'Transaction', 'Mission'];
const TAILS = ['at Scale', 'in Practice', 'for Humans', 'Explained', 'from Scratch', 'Under Load', 'in Production', 'Revisited'];

/** A book row for `INSERT`: [id, sku, title, topic]. */
export function bookRow(id: number, random: Random): [number, number, string, string] {
  const pick = <T>(xs: readonly T[]) => xs[random.int(0, xs.length - 1)]!;
  const title = `The ${pick(ADJECTIVES)} ${pick(NOUNS)} ${pick(TAILS)}`;
  return [id, random.int(100_000, 999_999), title, pick(TOPICS)];
}
