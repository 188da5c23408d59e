import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { ProdhomeError } from '../src/errors.js';
import { createSink, FileSink, InfluxSink, SINK_EXAMPLES, SINK_SCHEMES, type Point } from '../src/sinks/index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-sinks-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const point = (v: number, over: Partial<Point> = {}): Point => ({ measurement: 'm', tags: { node: 'a b' }, fields: { v }, time: 1_700_000_000_000 + v, ...over });

/** The ProdhomeError a call throws. */
function thrown(fn: () => unknown): ProdhomeError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ProdhomeError) return e;
    throw e;
  }
  throw new Error('expected a ProdhomeError, nothing was thrown');
}

describe('createSink picks a sink by URI scheme', () => {
  it('knows file, influx and influx2', () => {
    expect(SINK_SCHEMES).toEqual(['file', 'influx', 'influx2']);
    expect(createSink('file:-')).toBeInstanceOf(FileSink);
    expect(createSink('influx://127.0.0.1:8086/lab')).toBeInstanceOf(InfluxSink);
    expect(createSink('influx2://127.0.0.1?org=o&bucket=b')).toBeInstanceOf(InfluxSink);
  });

  it('parses every documented example', () => {
    const token = path.join(dir, 'example.token');
    fs.writeFileSync(token, 'example-token\n');
    for (const [scheme, uris] of Object.entries(SINK_EXAMPLES)) {
      for (const uri of uris) {
        const sink = createSink(uri.replace('/etc/prodhome/influx.token', token));
        expect(sink.name.startsWith(`${scheme}:`), uri).toBe(true);
      }
    }
  });

  it('file:///- is a file named -, not stdout', () => {
    expect(createSink('file:///-').name).toBe('file:///-');
  });

  it('names the sink without secrets, with the default port', () => {
    expect(createSink('influx://db.local/my%20db', { token: 'u:secret' }).name).toBe('influx://db.local:8086/my db');
    expect(createSink('influx2://127.0.0.1:9999?org=o&bucket=b&precision=s').name).toBe('influx2://127.0.0.1:9999?org=o&bucket=b');
    expect(createSink('file:///tmp/x.lp').name).toBe('file:///tmp/x.lp');
  });

  it.each([
    ['prometheus://127.0.0.1:9187', /unknown sink scheme "prometheus:"/, /Valid schemes: file:, influx:, influx2:/],
    ['postgres://localhost/db', /unknown sink scheme "postgres:"/, /influx2:\/\/127\.0\.0\.1:8086\?org=lab&bucket=prodhome/],
    ['not a uri', /not a URI/, /file:-/],
    ['file:relative.lp', /absolute path/, /file:\/\/\/absolute/],
    ['file:-?precision=us', /precision "us" is not one of ns, ms, s/, /ms is the default/],
    ['influx://127.0.0.1:8086', /the database is missing/, /influx:\/\/host:port\/DATABASE/],
    ['influx://127.0.0.1:8086/a/b', /the database is missing/, /DATABASE/],
    ['influx2://127.0.0.1:8086?org=o', /org and bucket are both required/, /bucket=BUCKET/],
    ['influx://127.0.0.1/db?bucket=x', /unknown parameter "bucket"/, /rp, create, precision, token_file, batch_size, flush_ms, max_buffer, timeout_ms/],
    ['influx://127.0.0.1/db?batch_size=0', /batch_size must be a positive whole number, not "0"/, /default is 5000/],
    ['influx://127.0.0.1/db?flush_ms=1.5', /flush_ms must be a positive whole number/, /default is 1000/],
    ['influx://127.0.0.1/db?create=no', /create must be true or false, not "no"/, /create=false leaves a missing database missing/],
    ['influx2://127.0.0.1?org=o&bucket=b&create=false', /unknown parameter "create"/, /org, bucket/],
  ])('%s is refused with a usage error', (uri, message, hint) => {
    const e = thrown(() => createSink(uri));
    expect(e.code).toBe('USAGE');
    expect(e.message).toMatch(message);
    expect(e.hint).toMatch(hint);
  });

  it('refuses secrets in the URI without repeating them', () => {
    for (const uri of ['influx2://127.0.0.1?org=o&bucket=b&token=hunter2', 'influx://admin:hunter2@127.0.0.1/db']) {
      const e = thrown(() => createSink(uri));
      expect(e.code).toBe('USAGE');
      expect(e.message).toMatch(/does not belong in the URI/);
      expect(e.hint).toMatch(/PRODHOME_INFLUX_TOKEN/);
      expect(`${e.message} ${e.hint}`).not.toContain('hunter2');
    }
  });

  it('reports an unreadable or empty token file, and 1.x credentials without a colon', () => {
    expect(thrown(() => createSink(`influx2://h?org=o&bucket=b&token_file=${dir}/nope`)).message).toMatch(/cannot read the token file .*nope: ENOENT/);
    fs.writeFileSync(path.join(dir, 'empty'), '\n');
    expect(thrown(() => createSink('influx2://h?org=o&bucket=b', { env: { PRODHOME_INFLUX_TOKEN_FILE: `${dir}/empty` } })).message).toMatch(/is empty/);
    const e = thrown(() => createSink('influx://h/db', { env: { PRODHOME_INFLUX_TOKEN: 'justatoken' } }));
    expect(e.message).toMatch(/user:password/);
    expect(e.message).not.toContain('justatoken');
  });
});

describe('file sink', () => {
  it('file:- writes line protocol to stdout', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (b: Buffer) => (text += b.toString()));
    const sink = createSink('file:-?precision=s', { stdout: out });
    await sink.open?.();
    await sink.write([point(1), point(2, { fields: { v: 2n, s: 'x "y"' } })]);
    await sink.close();
    expect(text).toBe('m,node=a\\ b v=1 1700000000\nm,node=a\\ b v=2i,s="x \\"y\\"" 1700000000\n');
  });

  it('appends to a file across sinks, and leaves out invalid points with a warning', async () => {
    const file = path.join(dir, 'points.lp');
    const warnings: string[] = [];
    for (const v of [1, 2]) {
      const sink = createSink(`file://${file}`, { warn: (w) => warnings.push(w) });
      await sink.open?.();
      await sink.write([point(v), point(9, { fields: { q: 'a\nb' } })]);
      await sink.close();
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('m,node=a\\ b v=1 1700000000001\nm,node=a\\ b v=2 1700000000002\n');
    expect(warnings).toEqual([
      `file://${file}: cannot write point "m" as line protocol: field q: the string contains a newline`,
      `file://${file}: cannot write point "m" as line protocol: field q: the string contains a newline`,
    ]);
  });

  it('says which file it cannot open', async () => {
    const sink = createSink(`file://${dir}/missing/dir/x.lp`);
    const e = await sink.open!().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(ProdhomeError);
    expect((e as ProdhomeError).message).toMatch(/missing\/dir\/x\.lp: cannot open the file for appending: ENOENT/);
  });

  it('refuses writes after close', async () => {
    const sink = createSink(`file://${dir}/closed.lp`);
    await sink.close();
    await expect(sink.write([point(1)])).rejects.toThrow(/write after close/);
  });
});
