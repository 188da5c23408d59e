import fs from 'node:fs';
import { ProdhomeError } from '../errors.js';
import { CsvParser, type CsvOptions, type CsvRecord } from './csv.js';

/** The size of a file to import, or a clear error when it cannot be read. */
export function csvFileSize(file: string): number {
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new ProdhomeError('CSV_INVALID', `${file} is not a file`);
    fs.accessSync(file, fs.constants.R_OK);
    return st.size;
  } catch (e) {
    if (e instanceof ProdhomeError) throw e;
    throw new ProdhomeError('CSV_INVALID', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * Records of a UTF-8 CSV file in batches, read in 64 KB pieces (a UTF-8 BOM is dropped, as Excel
 * writes one). `onBytes` hears how much of the file has been read.
 */
export async function* csvBatches(file: string, opts: CsvOptions, onBytes?: (bytes: number) => void): AsyncGenerator<CsvRecord[]> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const parser = new CsvParser(opts);
  let bytes = 0;
  const decode = (buf?: Buffer) => {
    try {
      return buf ? decoder.decode(buf, { stream: true }) : decoder.decode();
    } catch {
      throw new ProdhomeError('CSV_INVALID', `${file}: not valid UTF-8 (after line ${parser.currentLine})`, {
        hint: 'Convert it first, e.g. iconv -f latin1 -t utf-8 FILE > FILE.utf8.csv',
      });
    }
  };
  const withFile = (e: unknown) => (e instanceof ProdhomeError && e.code === 'CSV_INVALID' && !e.message.startsWith(file) ? new ProdhomeError('CSV_INVALID', `${file}: ${e.message}`) : e);
  try {
    for await (const buf of fs.createReadStream(file, { highWaterMark: 1 << 16 })) {
      bytes += (buf as Buffer).length;
      const records = parser.push(decode(buf as Buffer));
      onBytes?.(bytes);
      if (records.length) yield records;
    }
    const last = [...parser.push(decode()), ...parser.end()];
    if (last.length) yield last;
  } catch (e) {
    throw withFile(e);
  }
}
