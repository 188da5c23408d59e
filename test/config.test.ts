import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_YAML, defaultConfigFor, durationOption, labJsonSchema, loadConfig, parseConfigText, parseDuration, readReplicationFiles } from '../src/config/index.js';
import { DEFAULT_LAB_PARSED } from '../src/config/default-parsed.js';
import { ProdhomeError } from '../src/errors.js';
import { ROOT } from './helpers.js';

function problem(yaml: string): ProdhomeError {
  try {
    parseConfigText(yaml, 'lab.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ProdhomeError);
    return e as ProdhomeError;
  }
  throw new Error('expected the config to be rejected');
}

describe('config: the default lab', () => {
  it('is the origin topology: publisher, two subscribers, metrics', () => {
    const lab = parseConfigText(DEFAULT_CONFIG_YAML, 'default');
    expect(Object.keys(lab.nodes)).toEqual(['publisher', 'subscriber1', 'subscriber2', 'metrics']);
    expect(lab.nodes.publisher!.role).toBe('publisher');
    expect(lab.nodes.subscriber2!.role).toBe('subscriber');
    expect(lab.nodes.metrics!.role).toBe('metrics');
  });

  it('as data (what a command without prodhome.yaml uses, with no YAML parser or zod) is exactly the text parsed', () => {
    expect(DEFAULT_LAB_PARSED).toEqual(parseConfigText(DEFAULT_CONFIG_YAML, 'default'));
  });

  it('is used when there is no prodhome.yaml, with state beside the cwd', () => {
    const dir = fs.mkdtempSync(path.join(ROOT, '.tmp-config-'));
    try {
      const config = loadConfig({ cwd: dir });
      expect(config.configFile).toBeUndefined();
      expect(config.stateDir).toBe(path.join(dir, '.prodhome', 'prodhome'));
      expect(config.nodes.map((n) => n.name)).toEqual(['publisher', 'subscriber1', 'subscriber2', 'metrics']);
      expect(config.nodes[0]!.settings).toMatchObject({ max_connections: '100', shared_buffers: '131072kB', work_mem: '4096kB' });
      expect(config.nodes[0]!.memoryBytes).toBe(512 * 1024 ** 2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a schema file that does not exist is named, relative to the config, when a command reads it (not when the config loads)', () => {
    const dir = fs.mkdtempSync(path.join(ROOT, '.tmp-config-'));
    try {
      fs.writeFileSync(path.join(dir, 'prodhome.yaml'), 'nodes:\n  a: { role: publisher }\nschema:\n  - file: tables.sql\n');
      const config = loadConfig({ cwd: dir });
      expect(() => readReplicationFiles(config.replication)).toThrow(`prodhome.yaml: schema[0].file: cannot read schema file ${path.join(dir, 'tables.sql')}: ENOENT`);
      fs.writeFileSync(path.join(dir, 'tables.sql'), 'create table t (id int primary key);');
      expect(loadConfig({ cwd: dir }).replication.schema).toEqual([{ node: 'a', sql: 'create table t (id int primary key);', origin: 'tables.sql' }]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('-f FILE that does not exist is a clear error', () => {
    expect(() => loadConfig({ file: '/nonexistent/lab.yaml' })).toThrow(/config file \/nonexistent\/lab.yaml does not exist/);
  });

  it('the committed JSON Schema matches the config schema (run `prodhome schema > prodhome.schema.json`)', () => {
    const committed = JSON.parse(fs.readFileSync(path.join(ROOT, 'prodhome.schema.json'), 'utf8'));
    expect(committed).toEqual(labJsonSchema());
    expect(committed.properties.nodes).toBeDefined();
    expect(committed.additionalProperties).toBe(false);
  });
});

describe('config: bad input is named with file:line, field path and what to do', () => {
  const cases: { name: string; yaml: string; code: string; expect: RegExp[] }[] = [
    { name: 'invalid YAML', yaml: 'nodes:\n  a: [\n', code: 'CONFIG_SYNTAX', expect: [/lab.yaml is not valid YAML/, /lab.yaml:\d+:\d+/] },
    { name: 'unknown top-level key with a near miss', yaml: 'nods:\n  a: {}\n', code: 'CONFIG_INVALID', expect: [/lab.yaml:1: \(top level\): unknown key "nods" — did you mean "nodes"\?/] },
    { name: 'unknown node key', yaml: 'nodes:\n  a:\n    memroy: 256MiB\n', code: 'CONFIG_INVALID', expect: [/lab.yaml:3: nodes.a: unknown key "memroy" — did you mean "memory"\?/] },
    { name: 'unknown key with no near miss lists the valid ones', yaml: 'nodes:\n  a:\n    colour: red\n', code: 'CONFIG_INVALID', expect: [/unknown key "colour" \(expected one of: role, url, port/] },
    { name: 'wrong type', yaml: 'nodes:\n  a:\n    port: "fifty"\n', code: 'CONFIG_INVALID', expect: [/lab.yaml:3: nodes.a.port: expected a port number between 1024 and 65535, got "fifty"/] },
    { name: 'port out of range', yaml: 'nodes:\n  a:\n    port: 80\n', code: 'CONFIG_INVALID', expect: [/nodes.a.port: ports below 1024 need root/] },
    { name: 'negative size', yaml: 'nodes:\n  a:\n    memory: -256MiB\n', code: 'CONFIG_INVALID', expect: [/lab.yaml:3: nodes.a.memory: expected a size such as 256MiB or 1GiB, got "-256MiB"/] },
    { name: 'absurdly small size', yaml: 'nodes:\n  a:\n    memory: 1MiB\n', code: 'CONFIG_INVALID', expect: [/1MiB is too small for a Postgres server/] },
    { name: 'absurdly large size', yaml: 'nodes:\n  a:\n    memory: 64TiB\n', code: 'CONFIG_INVALID', expect: [/64TiB is more than this machine has/] },
    { name: 'absurd cpus', yaml: 'nodes:\n  a:\n    cpus: 512\n', code: 'CONFIG_INVALID', expect: [/512 CPUs is more than this machine has/] },
    { name: 'zero cpus', yaml: 'nodes:\n  a:\n    cpus: 0\n', code: 'CONFIG_INVALID', expect: [/expected a positive number of CPUs/] },
    { name: 'bad Postgres size', yaml: 'nodes:\n  a:\n    work_mem: 4 megs\n', code: 'CONFIG_INVALID', expect: [/nodes.a.work_mem: expected a Postgres size such as 4MB/] },
    { name: 'shared_buffers larger than the memory cap', yaml: 'nodes:\n  a:\n    memory: 256MiB\n    shared_buffers: 1GB\n', code: 'CONFIG_INVALID', expect: [/lab.yaml:4: nodes.a.shared_buffers: shared_buffers 1GB does not fit/] },
    { name: 'duplicate node names', yaml: 'nodes:\n  a: {}\n  a: {}\n', code: 'CONFIG_SYNTAX', expect: [/lab.yaml:3:3: a key appears twice/] },
    { name: 'duplicate ports', yaml: 'nodes:\n  a:\n    port: 6001\n  b:\n    port: 6001\n', code: 'CONFIG_INVALID', expect: [/lab.yaml:5: nodes.b.port: port 6001 is also given to node "a"/] },
    { name: 'bad node name', yaml: 'nodes:\n  Bad Name: {}\n', code: 'CONFIG_INVALID', expect: [/nodes.Bad Name: invalid name: node names are lower-case/] },
    { name: 'unknown role with a near miss', yaml: 'nodes:\n  a:\n    role: subscribr\n', code: 'CONFIG_INVALID', expect: [/expected one of publisher, subscriber, metrics, standalone, got "subscribr" — did you mean "subscriber"\?/] },
    { name: 'external node with local-only keys', yaml: 'nodes:\n  a:\n    url: postgres://x@127.0.0.1/db\n    memory: 256MiB\n', code: 'CONFIG_INVALID', expect: [/nodes.a.memory: node "a" is external \(url:\)/] },
    { name: 'no nodes', yaml: 'nodes: {}\n', code: 'CONFIG_INVALID', expect: [/nodes: a lab needs at least one node/] },
    { name: 'not a mapping', yaml: '- a\n- b\n', code: 'CONFIG_INVALID', expect: [/expected a mapping of settings/] },
    { name: 'ports range reversed', yaml: 'ports:\n  from: 6000\n  to: 5000\nnodes:\n  a: {}\n', code: 'CONFIG_INVALID', expect: [/ports.from must not be above ports.to/] },
    { name: 'publication on an unknown node', yaml: 'nodes:\n  pub: {}\npublications:\n  p: { node: pubb, tables: { t: {} } }\n', code: 'CONFIG_INVALID', expect: [/publications.p.node: no node "pubb" in this lab \(nodes: pub\) — did you mean "pub"\?/] },
    { name: 'subscription to an unknown publication', yaml: 'nodes:\n  a: {}\n  b: {}\npublications:\n  p: { node: a, tables: { t: {} } }\nsubscriptions:\n  s: { node: b, publications: [q] }\n', code: 'CONFIG_INVALID', expect: [/subscriptions.s.publications.0: no publication "q" in this lab \(publications: p\)/] },
    { name: 'a subscription named like a publication', yaml: 'nodes:\n  a: {}\n  b: {}\npublications:\n  p: { node: a, tables: { t: {} } }\nsubscriptions:\n  p: { node: b, publications: [p] }\n', code: 'CONFIG_INVALID', expect: [/"p" is also a publication's name; give the subscription its own name/] },
    { name: 'a node subscribing to itself', yaml: 'nodes:\n  a: {}\npublications:\n  p: { node: a, tables: { t: {} } }\nsubscriptions:\n  s: { node: a, publications: [p] }\n', code: 'CONFIG_INVALID', expect: [/would subscribe node "a" to its own publication "p"/] },
    { name: 'one subscription across two publishers', yaml: 'nodes:\n  a: {}\n  b: {}\n  c: {}\npublications:\n  p: { node: a, tables: { t: {} } }\n  q: { node: b, tables: { t: {} } }\nsubscriptions:\n  s: { node: c, publications: [p, q] }\n', code: 'CONFIG_INVALID', expect: [/one subscription connects to one publisher, but these publications live on a and b; split it in two/] },
    { name: 'a publication with neither tables nor allTables', yaml: 'nodes:\n  a: {}\npublications:\n  p: { node: a }\n', code: 'CONFIG_INVALID', expect: [/publications.p: a publication needs tables: or allTables: true/] },
    { name: 'an unknown publish operation', yaml: 'nodes:\n  a: {}\npublications:\n  p: { node: a, allTables: true, publish: [insert, upsert] }\n', code: 'CONFIG_INVALID', expect: [/publications.p.publish.1: expected one of insert, update, delete, truncate, got "upsert"/] },
    { name: 'a schema entry with both sql and file', yaml: 'nodes:\n  a: {}\nschema:\n  - { sql: "select 1", file: x.sql }\n', code: 'CONFIG_INVALID', expect: [/schema.0: give exactly one of sql: or file:/] },
    { name: 'several problems at once are all listed', yaml: 'nodes:\n  a:\n    port: 1\n    cpus: -1\n', code: 'CONFIG_INVALID', expect: [/has 2 problems/, /nodes.a.port/, /nodes.a.cpus/] },
  ];
  it.each(cases)('$name', ({ yaml, code, expect: patterns }) => {
    const err = problem(yaml);
    expect(err.code).toBe(code);
    expect(err.exitCode).toBe(2);
    for (const p of patterns) expect(err.message).toMatch(p);
    expect(err.hint).toBeTruthy();
  });
});

describe('durations: one grammar for config, catalog, CLI options and schedules', () => {
  it.each([
    ['250ms', 250], ['1s', 1000], ['1.5s', 1500], ['30', 30_000], ['.5', 500], ['2m', 120_000], ['1h', 3_600_000], ['7d', 604_800_000], ['100us', 0.1],
  ])('%s is %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));
  it.each(['', '-5s', '5 sec', '1e3', 's', '5S', '1.2.3s'])('%j is not a duration', (text) => expect(parseDuration(text)).toBeUndefined());
  it('a bad option value names the option and gives examples', () => {
    expect(() => durationOption('-5s', '--wait')).toThrow(/--wait -5s: expected a duration such as 500ms/);
  });
});

describe('init: the written config points editors at a schema file that exists', () => {
  const schemaOf = (text: string) => /\$schema=(\S+)/.exec(text)![1]!;
  it.each([
    ['a directory outside the clone', '/tmp/somewhere'],
    ['a directory inside the clone', path.join(ROOT, 'labs', 'mine')],
    ['the file system root', '/'],
  ])('%s', (_, dir) => {
    const ref = schemaOf(defaultConfigFor(dir));
    expect(fs.existsSync(path.resolve(dir, ref))).toBe(true);
    expect(parseConfigText(defaultConfigFor(dir), 'init').lab).toBe(parseConfigText(DEFAULT_CONFIG_YAML, 'default').lab);
  });
});

describe('finding the lab from a subdirectory, as git finds its repository', () => {
  it('a command run below a prodhome.yaml uses it (and its state dir), not a default lab of its own', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-find-'));
    try {
      fs.writeFileSync(path.join(dir, 'prodhome.yaml'), 'lab: upstairs\nnodes:\n  one: {}\n');
      const deep = path.join(dir, 'app', 'src');
      fs.mkdirSync(deep, { recursive: true });
      const config = loadConfig({ cwd: deep });
      expect(config.lab).toBe('upstairs');
      expect(config.configFile).toBe(path.join(dir, 'prodhome.yaml'));
      expect(config.stateDir).toBe(path.join(dir, '.prodhome', 'upstairs'));
      // With none above, the default lab lives where the command runs.
      fs.rmSync(path.join(dir, 'prodhome.yaml'));
      expect(loadConfig({ cwd: deep }).stateDir).toBe(path.join(deep, '.prodhome', 'prodhome'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
