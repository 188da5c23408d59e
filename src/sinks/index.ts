import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ProdhomeError, messageOf } from '../errors.js';
import { FileSink } from './file.js';
import { INFLUX_DEFAULTS, InfluxSink, type InfluxTarget, type InfluxTuning } from './influx.js';
import { PRECISIONS, type Precision } from './line-protocol.js';
import type { Sink } from './types.js';

export { int, type FieldValue, type Point } from './point.js';
export type { Sink, SinkStats } from './types.js';
export { SinkLedger } from './ledger.js';
export { encodePoint, encodePoints, InvalidPointError, PRECISIONS, type Precision } from './line-protocol.js';
export {
  exportedName,
  pointsToFamilies,
  sanitizeLabelName,
  sanitizeMetricName,
  toPrometheusText,
  type Family,
  type FieldDescription,
  type MetricType,
  type Sample,
} from './prometheus-text.js';
export { FileSink, type FileSinkOptions } from './file.js';
export { PostgresSink, storedFields, type PostgresSinkOptions } from './postgres.js';
export { PrometheusSink, type PrometheusSinkOptions } from './prometheus.js';
export { LatestPoints } from './latest.js';
export { PointBus, type PointBusOptions } from './bus.js';
export { maintainStore, type MaintenanceOptions, type MaintenanceReport } from './rollup.js';
export { KEEP_DEFAULTS, LAYOUT_VERSION, TIER_SECONDS, tierName, tierTable, type Tier } from './store-layout.js';
export { chooseTier, downsampleSql, fieldSource, grafanaDownsampleSql, readableFields, storedColumns, type DownsampleQuery } from './store-read.js';
export { INFLUX_DEFAULTS, InfluxSink, type InfluxSinkOptions, type InfluxTarget, type InfluxTuning } from './influx.js';

export interface SinkOptions {
  /** The Influx token (2.x) or `user:password` (1.x); wins over the environment and token_file. */
  token?: string;
  /** Where PRODHOME_INFLUX_TOKEN(_FILE) are read; process.env by default. */
  env?: NodeJS.ProcessEnv;
  /** Overrides for the buffering sinks' tuning (the URI's parameters win over these). */
  tuning?: Partial<InfluxTuning>;
  stdout?: NodeJS.WritableStream;
  warn?: (message: string) => void;
}

/** `stdout` is true for `file:-`, which a URL parser would turn into file:///-. */
type SinkFactory = (uri: URL, options: SinkOptions, stdout: boolean) => Sink;

/** The URI schemes there are sinks for (a config schema can enumerate these). */
export const SINK_SCHEMES = ['file', 'influx', 'influx2'] as const;
export type SinkScheme = (typeof SINK_SCHEMES)[number];

/** Every sink, by URI scheme: a scheme without a factory does not compile. */
const SINKS = {
  file: fileSink,
  influx: (uri, options) => influxSink(uri, 1, options),
  influx2: (uri, options) => influxSink(uri, 2, options),
} satisfies Record<SinkScheme, SinkFactory>;

/**
 * Example URIs per scheme, for help texts and docs; a test checks each one parses.
 * Parameters: precision=ns|ms|s (default ms) everywhere; for influx and influx2 also
 * batch_size, flush_ms, max_buffer, timeout_ms (see INFLUX_DEFAULTS) and token_file; for influx
 * create=false (a missing database is created unless it says so). The token
 * comes from SinkOptions.token, else PRODHOME_INFLUX_TOKEN, else the file named by token_file or
 * PRODHOME_INFLUX_TOKEN_FILE — never from the URI. influx2 without a token sends none
 * (VictoriaMetrics needs none; InfluxDB 2.x answers 401, reported as refused points).
 */
export const SINK_EXAMPLES = {
  file: ['file:///var/tmp/prodhome.lp', 'file:-', 'file:-?precision=s'],
  influx: ['influx://127.0.0.1:8086/prodhome', 'influx://metrics.local/prodhome?rp=week&batch_size=1000&flush_ms=5000', 'influx://metrics.local/prodhome?create=false'],
  influx2: ['influx2://127.0.0.1:8086?org=lab&bucket=prodhome', 'influx2://127.0.0.1:8428?org=lab&bucket=prodhome&precision=s&token_file=/etc/prodhome/influx.token'],
} satisfies Record<SinkScheme, string[]>;

const EXAMPLES = [SINK_EXAMPLES.influx[0], SINK_EXAMPLES.influx2[0], SINK_EXAMPLES.file[0], SINK_EXAMPLES.file[1]].join(', ');

/** The sink a URI names, checked; it does no I/O beyond reading a token file. */
export function createSink(uri: string, options: SinkOptions = {}): Sink {
  // file:- is not a URL a parser keeps as written (it becomes file:///-), so it is read first
  const stdout = /^file:-(\?.*)?$/.exec(uri);
  const url = stdout ? new URL(`file:///-${stdout[1] ?? ''}`) : parseUri(uri);
  const scheme = url.protocol.slice(0, -1);
  if (!Object.hasOwn(SINKS, scheme)) {
    throw usage(uri, `unknown sink scheme "${scheme}:"`, `Valid schemes: ${SINK_SCHEMES.map((s) => `${s}:`).join(', ')}. For example: ${EXAMPLES}.`);
  }
  if (!stdout && scheme === 'file' && !uri.startsWith('file:///')) {
    throw usage(uri, 'a file sink needs an absolute path', 'Write file:///absolute/path.lp, or file:- for stdout.');
  }
  return SINKS[scheme as SinkScheme](url, options, Boolean(stdout));
}

