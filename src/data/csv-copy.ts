// The fast way in for `import`: the file's bytes rewritten into CSV as Postgres's COPY reads it,
// and the server parses the rows — as psql's \copy lets it. Most bytes pass through untouched
// (spans are copied, no value is built); only what COPY would read differently from CsvParser is
// rewritten. What cannot be rewritten safely makes the whole fast path give way (Abandon) to the
// careful one (import.ts), which reads every value itself and reports every bad row by line.

/** Thrown out of the fast path: the file needs the careful one (the reason is for --debug only). */
export class Abandon extends Error {
  constructor(reason: string) {
    super(`fast import abandoned: ${reason}`);
    this.name = 'Abandon';
  }
}

/** What the transcoder tells a type guesser about each value of the columns it still wants. */
export interface ValueSink {
  wants(column: number): boolean;
  /** A non-NULL value; `excel` for ="…" (text by intent). */
  value(column: number, v: string, excel: boolean): void;
}

const QUOTE = 0x22;
const EQUALS = 0x3d;
const CR = 0x0d;
const LF = 0x0a;
const BACKSLASH = 0x5c;
// Excel's ="…" inside a quoted field, as CsvParser reads it (the same pattern).
const EXCEL_IN_QUOTES = /^="((?:[^"]|"")*)"$/s;
const CARRY_MAX = 8 << 20; // a record longer than this goes the careful way

const INCOMPLETE = -1;

/**
 * Turns pieces of a CSV file (any size, split anywhere) into COPY CSV bytes, one LF-terminated
 * line per record, the header record left out (COPY gets the column list instead). Agrees with
 * CsvParser record for record and value for value, or throws Abandon:
 * - blank lines are skipped, line breaks (LF, CRLF, CR) become LF; inside quotes they are kept;
 * - ="…" (bare or inside quotes) becomes a quoted field holding the text;
 * - a first field starting with a backslash is quoted (COPY would take a lone `\.` for the end);
 * - a quote inside a bare field, text after a closing quote, an unterminated quote or a record
 *   with the wrong number of fields: Abandon (COPY reads those differently, or they are bad rows).
 * Bytes are UTF-8 as they come: Postgres checks them (and a failure sends the careful path).
 */
export class CsvToCopy {
  /** Data records seen (the header not counted). */
  rows = 0;
  private readonly delim: number;
  private carry: Buffer | undefined;
  private header = true;
  private first = true;

  constructor(
    delimiter: string,
    private readonly width: number,
    private readonly sink?: ValueSink,
  ) {
    this.delim = delimiter.charCodeAt(0);
    if (delimiter.length !== 1 || this.delim > 0x7f) throw new Abandon('the delimiter is not a single ASCII character');
  }

  /** COPY bytes for the records this piece completes. */
  push(piece: Buffer): Buffer {
    return this.run(piece, false);
  }

  /** COPY bytes for the last record, when the file does not end with a line break. */
  end(): Buffer {
    return this.run(Buffer.alloc(0), true);
  }

  private run(piece: Buffer, final: boolean): Buffer {
    let data = this.carry ? Buffer.concat([this.carry, piece]) : piece;
    this.carry = undefined;
    if (this.first && data.length >= 3) {
      this.first = false;
      if (data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf) data = data.subarray(3); // Excel's BOM
    } else if (this.first && final) this.first = false;
    else if (this.first) {
      this.carry = Buffer.from(data);
      return Buffer.alloc(0);
    }
    const out = new Splicer(data);
    let i = 0;
    const n = data.length;
    while (i < n) {
      const c = data[i]!;
      if (c === CR || c === LF) {
        out.cut(i, i + 1); // a blank line, or the LF of a CRLF split across pieces
        i++;
        continue;
      }
      const mark = out.mark();
      const next = this.record(data, i, final, out);
      if (next === INCOMPLETE) {
        out.restore(mark);
        if (n - i > CARRY_MAX) throw new Abandon('a record of more than 8 MB');
        this.carry = Buffer.from(data.subarray(i));
        return out.take(i);
      }
      if (this.header) {
        this.header = false;
        out.restore(mark);
        out.cut(i, next);
      } else this.rows++;
      i = next;
    }
    return out.take(n);
  }

