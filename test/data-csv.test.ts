import { describe, expect, it } from 'vitest';
import { CsvParser, type CsvOptions, type CsvRecord } from '../src/data/csv.js';

// The CSV parser, table-driven and byte for byte: each input, whole and split at every possible
// point (records, quotes and CRLFs cut in two), must give exactly these records.

function parse(pieces: string[], opts?: CsvOptions): CsvRecord[] {
  const p = new CsvParser(opts);
  return [...pieces.flatMap((s) => p.push(s)), ...p.end()];
}

type V = (string | null)[];
const rec = (line: number, endLine: number, values: V, raw: string, more: Partial<CsvRecord> = {}): CsvRecord => ({ values, excel: [], line, endLine, raw, ...more });

const AFTER_QUOTE = (field: number) => `unexpected text after the closing quote of field ${field} (a quote inside a quoted field is written "")`;

const cases: { name: string; input: string; opts?: CsvOptions; records: CsvRecord[] }[] = [
  { name: 'plain records, LF', input: 'a,b\n1,2\n', records: [rec(1, 1, ['a', 'b'], 'a,b'), rec(2, 2, ['1', '2'], '1,2')] },
  { name: 'no final line break', input: 'a,b\n1,2', records: [rec(1, 1, ['a', 'b'], 'a,b'), rec(2, 2, ['1', '2'], '1,2')] },
  { name: 'CRLF line breaks', input: 'a,b\r\n1,2\r\n', records: [rec(1, 1, ['a', 'b'], 'a,b'), rec(2, 2, ['1', '2'], '1,2')] },
  { name: 'lone CR line breaks (old Mac)', input: 'a\rb\r', records: [rec(1, 1, ['a'], 'a'), rec(2, 2, ['b'], 'b')] },
  { name: 'empty unquoted is NULL, quoted empty is an empty string', input: 'a,,""\n', records: [rec(1, 1, ['a', null, ''], 'a,,""')] },
  { name: 'a trailing delimiter is one more NULL field', input: 'a,\nb,', records: [rec(1, 1, ['a', null], 'a,'), rec(2, 2, ['b', null], 'b,')] },
  { name: 'a leading delimiter', input: ',a\n', records: [rec(1, 1, [null, 'a'], ',a')] },
  { name: 'only delimiters', input: ',,\n', records: [rec(1, 1, [null, null, null], ',,')] },
  { name: 'delimiters and doubled quotes inside quotes', input: '"x, y","say ""hi""",""""\n', records: [rec(1, 1, ['x, y', 'say "hi"', '"'], '"x, y","say ""hi""",""""')] },
  {
    name: 'an embedded LF: the record spans two physical lines',
    input: 'id,note\n1,"line one\nline two"\n2,x\n',
    records: [rec(1, 1, ['id', 'note'], 'id,note'), rec(2, 3, ['1', 'line one\nline two'], '1,"line one\nline two"'), rec(4, 4, ['2', 'x'], '2,x')],
  },
  {
    name: 'an embedded CRLF is kept byte for byte',
    input: '1,"a\r\nb"\r\n2,c',
    records: [rec(1, 2, ['1', 'a\r\nb'], '1,"a\r\nb"'), rec(3, 3, ['2', 'c'], '2,c')],
  },
  { name: 'an embedded lone CR counts as a line', input: '"a\rb",c\nd', records: [rec(1, 2, ['a\rb', 'c'], '"a\rb",c'), rec(3, 3, ['d'], 'd')] },
  { name: 'blank lines are skipped but counted', input: 'a\n\n\r\nb\n\n', records: [rec(1, 1, ['a'], 'a'), rec(4, 4, ['b'], 'b')] },
  { name: 'blank lines before the first record', input: '\n\na', records: [rec(3, 3, ['a'], 'a')] },
  {
    name: 'Excel ="…" unquoted: text kept as is, leading zeros too',
    input: '="0385504209",="",=x,=,a=b\n',
    records: [rec(1, 1, ['0385504209', '', '=x', '=', 'a=b'], '="0385504209",="",=x,=,a=b', { excel: [0, 1] })],
  },
  { name: 'Excel ="…" with a delimiter and a doubled quote inside', input: '="a,b",="say ""x""",c\n', records: [rec(1, 1, ['a,b', 'say "x"', 'c'], '="a,b",="say ""x""",c', { excel: [0, 1] })] },
  { name: 'a lone = at the end of input', input: 'a,=', records: [rec(1, 1, ['a', '='], 'a,=')] },
  {
    name: 'Excel ="…" inside quotes, as Goodreads writes ISBNs',
    input: '"=""0385504209""","=""""","=""9780385504201""",x\n',
    records: [rec(1, 1, ['0385504209', '', '9780385504201', 'x'], '"=""0385504209""","=""""","=""9780385504201""",x', { excel: [0, 1, 2] })],
  },
  { name: 'quoted text that only looks like Excel stays as is', input: '"=""a"" b",="x"y\n', records: [rec(1, 1, ['="a" b', 'xy'], '"=""a"" b",="x"y', { excel: [1], error: AFTER_QUOTE(2) })] },
  { name: 'a quote inside an unquoted field is an ordinary character', input: '5\'11",x"y"\n', records: [rec(1, 1, ['5\'11"', 'x"y"'], '5\'11",x"y"')] },
  { name: 'spaces are data; a quote after a space is literal', input: ' a , "b" \n', records: [rec(1, 1, [' a ', ' "b" '], ' a , "b" ')] },
  {
    name: 'text after a closing quote: the record is marked, the next one is fine',
    input: 'a,"b"c,d\ne\n',
    records: [rec(1, 1, ['a', 'bc', 'd'], 'a,"b"c,d', { error: AFTER_QUOTE(2) }), rec(2, 2, ['e'], 'e')],
  },
  {
    name: 'an unterminated quote swallows the rest and says where it opened',
    input: 'h\na,"b\nc\n',
    records: [rec(1, 1, ['h'], 'h'), rec(2, 4, ['a', 'b\nc\n'], 'a,"b\nc\n', { error: 'unterminated quoted field: the quote opened on line 2 is never closed' })],
  },
  { name: 'tab delimiter', input: 'a\tb\n"x\ty"\tz', opts: { delimiter: '\t' }, records: [rec(1, 1, ['a', 'b'], 'a\tb'), rec(2, 2, ['x\ty', 'z'], '"x\ty"\tz')] },
  { name: 'semicolon delimiter: commas are data', input: 'a;b,c\n', opts: { delimiter: ';' }, records: [rec(1, 1, ['a', 'b,c'], 'a;b,c')] },
  { name: 'non-ASCII text', input: 'é,"ü\nß"\n😀', records: [rec(1, 2, ['é', 'ü\nß'], 'é,"ü\nß"'), rec(3, 3, ['😀'], '😀')] },
  { name: 'one field, no line break', input: 'x', records: [rec(1, 1, ['x'], 'x')] },
  { name: 'empty input', input: '', records: [] },
  { name: 'only a line break', input: '\r\n', records: [] },
];