function parseUri(uri: string): URL {
  try {
    return new URL(uri);
  } catch {
    throw usage(uri, 'not a URI', `Give a sink URI such as ${EXAMPLES}.`);
  }
}

function usage(uri: string, problem: string, hint: string): ProdhomeError {
  // the URI may carry a password or token by mistake: never echo those
  return new ProdhomeError('USAGE', `sink ${redact(uri)}: ${problem}`, { hint });
}

function redact(uri: string): string {
  return uri.replace(/\/\/[^/@?#]*@/, '//***@').replace(/([?&]token=)[^&#]*/i, '$1***');
}

/** The URI's parameters, checked against the ones this scheme knows. */
function params(uri: URL, known: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of uri.searchParams) {
    if (k === 'token') throw usage(uri.href, 'a token does not belong in the URI (it would show in ps and logs)', 'Set PRODHOME_INFLUX_TOKEN, or token_file=/path or PRODHOME_INFLUX_TOKEN_FILE pointing at a file holding it.');
    if (!known.includes(k)) throw usage(uri.href, `unknown parameter "${k}"`, `Parameters for ${uri.protocol} ${known.join(', ')}.`);
    out.set(k, v);
  }
  return out;
}

function precisionOf(uri: URL, p: Map<string, string>): Precision {
  const v = p.get('precision') ?? 'ms';
  if (!(PRECISIONS as readonly string[]).includes(v)) throw usage(uri.href, `precision "${v}" is not one of ${PRECISIONS.join(', ')}`, 'ms is the default and what the sampler produces.');
  return v as Precision;
}

function fileSink(uri: URL, options: SinkOptions, stdout: boolean): Sink {
  const p = params(uri, ['precision']);
  const path = stdout ? '-' : fileURLToPath(uri);
  return new FileSink(path, { precision: precisionOf(uri, p), stdout: options.stdout, warn: options.warn });
}

const TUNING_PARAMS: Record<string, keyof InfluxTuning> = {
  batch_size: 'batchSize',
  flush_ms: 'flushIntervalMs',
  max_buffer: 'maxBuffered',
  timeout_ms: 'requestTimeoutMs',
};

function influxSink(uri: URL, version: 1 | 2, options: SinkOptions): Sink {
  const common = ['precision', 'token_file', ...Object.keys(TUNING_PARAMS)];
  const p = params(uri, version === 1 ? ['rp', 'create', ...common] : ['org', 'bucket', ...common]);
  if (!uri.hostname) throw usage(uri.href, 'no host', `For example: ${EXAMPLES}.`);
  if (uri.username || uri.password) throw usage(uri.href, 'a user or password does not belong in the URI (it would show in ps and logs)', 'Set PRODHOME_INFLUX_TOKEN (user:password for 1.x), or token_file=/path.');
  const baseUrl = `http://${uri.hostname}:${uri.port || '8086'}`;
  const precision = precisionOf(uri, p);
  let target: InfluxTarget;
  if (version === 1) {
    const db = decodeURIComponent(uri.pathname.replace(/^\//, ''));
    if (!db || db.includes('/')) throw usage(uri.href, 'the database is missing: the path names it', 'Write influx://host:port/DATABASE.');
    const create = p.get('create') ?? 'true';
    if (create !== 'true' && create !== 'false') throw usage(uri.href, `create must be true or false, not "${create}"`, 'create=false leaves a missing database missing (its points are refused and counted); the default creates it.');
    target = { version, baseUrl, db, rp: p.get('rp'), precision, create: create === 'true' };
  } else {
    const org = p.get('org');
    const bucket = p.get('bucket');
    if (!org || !bucket) throw usage(uri.href, 'org and bucket are both required', 'Write influx2://host:port?org=ORG&bucket=BUCKET.');
    target = { version, baseUrl, org, bucket, precision };
  }
  const tuning: Partial<InfluxTuning> = { ...options.tuning };
  for (const [param, key] of Object.entries(TUNING_PARAMS)) {
    const v = p.get(param);
    if (v === undefined) continue;
    if (!/^[1-9]\d*$/.test(v)) throw usage(uri.href, `${param} must be a positive whole number, not "${v}"`, `The default is ${INFLUX_DEFAULTS[key]}.`);
    tuning[key] = Number(v);
  }
  const env = options.env ?? process.env;
  // flag > env > file, in one line
  const token = options.token ?? env.PRODHOME_INFLUX_TOKEN ?? readToken(uri, p.get('token_file') ?? env.PRODHOME_INFLUX_TOKEN_FILE);
  if (version === 1 && token !== undefined && !token.includes(':')) {
    throw usage(uri.href, 'InfluxDB 1.x credentials are user:password', 'Put user:password in PRODHOME_INFLUX_TOKEN or the token file.');
  }
  return new InfluxSink(target, { ...tuning, token, warn: options.warn });
}

function readToken(uri: URL, file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let token: string;
  try {
    token = fs.readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw usage(uri.href, `cannot read the token file ${file}: ${messageOf(e)}`, 'Point token_file or PRODHOME_INFLUX_TOKEN_FILE at a readable file holding only the token.');
  }
  if (token === '') throw usage(uri.href, `the token file ${file} is empty`, 'Write the token into it, alone on one line.');
  return token;
}
export { ANNOTATIONS_DDL, ensureAnnotations, writeAnnotation, endAnnotation, type Annotation } from './annotations.js';
