import { ProdhomeError } from '../errors.js';

/** One record of a CSV file, as read — before any column or type is considered. */
export interface CsvRecord {
  /** null for an empty unquoted field; '' for a quoted empty one ("") or ="". */
  values: (string | null)[];
  /** Indexes of fields written Excel-style, ="…": text to keep exactly (leading zeros and all). */
  excel: number[];
  /** Physical lines of the file (1-based) the record starts and ends on. */
  line: number;
  endLine: number;
  /** The record as written in the file, without its line break (cut after RAW_MAX characters). */
  raw: string;
  /** Set when the record is malformed: an unterminated quote, text after a closing quote. */
  error?: string;
}

export interface CsvOptions {
  /** One character; default ','. */
  delimiter?: string;
  /** A quoted field longer than this is taken for a missing closing quote (default 16 Mi chars). */
  maxFieldChars?: number;
}

const QUOTE = 0x22;
const EQUALS_SIGN = 0x3d;
const CR = 0x0d;
const LF = 0x0a;
const RAW_MAX = 4096;
// Excel's ="…" inside a quoted field, as Goodreads writes it: "=""0385504209""".
const EXCEL_IN_QUOTES = /^="((?:[^"]|"")*)"$/s;

// Parser states.
const START = 0; // at the start of a field
const UNQUOTED = 1;
const QUOTED = 2; // inside "…" (or Excel's ="…")
const QUOTED_QUOTE = 3; // saw a quote inside a quoted field: "" or the end of it
const EQUALS = 4; // saw = at the start of a field: ="… or just text

/**
 * A streaming CSV parser (RFC 4180 plus what real exports do): push text in pieces of any size —
 * a record, a quote or a CRLF may be split anywhere — and get whole records back. Line breaks
 * are LF, CRLF or CR; inside quotes they are kept byte for byte. Blank lines are skipped. Besides
 * "…" quoting it reads Excel's ="…" (unquoted or inside quotes) as literal text. A quote inside an
 * unquoted field is an ordinary character.
 */
export class CsvParser {
  private readonly delim: number;
  private readonly maxField: number;
  private state = START;
  private field = '';
  private kind: 'unquoted' | 'quoted' | 'excel' = 'unquoted';
  private values: (string | null)[] = [];
  private excel: number[] = [];
  private started = false;
  private line = 1;
  private recordLine = 1;
  private quoteLine = 1;
  private prevCR = false;
  private raw = '';
  private error: string | undefined;
  private out: CsvRecord[] = [];

  constructor(opts: CsvOptions = {}) {
    const d = opts.delimiter ?? ',';
    if (d.length !== 1 || d === '"' || d === '\r' || d === '\n') {
      throw new ProdhomeError('USAGE', `delimiter ${JSON.stringify(d)}: expected one character other than a quote or a line break`);
    }
    this.delim = d.charCodeAt(0);
    this.maxField = opts.maxFieldChars ?? 16 * 1024 * 1024;
  }

  /** The physical line the parser has reached (for messages about the input as a whole). */
  get currentLine(): number {
    return this.line;
  }