  /**
   * Reads the record at data[at], leaving its bytes to go out as they are except where COPY needs
   * them rewritten (out.cut); returns the index after it (past its line break), or INCOMPLETE.
   */
  private record(data: Buffer, at: number, final: boolean, out: Splicer): number {
    const n = data.length;
    const d = this.delim;
    const sink = this.header ? undefined : this.sink;
    let i = at;
    let field = 0;
    for (;;) {
      // A field starts at i.
      const c = i < n ? data[i]! : -1;
      const wants = sink !== undefined && sink.wants(field);
      if (c === QUOTE || (c === EQUALS && c !== d && i + 1 < n && data[i + 1] === QUOTE)) {
        const excelBare = c === EQUALS;
        const open = excelBare ? i + 1 : i;
        // Find the closing quote: "" inside is an escaped quote.
        let j = open + 1;
        for (;;) {
          j = data.indexOf(QUOTE, j);
          if (j === -1 && final) throw new Abandon(`an unterminated quoted field (record ${this.rows + 1})`);
          if (j === -1 || (j + 1 === n && !final)) return INCOMPLETE;
          if (data[j + 1] === QUOTE) j += 2;
          else break;
        }
        const after = j + 1 < n ? data[j + 1]! : -1;
        if (after !== -1 && after !== d && after !== CR && after !== LF) throw new Abandon(`text after a closing quote (record ${this.rows + 1})`);
        // Latin-1 keeps every byte as one character: a rewritten value goes back byte for byte.
        const candidate = !excelBare && data[open + 1] === EQUALS;
        const value = wants || candidate ? unquote(data.toString('latin1', open + 1, j)) : '';
        const excelQuoted = candidate ? EXCEL_IN_QUOTES.exec(value) : null;
        if (excelBare) out.cut(i, open); // ="…" → "…": the same text, quoted
        else if (excelQuoted) {
          out.cut(i, j + 1);
          out.quoted(Buffer.from(unquote(excelQuoted[1]!), 'latin1'));
        }
        if (wants) sink.value(field, excelQuoted ? unquote(excelQuoted[1]!) : value, excelBare || !!excelQuoted);
        i = j + 1;
      } else if (c === EQUALS && c !== d && i + 1 === n && !final) {
        return INCOMPLETE; // ="… or a bare = : the next piece tells
      } else if (c !== d && c !== CR && c !== LF && c !== -1) {
        // A bare field: up to the delimiter or line break; a quote in it COPY would read as quoting.
        let j = i;
        while (j < n) {
          const b = data[j]!;
          if (b === d || b === LF || b === CR) break;
          if (b === QUOTE) throw new Abandon(`a quote inside an unquoted field (record ${this.rows + 1})`);
          j++;
        }
        if (j === n && !final) return INCOMPLETE;
        if (field === 0 && c === BACKSLASH) {
          out.cut(i, i);
          out.byte(QUOTE);
          out.cut(j, j);
          out.byte(QUOTE);
        }
        if (wants) sink.value(field, data.toString('latin1', i, j), false);
        i = j;
      }
      // else: an empty bare field, NULL — nothing to write.
      field++;
      const e = i < n ? data[i]! : -1;
      if (e === d) {
        i++;
        continue;
      }
      if (e === -1 && !final) return INCOMPLETE;
      if (field !== this.width && !this.header) throw new Abandon(`record ${this.rows + 1} has ${field} fields, not ${this.width}`);
      if (e === LF) return i + 1; // as it is
      const next = e === CR && i + 1 < n && data[i + 1] === LF ? i + 2 : e === CR ? i + 1 : i;
      out.cut(i, next);
      out.byte(LF);
      return next;
    }
  }
}

const unquote = (s: string) => (s.includes('"') ? s.replace(/""/g, '"') : s);

/**
 * The output for one piece of input: the input's bytes as they are, but for the spans cut out
 * (and whatever is written in their place). Untouched runs are copied once, in one go.
 */
class Splicer {
  private length = 0;
  /** Where the input not yet copied out begins. */
  private from = 0;
  private buf: Buffer;

  constructor(private readonly data: Buffer) {
    this.buf = Buffer.allocUnsafe(data.length + 64);
  }

  /** The input before `at` goes out as it is; from `at` up to `resume` it does not. */
  cut(at: number, resume: number): void {
    this.put(this.data, this.from, at);
    this.from = resume;
  }

  byte(b: number): void {
    this.fit(1);
    this.buf[this.length++] = b;
  }

  /** `text` as a quoted CSV field (quotes doubled). */
  quoted(text: Buffer): void {
    this.byte(QUOTE);
    let from = 0;
    for (let q = text.indexOf(QUOTE); q !== -1; q = text.indexOf(QUOTE, q + 1)) {
      this.put(text, from, q + 1);
      this.byte(QUOTE);
      from = q + 1;
    }
    this.put(text, from, text.length);
    this.byte(QUOTE);
  }

  mark(): [number, number] {
    return [this.length, this.from];
  }

  /** Forgets what was written since `mark` (a record that turned out incomplete, or the header). */
  restore([length, from]: [number, number]): void {
    this.length = length;
    this.from = from;
  }

  /** The output, with the input up to `end` copied out. */
  take(end: number): Buffer {
    if (this.length === 0 && this.from === 0) return this.data.subarray(0, end); // nothing cut: the input itself
    this.put(this.data, this.from, end);
    this.from = end;
    return this.buf.subarray(0, this.length);
  }

  private put(src: Buffer, from: number, to: number): void {
    const len = to - from;
    if (len <= 0) return;
    this.fit(len);
    src.copy(this.buf, this.length, from, to);
    this.length += len;
  }

  private fit(more: number): void {
    if (this.length + more <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + more + 64));
    this.buf.copy(bigger, 0, 0, this.length);
    this.buf = bigger;
  }
}
