import { ProdhomeError } from '../../errors.js';
import { bookIds, bookRow, DELETE, FLIP, IdAllocator, INSERT, SELECT, type IdRange } from './books.js';
import type { Step, Workload } from '../types.js';

const KINDS = ['insert', 'update', 'delete', 'select'] as const;
type Kind = (typeof KINDS)[number];
export type Weights = Record<Kind, number>;
export const DEFAULT_WEIGHTS = 'insert=1,update=1,delete=1,select=5';

/** Parses --weights insert=1,update=1,delete=1,select=5 (kinds left out weigh 0). */
export function parseWeights(text: string): Weights {
  const w: Weights = { insert: 0, update: 0, delete: 0, select: 0 };
  const hint = `For example: --weights ${DEFAULT_WEIGHTS}`;
  for (const part of text.split(',')) {
    const m = /^\s*([a-z]+)\s*=\s*(\d+)\s*$/.exec(part);
    if (!m) throw new ProdhomeError('USAGE', `--weights ${text}: "${part.trim()}" is not KIND=WEIGHT (a whole number)`, { hint });
    if (!KINDS.includes(m[1] as Kind)) throw new ProdhomeError('USAGE', `--weights ${text}: unknown kind "${m[1]}" (expected ${KINDS.join(', ')})`, { hint });
    w[m[1] as Kind] = Number(m[2]);
  }
  if (KINDS.every((k) => w[k] === 0)) throw new ProdhomeError('USAGE', `--weights ${text}: every weight is 0`, { hint });
  return w;
}

interface MixedShared {
  range: IdRange;
  weights: Weights;
}

/**
 * A little of everything, by weight: inserts (ids as the inserter's), updates that flip topic
 * between 'leadership' and 'technical' — so rows move between the lab's row-filtered
 * subscribers — deletes and point reads, one statement per transaction.
 */
export const mixed: Workload<MixedShared> = {
  name: 'mixed',
  description: 'weighted INSERT / UPDATE (flips topic: rows move between subscribers) / DELETE / SELECT on books',
  takes: ['weights'],
  async prepare({ sql, node, options }) {
    const weights = parseWeights(options.weights ?? DEFAULT_WEIGHTS);
    return { range: await bookIds(sql, node), weights };
  },
  client({ range, weights }, { clientId, clients, random }) {
    const ids = new IdAllocator(range, clientId, clients);
    const total = KINDS.reduce((n, k) => n + weights[k], 0);
    const pick = (): Kind => {
      let r = random.int(1, total);
      for (const k of KINDS) if ((r -= weights[k]) <= 0) return k;
      return 'select';
    };
    return {
      next(): Step[] {
        switch (pick()) {
          case 'insert':
            return [{ statement: INSERT, values: bookRow(ids.next(), random) }];
          case 'update':
            return [{ statement: FLIP, values: [ids.existing(random)] }];
          case 'delete':
            return [{ statement: DELETE, values: [ids.existing(random)] }];
          case 'select':
            return [{ statement: SELECT, values: [ids.existing(random)] }];
        }
      },
    };
  },
  plan: ({ range, weights }) => ({
    summary: `books ${KINDS.map((k) => `${k}=${weights[k]}`).join(',')}, ids from ${range.min}`,
    script: [INSERT, FLIP, DELETE, SELECT].map((s, i) => `${s.text};  -- weight ${weights[KINDS[i]!]}`).join('\n'),
  }),
};