  /** Parses the next piece of text; returns the records it completed. */
  push(text: string): CsvRecord[] {
    const n = text.length;
    let i = 0;
    let rawStart = 0;
    // Ends the record at text[at] (a line break), which the caller consumes.
    const endAt = (at: number) => {
      this.addRaw(text.slice(rawStart, at));
      this.emit();
      rawStart = at + 1;
    };
    while (i < n) {
      const c = text.charCodeAt(i);
      switch (this.state) {
        case START:
          if (c === LF && this.prevCR) {
            // the LF of a CRLF that ended the previous record or blank line
            this.prevCR = false;
            rawStart = ++i;
          } else if (c === CR || c === LF) {
            this.prevCR = c === CR;
            if (this.started) {
              this.values.push(null); // "a,⏎": an empty last field
              endAt(i);
            } else rawStart = i + 1; // a blank line
            this.line++;
            i++;
          } else {
            this.prevCR = false;
            this.begin();
            if (c === this.delim) {
              this.values.push(null);
              i++;
            } else if (c === QUOTE) {
              this.openQuote('quoted');
              i++;
            } else if (c === EQUALS_SIGN) {
              this.state = EQUALS;
              i++;
            } else {
              this.state = UNQUOTED;
              this.kind = 'unquoted';
            }
          }
          break;
        case EQUALS:
          if (c === QUOTE) {
            this.openQuote('excel');
            i++;
          } else {
            this.state = UNQUOTED;
            this.kind = 'unquoted';
            this.field = '=';
          }
          break;
        case UNQUOTED: {
          let j = i;
          while (j < n) {
            const ch = text.charCodeAt(j);
            if (ch === this.delim || ch === CR || ch === LF) break;
            j++;
          }
          this.field += text.slice(i, j);
          i = j;
          if (j < n) i = this.fieldEnd(text.charCodeAt(j), j, endAt);
          break;
        }
        case QUOTED: {
          let j = i;
          for (; j < n; j++) {
            const ch = text.charCodeAt(j);
            if (ch === QUOTE) break;
            if (ch === CR) {
              this.line++;
              this.prevCR = true;
            } else {
              if (ch === LF && !this.prevCR) this.line++;
              this.prevCR = false;
            }
          }
          this.field += text.slice(i, j);
          if (this.field.length > this.maxField) {
            throw new ProdhomeError('CSV_INVALID', `line ${this.quoteLine}: a quoted field runs on for more than ${this.maxField} characters; is its closing quote missing?`);
          }
          if (j < n) {
            this.prevCR = false;
            this.state = QUOTED_QUOTE;
            i = j + 1;
          } else i = j;
          break;
        }
        case QUOTED_QUOTE:
          if (c === QUOTE) {
            this.field += '"'; // "" inside quotes
            this.state = QUOTED;
            i++;
          } else if (c === this.delim || c === CR || c === LF) {
            i = this.fieldEnd(c, i, endAt);
          } else {
            this.error ??= `unexpected text after the closing quote of field ${this.values.length + 1} (a quote inside a quoted field is written "")`;
            this.state = UNQUOTED; // read on to the end of the field, to find where the record ends
          }
          break;
      }
    }
    if (this.started) this.addRaw(text.slice(rawStart));
    return this.take();
  }

  /** Ends the input: returns the last record, if the text did not end with a line break. */
  end(): CsvRecord[] {
    if (this.state === QUOTED) {
      this.error ??= `unterminated quoted field: the quote opened on line ${this.quoteLine} is never closed`;
      this.finishField();
    } else if (this.state === EQUALS) {
      this.field = '=';
      this.kind = 'unquoted';
      this.finishField();
    } else if (this.state !== START) this.finishField();
    else if (this.started) this.values.push(null);
    if (this.started) this.emit();
    return this.take();
  }

  private begin(): void {
    if (this.started) return;
    this.started = true;
    this.recordLine = this.line;
  }

  private openQuote(kind: 'quoted' | 'excel'): void {
    this.state = QUOTED;
    this.kind = kind;
    this.field = '';
    this.quoteLine = this.line;
  }

  /** A delimiter or line break `c` at text[at] ends the field (and maybe the record); returns the next index. */
  private fieldEnd(c: number, at: number, endAt: (at: number) => void): number {
    this.finishField();
    this.state = START;
    if (c === this.delim) return at + 1;
    endAt(at);
    this.prevCR = c === CR;
    this.line++;
    return at + 1;
  }

  private finishField(): void {
    let v: string | null = this.field;
    if (this.kind === 'unquoted') {
      if (v === '') v = null;
    } else if (this.kind === 'excel') {
      this.excel.push(this.values.length);
    } else {
      const m = EXCEL_IN_QUOTES.exec(v);
      if (m) {
        v = m[1]!.replace(/""/g, '"');
        this.excel.push(this.values.length);
      }
    }
    this.values.push(v);
    this.field = '';
    this.kind = 'unquoted';
  }

  private addRaw(s: string): void {
    if (this.raw.length < RAW_MAX) this.raw += s.length > RAW_MAX ? s.slice(0, RAW_MAX) : s;
  }

  private emit(): void {
    const raw = this.raw.length > RAW_MAX ? this.raw.slice(0, RAW_MAX) : this.raw;
    // Called before the line count moves past the record's line break: `line` is its last line.
    const record: CsvRecord = { values: this.values, excel: this.excel, line: this.recordLine, endLine: this.line, raw };
    if (this.error) record.error = this.error;
    this.out.push(record);
    this.values = [];
    this.excel = [];
    this.started = false;
    this.raw = '';
    this.error = undefined;
  }

  private take(): CsvRecord[] {
    const out = this.out;
    this.out = [];
    return out;
  }
}
