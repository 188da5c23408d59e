// data/: synthetic data generators, COPY streaming, CSV import. Other parts import only this file.
export { seedBooks, type SeedBooksOptions, type SeedBooksResult } from './seed-books.js';
export { seedPgbench, type SeedPgbenchResult } from './pgbench.js';
export { importCsv, describeBadRow, ImportRejected, type ImportOptions, type ImportResult, type ImportColumn, type BadRow } from './import.js';
export { bookChunks, bookChunksBinary, parseTopics, DEFAULT_TOPICS, type TopicWeight, type BookRowsOptions, type RowChunk } from './books.js';
export { CsvParser, type CsvRecord, type CsvOptions } from './csv.js';
export { TypeGuesser, columnNames, type InferredType } from './infer.js';
export { copyFrom, copyTextValue, type CopyChunk } from '../pg/index.js';
export type { DataTarget } from './target.js';
export type { Progress, OnProgress } from './progress.js';
