import { ProdhomeError } from '../../errors.js';
import { bookIds, SELECT, type IdRange } from './books.js';
import type { Workload } from '../types.js';

/** Point reads: one SELECT of a random id between min(id) and max(id) per transaction. */
export const read: Workload<IdRange> = {
  name: 'read',
  description: 'SELECT a book by a random id between min(id) and max(id)',
  takes: [],
  async prepare({ sql, node }) {
    const range = await bookIds(sql, node);
    if (range.max < range.min) {
      throw new ProdhomeError('WORKLOAD_SETUP', `${node}: table "books" is empty; there is nothing to read`, {
        hint: 'Add rows first: prodhome seed books --rows 100000, or prodhome load inserter -T 10.',
      });
    }
    return range;
  },
  client(range, { random }) {
    return { next: () => [{ statement: SELECT, values: [random.int(range.min, range.max)] }] };
  },
  plan: (range) => ({ summary: `books reads, ids ${range.min}…${range.max}`, script: `${SELECT.text};  -- $1: random(${range.min}, ${range.max})` }),
};
