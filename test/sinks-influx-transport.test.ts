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
let answers: number[] = []; // statuses to answer, in order; 204 once they run out

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString() : raw.toString();
      received.push({ url: req.url ?? '', headers: req.headers, body });
      const status = answers.shift() ?? 204;
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(status === 204 ? undefined : JSON.stringify({ error: `answer ${status}` }));
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
    expect(sink.stats).toEqual({ written: 5, buffered: 0, dropped: 0, rejected: 0, retries: 3, lastError: 'HTTP 500 {"error":"answer 500"}' });
    expect(warnings).toEqual([
      `influx://${base}/db: cannot write (HTTP 503 {"error":"answer 503"}); buffering up to 100000 points and retrying.`,
      `influx://${base}/db: writing again after 3 failed attempts; 0 points dropped so far.`,
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
