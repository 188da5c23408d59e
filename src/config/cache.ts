import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSafe, writeFileSafe } from '../fsafe.js';
import type { LabParsed } from './schema.js';

/**
 * Validated configs remembered, so a command on an unchanged prodhome.yaml skips the YAML
 * parser and zod (most of `prodhome status`'s start-up): `<config dir>/.prodhome/config-cache.json`
 * maps each config file to a hash of its text and of this prodhome's schema, and what validating
 * it gave. Kept only where labs already keep their state (it never creates .prodhome); anything
 * unexpected — another schema, an edit, an unreadable or odd file — is a miss, and the config is
 * validated as usual. Mode 0600: an external node's URL may carry a password.
 */
export const CONFIG_CACHE_FILE = 'config-cache.json';

type CacheFile = Record<string, { key: string; parsed: LabParsed }>;

const cacheOf = (file: string) => path.join(path.dirname(file), '.prodhome', CONFIG_CACHE_FILE);

let schemaHash: string | null | undefined;

/** The hash of `text` under this prodhome's schema; null when the schema's source cannot be read. */
function keyOf(text: string): string | null {
  if (schemaHash === undefined) {
    try {
      schemaHash = crypto.createHash('sha1').update(fs.readFileSync(fileURLToPath(new URL('./schema.js', import.meta.url)))).digest('hex');
    } catch {
      schemaHash = null; // run from sources (tests): no cache
    }
  }
  return schemaHash && crypto.createHash('sha1').update(schemaHash).update('\0').update(text).digest('hex');
}

function readCache(file: string): CacheFile {
  try {
    const data = JSON.parse(readFileSafe(cacheOf(file)) ?? '{}') as unknown;
    return data && typeof data === 'object' && !Array.isArray(data) ? (data as CacheFile) : {};
  } catch {
    return {};
  }
}

/** What validating `text` (the contents of `file`) gave last time, if it is unchanged. */
export function cachedParse(file: string, text: string): LabParsed | undefined {
  const key = keyOf(text);
  const entry = key ? readCache(file)[file] : undefined;
  return entry && entry.key === key && entry.parsed && typeof entry.parsed === 'object' ? entry.parsed : undefined;
}

/** Remembers a validated config, beside a lab's state (never creating the directory). */
export function rememberParse(file: string, text: string, parsed: LabParsed): void {
  const key = keyOf(text);
  if (!key) return;
  try {
    if (!fs.lstatSync(path.dirname(cacheOf(file))).isDirectory()) return;
    const cache = readCache(file);
    if (cache[file]?.key === key) return;
    cache[file] = { key, parsed };
    writeFileSafe(cacheOf(file), JSON.stringify(cache), { mode: 0o600 });
  } catch {
    // no .prodhome here, or not writable: the next command validates again
  }
}
