import { bookIds, bookRow, IdAllocator, INSERT, type IdRange } from './books.js';
import type { Workload } from '../types.js';

/** The origin's books inserter: one INSERT per transaction, pausing a Rayleigh-distributed time between them. */
export const inserter: Workload<IdRange> = {
  name: 'inserter',
  description: 'INSERT new books (ids after max(id), never colliding between clients), with Rayleigh-distributed pauses',
  defaultSchedule: 'rayleigh:mean=1ms',
  takes: [],
  prepare: ({ sql, node }) => bookIds(sql, node),
  client(range, { clientId, clients, random }) {
    const ids = new IdAllocator(range, clientId, clients);
    return { next: () => [{ statement: INSERT, values: bookRow(ids.next(), random) }] };
  },
  plan: (range) => ({
    summary: `books inserts from id ${range.max + 1}`,
    script: `${INSERT.text};  -- $1: max(id)+1+client, stepping by the number of clients`,
  }),
};
