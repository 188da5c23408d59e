import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, nodeConnection } from '../src/lab/index.js';
import { loadCatalog, sqlFor } from '../src/metrics/catalog.js';
import { withConnection } from '../src/pg/index.js';
import { HEARTBEAT_SUBSCRIBER_SQL } from '../src/replication/index.js';
import { resolveBinaries } from '../src/runtime/index.js';
import { IN_CI, tempLab, type TempLab } from './helpers.js';

// Every metric's SQL runs on every supported major (the system 15 and the npm 17) and returns
// exactly the columns its definition declares: the catalog cannot drift from Postgres.
let has15 = true;
try {
  resolveBinaries({ version: 15 }, 'probe');
} catch {
  has15 = false;
  if (IN_CI) throw new Error('CI machines have the system Postgres 15; it was not found');
  console.warn('\n*** metric catalog: testing Postgres 17 only — no Postgres 15 binaries here ***\n');
}

describe('metric catalog', () => {
  it('loads, with unique names and SQL for some version', () => {
    const catalog = loadCatalog();
    expect(catalog.length).toBeGreaterThanOrEqual(14);
    for (const m of catalog) expect(Object.keys(m.sql).length).toBeGreaterThan(0);
    expect(catalog.map((m) => m.name)).toEqual(expect.arrayContaining(['pg_locks', 'pg_stat_database', 'pg_cache_hit', 'pg_database_size', 'pg_checkpoints', 'pg_replication', 'pg_statements', 'pg_connections']));
  });

  it('gives every field of a metric with several fields a help of its own (HELP is per Prometheus family)', () => {
    for (const m of loadCatalog()) {
      const fields = Object.entries(m.fields);
      if (fields.length < 2) continue;
      for (const [name, f] of fields) expect(f.help, `${m.name}.${name}`).toBeDefined();
      expect(new Set(fields.map(([, f]) => f.help)).size, m.name).toBe(fields.length);
    }
  });

  it('reads ages that cannot go negative: every *age* and since_* field is clamped at 0 in its SQL', () => {
    for (const m of loadCatalog()) {
      for (const name of Object.keys(m.fields).filter((f) => /age_seconds|^since_|lag_seconds$/.test(f) && m.name !== 'pg_replication')) {
        for (const text of Object.values(m.sql)) expect(text, `${m.name}.${name}`).toMatch(new RegExp(`greatest\\(0,[^\\n]*\\bas ${name}\\b`));
      }
    }
  });

  it('picks the SQL of the largest version key at or below the server', () => {
    const m = loadCatalog().find((x) => x.name === 'pg_checkpoints')!;
    expect(sqlFor(m, 16)).toContain('pg_stat_bgwriter');
    expect(sqlFor(m, 16)).not.toContain('pg_stat_checkpointer');
    expect(sqlFor(m, 17)).toContain('pg_stat_checkpointer');
    expect(sqlFor(loadCatalog().find((x) => x.name === 'pg_subscription_errors')!, 14)).toBeUndefined();
  });

  it('names the file, the metric and the field of a bad every:', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-catalog-'));
    try {
      fs.writeFileSync(path.join(dir, 'slow.yaml'), '- name: x\n  help: h\n  every: soon\n  sql: { "10": "select 1 as v" }\n  fields: { v: { kind: gauge, unit: value } }\n');
      expect(() => loadCatalog(dir)).toThrow('metric catalog slow.yaml: 0.every: every: expects a duration such as 30s or 1m');
      fs.writeFileSync(path.join(dir, 'slow.yaml'), '- name: x\n  help: h\n  every: 30s\n  sql: { "10": "select 1 as v" }\n  fields: { v: { kind: gauge, unit: value } }\n');
      expect(loadCatalog(dir)[0]!.everyMs).toBe(30_000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  let lab: TempLab;
  const majors = has15 ? [15, 17] : [17];
  beforeAll(async () => {
    lab = tempLab(`lab: catalog\nports: { from: 56750, to: 56759 }\nnodes:\n${majors.map((v) => `  pg${v}:\n    role: standalone\n    postgres: { version: ${v} }\n`).join('')}`);
    await labUp(lab.config());
    for (const v of majors) {
      // Metrics that need the heartbeat table read it on subscribers: give every node one.
      await withConnection(nodeConnection(lab.config(), `pg${v}`), async (sql) => {
        await sql.unsafe('create table prodhome_heartbeat (publication text primary key, beat timestamptz not null)');
        for (const stmt of HEARTBEAT_SUBSCRIBER_SQL.filter((x) => !x.startsWith('--'))) await sql.unsafe(stmt);
      });
    }
  });
  afterAll(() => lab.cleanup());

  for (const major of majors) {
    it(`every metric's SQL runs on Postgres ${major} and returns the declared columns`, async () => {
      await withConnection(nodeConnection(lab.config(), `pg${major}`), async (sql) => {
        for (const m of loadCatalog()) {
          const text = sqlFor(m, major);
          if (!text) continue;
          const result = await sql.unsafe(text).catch((e: Error) => {
            throw new Error(`${m.family}.yaml ${m.name} on Postgres ${major}: ${e.message}`);
          });
          const columns = result.columns.map((c) => c.name).sort();
          expect(columns, `${m.name} on ${major}`).toEqual([...m.tags, ...Object.keys(m.fields)].sort());
        }
      });
    });
  }
});