describe('CsvParser: table-driven, byte for byte', () => {
  it.each(cases)('$name', ({ input, opts, records }) => {
    expect(parse([input], opts)).toEqual(records);
  });

  it.each(cases)('$name: the same records however the text is split', ({ input, opts, records }) => {
    for (let i = 0; i <= input.length; i++) expect(parse([input.slice(0, i), input.slice(i)], opts)).toEqual(records);
    expect(parse([...input], opts)).toEqual(records); // one UTF-16 unit at a time
  });
});

describe('CsvParser: what it refuses', () => {
  it.each(['"', '\n', '\r', ',,', ''])('delimiter %j', (d) => {
    expect(() => new CsvParser({ delimiter: d })).toThrow(/expected one character other than a quote or a line break/);
  });

  it('a quoted field that never ends, past the size limit, names the line its quote opened on', () => {
    const p = new CsvParser({ maxFieldChars: 10 });
    p.push('a\nb,"');
    expect(() => p.push('x'.repeat(20))).toThrow(/line 2: a quoted field runs on for more than 10 characters; is its closing quote missing\?/);
  });

  it('keeps at most 4096 characters of a record\'s raw text', () => {
    const [r] = parse([`"${'x'.repeat(10_000)}"`, ',y\n']);
    expect(r!.raw.length).toBe(4096);
    expect(r!.values).toEqual(['x'.repeat(10_000), 'y']);
  });
});
