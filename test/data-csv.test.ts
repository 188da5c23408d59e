import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Abandon, CsvToCopy } from '../src/data/csv-copy.js';
import { CsvParser, type CsvOptions, type CsvRecord } from '../src/data/csv.js';
import { TypeGuesser } from '../src/data/infer.js';
import { ROOT } from './helpers.js';

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

// The fast import path rewrites the file into COPY's CSV for the server to parse. Its promise: the
// server gets exactly the records and values CsvParser reads (read back here with CsvParser, which
// reads COPY's CSV the same way: plain fields carry no quote), or it gives way (Abandon).

function transcode(input: Buffer, width: number, delimiter = ',', cuts: number[] = [], guess?: TypeGuesser): { copy: string; rows: number } {
  const t = new CsvToCopy(delimiter, width, guess);
  const out: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts, input.length]) {
    out.push(t.push(input.subarray(at, cut)));
    at = cut;
  }
  out.push(t.end());
  return { copy: Buffer.concat(out).toString('utf8'), rows: t.rows };
}

/** What CsvToCopy must give for `input`: the data records' values, or undefined when it must abandon. */
function expected(input: string, delimiter: string): (string | null)[][] | undefined {
  const [header, ...records] = parse([input.replace(/^\ufeff/, '')], { delimiter });
  if (records.some((r) => r.error || r.values.length !== header!.values.length)) return undefined;
  return records.map((r) => r.values);
}

function agrees(input: string, delimiter = ',', cuts: number[][] = [[]]): 'copy' | 'abandoned' {
  const want = expected(input, delimiter);
  const width = parse([input.replace(/^\ufeff/, '')], { delimiter })[0]?.values.length ?? 1;
  let outcome: 'copy' | 'abandoned' | undefined;
  for (const c of cuts) {
    let got: { copy: string; rows: number };
    try {
      got = transcode(Buffer.from(input), width, delimiter, c);
    } catch (e) {
      if (!(e instanceof Abandon)) throw e;
      expect(outcome ?? 'abandoned', `${JSON.stringify(input)} cut at ${c}`).toBe('abandoned');
      outcome = 'abandoned';
      continue;
    }
    expect(want, `${JSON.stringify(input)}: bad records must not go through`).toBeDefined();
    expect(parse([got.copy], { delimiter }).map((r) => r.values), `${JSON.stringify(input)} cut at ${c}: ${JSON.stringify(got.copy)}`).toEqual(want);
    expect(got.rows).toBe(want!.length);
    expect(got.copy).not.toMatch(/(^|\n)\\\.(\n|$)/); // COPY would stop at a lone \.
    expect(got.copy).not.toMatch(/\r(?=[^"]*$)/); // line breaks outside quotes are LF
    expect(outcome ?? 'copy').toBe('copy');
    outcome = 'copy';
  }
  return outcome!;
}

const everyCut = (s: string) => [[], ...Array.from({ length: Buffer.byteLength(s) + 1 }, (_, k) => [k])];

describe('CsvToCopy: the fast path agrees with CsvParser, or gives way', () => {
  it('a Goodreads export (="…" ISBNs, quoted commas and line breaks) goes through, cut anywhere', () => {
    const gr = fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'goodreads.csv'), 'utf8');
    expect(agrees(gr, ',', everyCut(gr))).toBe('copy');
    const { copy } = transcode(Buffer.from(gr), 18);
    expect(copy).toContain(',"0385504209","9780385504201",'); // ="…" as the text inside, quoted
    expect(copy.startsWith('1001,')).toBe(true); // no header: COPY gets the column list
  });

  it.each([
    ['CRLF, CR and blank lines', 'a,b\r\n1,2\r\n\r\n3,4\r5,6\n\n', 'copy'],
    ['a BOM, tabs, and a quoted CRLF kept', '\ufeffa\tb\r\n1\t"x\r\ny"\r\n', 'copy'],
    ['NULL and empty string', 'a,b,c\n,"",x\n"",,\n', 'copy'],
    ['a lone \\. is quoted (COPY would end there)', 'a\n\\.\nb\n', 'copy'],
    ['= alone, =x, ="" and a quoted =""x""', 'a,b,c,d\n=,=x,="","=""x"""\n', 'copy'],
    ['no final line break', 'a,b\n1,2', 'copy'],
    ['= as the delimiter', 'a=b\n1=\n"x"=2\n', 'copy'],
    ['= as the delimiter, =" is no Excel text', 'a=b\n="x"=2\n', 'abandoned'],
    ['a quote inside a bare field', 'a,b\n5" disk,2\n', 'abandoned'],
    ['text after a closing quote', 'a,b\n"x"y,2\n', 'abandoned'],
    ['an unterminated quote', 'a,b\n1,"x\n', 'abandoned'],
    ['too few fields', 'a,b\n1\n', 'abandoned'],
    ['too many fields', 'a,b\n1,2,3\n', 'abandoned'],
  ])('%s', (_, input, outcome) => {
    const delimiter = input.includes('\t') ? '\t' : input.startsWith('a=b') ? '=' : ',';
    expect(agrees(input, delimiter, everyCut(input))).toBe(outcome);
  });

  it('random CSV-ish text: never a value that differs (20,000 inputs, cut at a few points)', () => {
    const alphabet = ['a', 'b', ',', '"', '""', '\n', '\r\n', '\r', '=', '="', '\\.', ' ', 'é', '1', '\t'];
    let seed = 1;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
    const seen = { copy: 0, abandoned: 0 };
    for (let k = 0; k < 20_000; k++) {
      let s = 'h1,h2\n';
      for (let len = rnd(30); len > 0; len--) s += alphabet[rnd(alphabet.length)];
      if (!expected(s, ',')) continue;
      seen[agrees(s, ',', everyCut(s).slice(0, 6))]++;
    }
    expect(seen.copy).toBeGreaterThan(1000); // most well-formed inputs go the fast way
  });

  it('types are guessed from every value on the way, as TypeGuesser does from records', () => {
    const input = 'id,isbn,rating,day,flag,note\n1,="007",4.5,2024/01/02,yes,"x"\n2,"=""0042""",3,2024-02-30,no,\n3,,"7",,t,1\n';
    const fromRecords = new TypeGuesser(6);
    for (const r of parse([input]).slice(1)) fromRecords.add(r);
    const onTheWay = new TypeGuesser(6);
    transcode(Buffer.from(input), 6, ',', [], onTheWay);
    expect(onTheWay.types()).toEqual(fromRecords.types());
    expect(onTheWay.types()).toEqual(['bigint', 'text', 'numeric', 'text', 'boolean', 'text']);
  });
});
