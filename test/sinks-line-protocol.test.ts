import { describe, expect, it } from 'vitest';
import { encodePoint, encodePoints, InvalidPointError, int, type Point } from '../src/sinks/index.js';

const T = 1_700_000_000_123; // ms
const p = (over: Partial<Point>): Point => ({ measurement: 'm', tags: {}, fields: { v: 1 }, time: T, ...over });

describe('line protocol, byte for byte', () => {
  const cases: [string, Point, string][] = [
    ['plain float', p({}), 'm v=1 1700000000123'],
    ['space and comma in the measurement', p({ measurement: 'cpu load,x=1' }), 'cpu\\ load\\,x=1 v=1 1700000000123'],
    ['equals sign in a measurement is not escaped', p({ measurement: 'a=b' }), 'a=b v=1 1700000000123'],
    ['tags sorted by key', p({ tags: { zone: 'z', app: 'a', Mid: 'M' } }), 'm,Mid=M,app=a,zone=z v=1 1700000000123'],
    ['tag keys and values escape comma, equals, space', p({ tags: { 'a b,c=d': 'x y,z=w' } }), 'm,a\\ b\\,c\\=d=x\\ y\\,z\\=w v=1 1700000000123'],
    ['backslashes in tags stay as they are', p({ tags: { path: 'C:\\tmp', esc: 'a\\,b' } }), 'm,esc=a\\\\,b,path=C:\\tmp v=1 1700000000123'],
    ['empty tag value left out', p({ tags: { a: '', b: 'x' } }), 'm,b=x v=1 1700000000123'],
    ['double quotes in tags are plain', p({ tags: { q: 'say "hi"' } }), 'm,q=say\\ "hi" v=1 1700000000123'],
    ['field keys escape comma, equals, space', p({ fields: { 'a b,c=d': 1 } }), 'm a\\ b\\,c\\=d=1 1700000000123'],
    ['string field escapes quote and backslash', p({ fields: { s: 'he said "C:\\"' } }), 'm s="he said \\"C:\\\\\\"" 1700000000123'],
    ['string field keeps spaces, commas, equals', p({ fields: { s: 'a b,c=d' } }), 'm s="a b,c=d" 1700000000123'],
    ['empty string field', p({ fields: { s: '' } }), 'm s="" 1700000000123'],
    ['unicode everywhere', p({ measurement: 'mé', tags: { 'clé': '値 😀' }, fields: { 'ß': 'ünï 😀' } }), 'mé,clé=値\\ 😀 ß="ünï 😀" 1700000000123'],
    ['numbers are floats', p({ fields: { a: 1, b: -2.5, c: 1e21, d: 1e-7, e: -0 } }), 'm a=1,b=-2.5,c=1e+21,d=1e-7,e=0 1700000000123'],
    ['bigints are integers', p({ fields: { a: 42n, b: -(2n ** 63n), c: 2n ** 63n - 1n, d: int(7) } }), 'm a=42i,b=-9223372036854775808i,c=9223372036854775807i,d=7i 1700000000123'],
    ['booleans', p({ fields: { t: true, f: false } }), 'm t=true,f=false 1700000000123'],
    ['null, undefined, NaN and Infinity fields skipped', p({ fields: { a: null, b: undefined, c: NaN, d: Infinity, e: -Infinity, f: 2 } }), 'm f=2 1700000000123'],
    ['negative time', p({ time: -1500 }), 'm v=1 -1500'],
  ];
  it.each(cases)('%s', (_, point, line) => {
    expect(encodePoint(point)).toBe(line);
  });

  it.each([
    ['s', T, '1700000000'],
    ['ms', T, '1700000000123'],
    ['ns', T, '1700000000123000000'],
    ['ns', T + 0.5, '1700000000123500000'],
    ['s', -1500, '-2'],
  ] as const)('precision %s of %d ms is %s', (precision, time, ts) => {
    expect(encodePoint(p({ time }), precision)).toBe(`m v=1 ${ts}`);
  });

  it('a point with no field left is no line', () => {
    expect(encodePoint(p({ fields: { a: null, b: NaN } }))).toBeUndefined();
    expect(encodePoints([p({ fields: {} }), p({})])).toEqual(['m v=1 1700000000123\n']);
  });
});

describe('line protocol refuses what it cannot write faithfully', () => {
  const cases: [string, Point, RegExp][] = [
    ['newline in a string field', p({ fields: { q: 'select 1\nfrom t' } }), /field q: the string contains a newline/],
    ['carriage return in a string field', p({ fields: { q: 'a\rb' } }), /newline/],
    ['newline in a tag value', p({ tags: { t: 'a\nb' } }), /tag t "a\\nb" contains a newline/],
    ['newline in the measurement', p({ measurement: 'a\nb' }), /the measurement "a\\nb" contains a newline/],
    ['trailing backslash in a tag value', p({ tags: { t: 'C:\\' } }), /tag t "C:\\\\" ends with a backslash/],
    ['trailing backslash in a field key', p({ fields: { 'k\\': 1 } }), /field key .* ends with a backslash/],
    ['empty measurement', p({ measurement: '' }), /the measurement is empty/],
    ['measurement starting with #', p({ measurement: '#m' }), /comment/],
    ['empty tag key', p({ tags: { '': 'x' } }), /tag key is empty/],
    ['field named time', p({ fields: { time: 1 } }), /"time" cannot be a field key/],
    ['tag named time', p({ tags: { time: 'x' } }), /"time" cannot be a tag key/],
    ['integer past int64', p({ fields: { n: 2n ** 63n } }), /does not fit in a 64-bit integer/],
    ['time that is not a number', p({ time: NaN }), /time NaN/],
  ];
  it.each(cases)('%s', (_, point, message) => {
    expect(() => encodePoint(point)).toThrow(InvalidPointError);
    expect(() => encodePoint(point)).toThrow(message);
  });

  it('encodePoints hands bad points to onInvalid and keeps the rest', () => {
    const bad: string[] = [];
    const lines = encodePoints([p({ tags: { t: 'x' } }), p({ fields: { s: 'a\nb' } }), p({ measurement: 'n' })], 'ms', (e) => bad.push(e.message));
    expect(lines).toEqual(['m,t=x v=1 1700000000123\n', 'n v=1 1700000000123\n']);
    expect(bad).toEqual(['cannot write point "m" as line protocol: field s: the string contains a newline']);
  });

  it('encodePoints throws without onInvalid', () => {
    expect(() => encodePoints([p({ measurement: '' })])).toThrow(InvalidPointError);
  });

  it('int() refuses numbers that are not safe integers', () => {
    expect(() => int(1.5)).toThrow(/not a safe integer/);
    expect(() => int(2 ** 60)).toThrow(/pass a bigint/);
  });
});
