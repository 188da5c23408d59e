import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSink, InfluxSink, type Point } from '../src/sinks/index.js';
import { freePort } from './support/influxd.js';

/*
 * What the influx sink puts on the wire — headers, gzip, query string, batching, retries and its
 * bounded buffer — seen by a small HTTP server that records each request and answers with the
 * status the test chooses. It stands in for no InfluxDB behaviour: sinks-influx.test.ts writes
 * to real InfluxDB and VictoriaMetrics servers.
 */

interface Received {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

let server: http.Server;
let base: string;
let received: Received[] = [];
/** statuses (or status and body) to answer, in order; 204 once they run out */
let answers: (number | { status: number; body: string })[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString() : raw.toString();
      received.push({ url: req.url ?? '', headers: req.headers, body });
      const answer = answers.shift() ?? 204;
      const status = typeof answer === 'number' ? answer : answer.status;
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(typeof answer === 'object' ? answer.body : status === 204 ? undefined : JSON.stringify({ error: `answer ${status}` }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  received = [];
  answers = [];
});

const point = (v: number): Point => ({ measurement: 'm', tags: {}, fields: { v }, time: 1_700_000_000_000 + v });
const points = (from: number, n: number) => Array.from({ length: n }, (_, i) => point(from + i));
const values = (r: Received[]) => r.flatMap((x) => x.body.split('\n').filter(Boolean).map((l) => Number(/ v=(\S+) /.exec(l)?.[1])));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(check: () => boolean, what: string) {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
const influx = (uri: string, options: Parameters<typeof createSink>[1] = {}) => createSink(uri, options) as InfluxSink;

describe('influx sink on the wire', () => {
  it('2.x: POST /api/v2/write with org, bucket, precision, a gzip body and the token', async () => {
    const sink = influx(`influx2://${base}?org=my org&bucket=b/1&precision=s`, { env: { PRODHOME_INFLUX_TOKEN: 'tok-en' } });
    await sink.write(points(1, 2));
    expect(await sink.flush()).toBe(true);
    await sink.close();
    expect(received).toHaveLength(1);
    const [r] = received;
    expect(r?.url).toBe('/api/v2/write?org=my+org&bucket=b%2F1&precision=s');
    expect(r?.headers).toMatchObject({ authorization: 'Token tok-en', 'content-encoding': 'gzip', 'content-type': 'text/plain; charset=utf-8' });
    expect(r?.body).toBe('m v=1 1700000000\nm v=2 1700000000\n');
  });

  it('1.x: POST /write with db, rp, precision n for ns, basic auth from a token file', async () => {
    const file = path.join(os.tmpdir(), `prodhome-token-${process.pid}`);
    fs.writeFileSync(file, 'user:pa ss\n', { mode: 0o600 });
    try {
      const sink = influx(`influx://${base}/my%20db?rp=week&precision=ns&token_file=${file}`);
      await sink.write(points(1, 1));
      await sink.close(); // close flushes
    } finally {
      fs.rmSync(file);
    }
    const [r] = received;
    expect(r?.url).toBe('/write?db=my+db&precision=n&rp=week');
    expect(r?.headers.authorization).toBe(`Basic ${Buffer.from('user:pa ss').toString('base64')}`);
    expect(r?.body).toBe('m v=1 1700000000001000000\n');
  });

  it('token order: an explicit token wins over the environment, which wins over a token file', async () => {
    const env = { PRODHOME_INFLUX_TOKEN: 'from-env', PRODHOME_INFLUX_TOKEN_FILE: '/nonexistent' };
    for (const [options, expected] of [
      [{ env, token: 'from-flag' }, 'Token from-flag'],
      [{ env }, 'Token from-env'],
    ] as const) {
      const sink = influx(`influx2://${base}?org=o&bucket=b`, options);
      await sink.write(points(1, 1));
      await sink.close();
      expect(received.pop()?.headers.authorization).toBe(expected);
    }
  });

  it('sends a batch as soon as batch_size points are buffered', async () => {
    const sink = influx(`influx://${base}/db?batch_size=3&flush_ms=60000`);
    await sink.write(points(1, 2));
    await sleep(100);
    expect(received).toHaveLength(0);
    await sink.write(points(3, 1));
    await until(() => received.length === 1, 'the batch');
    expect(values(received)).toEqual([1, 2, 3]);
    await sink.close();
  });

  it('sends what it has flush_ms after the first point of a batch', async () => {
    const sink = influx(`influx://${base}/db?batch_size=1000&flush_ms=300`);
    await sink.write(points(1, 1));
    await sleep(50);
    await sink.write(points(2, 1)); // does not postpone the flush
    expect(received).toHaveLength(0);
    await until(() => received.length === 1, 'the timed flush');
    expect(values(received)).toEqual([1, 2]);
    // The server has the request; the sink counts it written once the response is back.
    await until(() => sink.stats.written === 2, 'the response to the timed flush');
    expect(sink.stats).toMatchObject({ written: 2, buffered: 0, retries: 0 });
    await sink.close();
  });

  it('splits a large buffer into batches in order', async () => {
    const sink = influx(`influx://${base}/db?batch_size=4&flush_ms=60000`, { tuning: { maxBuffered: 100 } });
    await sink.write(points(1, 10)); // crosses batch_size at once
    await sink.close();
    expect(received.map((r) => values([r]))).toEqual([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]);
  });

  it('retries 5xx and 429 with backoff, then delivers everything', async () => {
    answers = [503, 429, 500];
    const warnings: string[] = [];
    const sink = influx(`influx://${base}/db?batch_size=5&flush_ms=10`, { tuning: { minBackoffMs: 20, maxBackoffMs: 80 }, warn: (w) => warnings.push(w) });
    await sink.write(points(1, 5));
    await until(() => sink.stats.written === 5, 'delivery after retries');
    expect(received).toHaveLength(4);
    expect(values(received.slice(-1))).toEqual([1, 2, 3, 4, 5]);
    expect(sink.stats).toEqual({
      offered: 5,
      written: 5,
      buffered: 0,
      dropped: 0,
      droppedBy: {},
      rejected: 0,
      rejectedBy: {},
      retries: 3,
      healthy: true,
      since: expect.any(String),
      lastError: 'HTTP 500 {"error":"answer 500"}',
      lastErrorAt: expect.any(String),
    });
    expect(warnings).toEqual([
      `influx://${base}/db: cannot write (HTTP 503 {"error":"answer 503"}); buffering up to 100000 points and retrying.`,
      `influx://${base}/db: writing again after 3 failed attempts; 0 points dropped and 0 refused so far.`,
    ]);
    await sink.close();
  });

  it('keeps at most max_buffer points, dropping the oldest, while the store is away', async () => {
    answers = [503];
    const sink = influx(`influx://${base}/db?batch_size=1000&flush_ms=60000&max_buffer=10`, { tuning: { minBackoffMs: 60_000 } });
    await sink.write(points(0, 25));
    expect(sink.stats).toMatchObject({ buffered: 10, dropped: 15 });
    expect(await sink.flush()).toBe(false); // answered 503: the batch goes back in front
    await sink.write(points(25, 5));
    expect(sink.stats).toMatchObject({ buffered: 10, dropped: 20, retries: 1 });
    expect(await sink.flush()).toBe(true);
    // the refused attempt carried 15..24; the one that got through the newest ten
    expect(received.map((r) => values([r]))).toEqual([
      [15, 16, 17, 18, 19, 20, 21, 22, 23, 24],
      [20, 21, 22, 23, 24, 25, 26, 27, 28, 29],
    ]);
    expect(sink.stats).toMatchObject({ written: 10, buffered: 0, dropped: 20 });
    await sink.close();
  });

  it('drops a batch the server refuses (4xx) instead of retrying it forever', async () => {
    answers = [400];
    const warnings: string[] = [];
    const sink = influx(`influx2://${base}?org=o&bucket=b`, { token: 'sekrit-token', warn: (w) => warnings.push(w) });
    await sink.write(points(1, 3));
    expect(await sink.flush()).toBe(true);
    await sink.write(points(4, 1));
    expect(await sink.flush()).toBe(true);
    expect(sink.stats).toMatchObject({ written: 1, rejected: 3, retries: 0, buffered: 0 });
    expect(warnings).toEqual([`influx2://${base}?org=o&bucket=b: the server refused 3 points: HTTP 400 {"error":"answer 400"}`]);
    await sink.close();
  });

  it('counts only the points a partial write names as rejected; the rest were written', async () => {
    answers = [{ status: 400, body: JSON.stringify({ error: 'partial write: field type conflict: input field "v" on measurement "m" is type integer, already exists as type float dropped=2' }) }];
    const warnings: string[] = [];
    const sink = influx(`influx://${base}/db`, { warn: (w) => warnings.push(w) });
    await sink.write(points(1, 5));
    expect(await sink.flush()).toBe(true);
    expect(sink.stats).toMatchObject({ offered: 5, written: 3, rejected: 2, rejectedBy: { field_type_conflict: 2 }, healthy: false });
    expect(warnings[0]).toMatch(/refused 2 points: HTTP 400 .*field type conflict.* — a field was written before with another type/);
    await sink.write(points(6, 1)); // a write that goes through whole: healthy again
    expect(await sink.flush()).toBe(true);
    expect(sink.stats).toMatchObject({ offered: 6, written: 4, rejected: 2, healthy: true });
    await sink.close();
  });

  it('1.x: creates a database the server says is missing, then sends the batch again', async () => {
    answers = [{ status: 404, body: '{"error":"database not found: \\"lab db\\""}' }, { status: 200, body: '{"results":[{"statement_id":0}]}' }];
    const warnings: string[] = [];
    const sink = influx(`influx://${base}/lab%20db`, { token: 'u:p', warn: (w) => warnings.push(w) });
    await sink.write(points(1, 3));
    expect(await sink.flush()).toBe(true);
    expect(received.map((r) => r.url)).toEqual(['/write?db=lab+db&precision=ms', '/query', '/write?db=lab+db&precision=ms']);
    expect(new URLSearchParams(received[1]!.body).get('q')).toBe('CREATE DATABASE "lab db"');
    expect(received[1]!.headers.authorization).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
    expect(values(received.slice(2))).toEqual([1, 2, 3]);
    expect(sink.stats).toMatchObject({ offered: 3, written: 3, rejected: 0, dropped: 0, healthy: true });
    expect(warnings).toEqual([`influx://${base}/lab db: created the database "lab db" (the server had none by that name).`]);
    await sink.close();
  });

  it('1.x with create=false, or a user who may not create it: refused, counted, and says what to do', async () => {
    answers = [{ status: 404, body: '{"error":"database not found: \\"db\\""}' }];
    const warnings: string[] = [];
    const sink = influx(`influx://${base}/db?create=false`, { warn: (w) => warnings.push(w) });
    await sink.write(points(1, 2));
    await sink.flush();
    expect(received).toHaveLength(1);
    expect(sink.stats).toMatchObject({ offered: 2, written: 0, rejected: 2, rejectedBy: { database_not_found: 2 }, healthy: false });
    expect(warnings[0]).toMatch(/the database "db" does not exist and the URI says create=false: create it \(CREATE DATABASE "db"\)/);
    await sink.close();

    received = [];
    answers = [{ status: 404, body: '{"error":"database not found: \\"db\\""}' }, { status: 403, body: '{"error":"error authorizing query: u not authorized to execute statement \'CREATE DATABASE db\', requires admin privilege"}' }];
    const denied = influx(`influx://${base}/db`, { token: 'u:p', warn: (w) => warnings.push(w) });
    await denied.write(points(1, 2));
    await denied.flush();
    expect(denied.stats).toMatchObject({ rejected: 2, rejectedBy: { database_not_found: 2 } });
    expect(warnings.at(-1)).toMatch(/does not exist and could not be created \(HTTP 403 .*requires admin privilege.*\): create it \(CREATE DATABASE "db"\) as a user allowed to/);
    await denied.close();
  });

  // No InfluxDB 2.x server can run here (Debian has none): these answers are the ones 2.x sends.
  it.each([
    [404, '{"code":"not found","message":"bucket \\"b\\" not found"}', 'bucket_not_found', /the bucket "b" does not exist in org "o": create it \(influx bucket create --name b --org o\)/, 'tok'],
    [404, '{"code":"not found","message":"organization name \\"o\\" not found"}', 'org_not_found', /the org "o" does not exist: check org= in the URI/, 'tok'],
    [401, '{"code":"unauthorized","message":"unauthorized access"}', 'http_401', /no token was given: set PRODHOME_INFLUX_TOKEN/, undefined],
    [401, '{"code":"unauthorized","message":"unauthorized access"}', 'http_401', /the token was refused: give a valid API token with write access to bucket "b" of org "o"/, 'tok'],
  ])('2.x: HTTP %i %s says which of bucket, org or token is missing', async (status, body, reason, advice, token) => {
    answers = [{ status, body }];
    const warnings: string[] = [];
    const sink = influx(`influx2://${base}?org=o&bucket=b`, { token, env: {}, warn: (w) => warnings.push(w) });
    await sink.write(points(1, 1));
    await sink.flush();
    expect(sink.stats.rejectedBy).toEqual({ [reason]: 1 });
    expect(warnings[0]).toMatch(advice);
    await sink.close();
  });

  it('never shows its token: not in its name, inspect, JSON, stats or warnings', async () => {
    answers = [401, 503];
    const warnings: string[] = [];
    const sink = influx(`influx2://${base}?org=o&bucket=b`, { token: 'sekrit-token', warn: (w) => warnings.push(w) });
    await sink.write(points(1, 1));
    await sink.flush();
    await sink.write(points(2, 1));
    await sink.flush();
    await sink.close();
    const shown = [sink.name, inspect(sink, { depth: 5, showHidden: true }), JSON.stringify(sink), JSON.stringify(sink.stats), ...warnings].join('\n');
    expect(received[0]?.headers.authorization).toBe('Token sekrit-token');
    expect(shown).not.toContain('sekrit');
  });

  it('close gives up after close_timeout and counts what it could not deliver', async () => {
    const port = await freePort(); // nothing listens there
    const warnings: string[] = [];
    const sink = influx(`influx://127.0.0.1:${port}/db`, { tuning: { closeTimeoutMs: 300, minBackoffMs: 50 }, warn: (w) => warnings.push(w) });
    await sink.write(points(1, 4));
    await sink.close();
    expect(sink.stats).toMatchObject({ written: 0, buffered: 0, dropped: 4, lastError: 'ECONNREFUSED' });
    expect(warnings.at(-1)).toBe(`influx://127.0.0.1:${port}/db: 4 points not written at close (ECONNREFUSED).`);
    await expect(sink.write(points(5, 1))).rejects.toThrow(/write after close/);
  });
});
