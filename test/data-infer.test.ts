import { describe, expect, it } from 'vitest';
import { CsvParser, TypeGuesser, columnNames, type InferredType } from '../src/data/index.js';

// import --create's column types and names, table-driven; no server needed.

function infer(csv: string): InferredType[] {
  const p = new CsvParser();
  const [header, ...rows] = [...p.push(csv), ...p.end()];
  const g = new TypeGuesser(header!.values.length);
  for (const r of rows) g.add(r);
  return g.types();
}

const cases: { name: string; values: string[]; type: InferredType }[] = [
  { name: 'integers', values: ['1', '-42', '+7', '0', '9223372036854775807', '-9223372036854775808'], type: 'bigint' },
  { name: 'beyond bigint', values: ['1', '9223372036854775808'], type: 'numeric' },
  { name: 'decimals and exponents', values: ['1', '4.12', '-.5', '3.', '1e10', '2.5E-3'], type: 'numeric' },
  { name: 'leading zeros are kept as text', values: ['0385504209', '12'], type: 'text' },
  { name: 'a leading-zero decimal', values: ['00.5'], type: 'text' },
  { name: 'zero point something is a number', values: ['0.5', '0'], type: 'numeric' },
  { name: 'booleans', values: ['true', 'False', 't', 'f', 'YES', 'no', 'y', 'N'], type: 'boolean' },
  { name: '1 and 0 stay numbers', values: ['1', '0'], type: 'bigint' },
  { name: 'dates with - or /', values: ['2023-01-05', '2023/02/28', '2024/02/29'], type: 'date' },
  { name: 'an impossible date', values: ['2023-02-29'], type: 'text' },
  { name: 'month 13', values: ['2023-13-01'], type: 'text' },
  { name: 'day-first dates are ambiguous: text', values: ['05/01/2023'], type: 'text' },
  { name: 'timestamps', values: ['2023-01-05 10:11', '2023-01-05T10:11:12Z', '2023-01-05 10:11:12.123456+05:30', '2023-01-05 10:11:12-0800'], type: 'timestamptz' },
  { name: 'dates mixed with timestamps', values: ['2023-01-05', '2023-01-05 10:11:12'], type: 'timestamptz' },
  { name: 'hour 24', values: ['2023-01-05 24:00:00'], type: 'text' },
  { name: 'anything else', values: ['1', 'two'], type: 'text' },
  { name: 'NaN is not a number here', values: ['NaN'], type: 'text' },
];

describe('TypeGuesser', () => {
  it.each(cases)('$name → $type', ({ values, type }) => {
    expect(infer(`h\n${values.map((v) => `"${v}"`).join('\n')}\n`)).toEqual([type]);
  });

  it('ignores NULLs; a column of only NULLs, or with no rows, is text', () => {
    expect(infer('a,b,c\n1,,2023-01-05\n,,\n3,,\n')).toEqual(['bigint', 'text', 'date']);
    expect(infer('a,b\n')).toEqual(['text', 'text']);
  });

  it('an Excel ="…" value is text, whatever it looks like', () => {
    expect(infer('isbn,n\n="0385504209",="12"\n"=""12""",5\n')).toEqual(['text', 'text']);
    expect(infer('n\n="12"\n')).toEqual(['text']);
  });
});

describe('columnNames', () => {
  it('makes Goodreads headers into plain column names', () => {
    expect(columnNames(['Book Id', 'Title', 'Author l-f', 'ISBN13', 'My Rating', 'Date Read', 'Bookshelves with positions'])).toEqual([
      'book_id', 'title', 'author_l_f', 'isbn13', 'my_rating', 'date_read', 'bookshelves_with_positions',
    ]);
  });

  it('keeps letters of any script, names empty headers, and makes duplicates unique', () => {
    expect(columnNames(['Größe (cm)', '', '  ', 'a', 'A', 'a_2', '№'])).toEqual(['größe_cm', 'column_2', 'column_3', 'a', 'a_2', 'a_2_2', 'column_7']);
  });

  it('fits Postgres\'s 63-byte identifiers, multi-byte letters included', () => {
    const [long, again] = columnNames(['é'.repeat(40), 'é'.repeat(40)]);
    expect(Buffer.byteLength(long!)).toBeLessThanOrEqual(63);
    expect(long).toBe('é'.repeat(31));
    expect(again).toBe(`${'é'.repeat(30)}_2`);
  });
});
