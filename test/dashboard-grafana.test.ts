import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_YAML } from '../src/config/index.js';
import { ANNOTATIONS_SQL, NODES_SQL, expandMacros, loadPanels, type GrafanaExport } from '../src/dashboard/index.js';
import { nodeConnection, readSecrets } from '../src/lab/index.js';
import { withConnection } from '../src/pg/index.js';
import { cli, portRange, tempLab, waitFor, type TempLab } from './helpers.js';

/**
 * `prodhome grafana export`: the files, and every panel's SQL run — with Grafana's macros
 * expanded as its Postgres data source does — against the real metrics node, as the read-only
 * role Grafana is given. No Grafana server can run here; the dashboard JSON is typed against
 * @grafana/schema at compile time (src/dashboard/grafana.ts).
 */

const YAML = DEFAULT_CONFIG_YAML.replace('lab: prodhome', 'lab: dashgraf').replace(/ports:\n  from: \d+\n  to: \d+\n/, portRange(58900));

let lab: TempLab;
let exported: GrafanaExport['dashboard'];
let out: string;

beforeAll(async () => {
  lab = tempLab(YAML);
  const up = cli(['up'], { cwd: lab.dir });
  expect(up.code, up.stderr).toBe(0);
  // A load that fails now and then (division by zero), so the errors panel has rows too.
  fs.writeFileSync(path.join(lab.dir, 'flaky.sql'), 'select 1 / (random() * 1.4)::int;\n');
  const load = cli(['load', 'custom', 'flaky.sql', '-T', '3', '-R', '50'], { cwd: lab.dir });
  expect(load.code, load.stderr).toBe(2); // a run with errors exits 2, as pgbench's does: the errors are the point here
  out = path.join(lab.dir, 'grafana');
  const r = cli(['grafana', 'export', out], { cwd: lab.dir });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toContain('PRODHOME_DASHBOARD_PASSWORD');
  exported = JSON.parse(fs.readFileSync(path.join(out, 'dashboards', 'prodhome-dashgraf.json'), 'utf8'));
}, 180_000);

afterAll(async () => {
  await lab?.cleanup();
});

describe('grafana export', () => {
  it('writes a data source with the read-only role and the password as an environment reference, never the password', () => {
    const ds = fs.readFileSync(path.join(out, 'provisioning', 'datasources', 'prodhome.yaml'), 'utf8');
    const secrets = readSecrets(lab.config().stateDir);
    const store = nodeConnection(lab.config(), 'metrics');
    expect(ds).toContain('user: prodhome_dashboard');
    expect(ds).toContain(`url: 127.0.0.1:${store.port}`);
    expect(ds).toContain('password: ${PRODHOME_DASHBOARD_PASSWORD}');
    const all = fs.readdirSync(out, { recursive: true }).map(String).filter((f) => fs.statSync(path.join(out, f)).isFile());
    expect(all.sort()).toEqual(['dashboards/prodhome-dashgraf.json', 'provisioning/dashboards/prodhome.yaml', 'provisioning/datasources/prodhome.yaml']);
    for (const f of all) {
      const text = fs.readFileSync(path.join(out, f), 'utf8');
      for (const pw of [...Object.values(secrets.nodes).map((n) => n.password), secrets.dashboard!.password]) expect(text.includes(pw), f).toBe(false);
    }
  });

  it('has one Grafana panel per panel definition, with fixed uids: exporting again changes nothing', () => {
    expect(exported.uid).toBe('prodhome-dashgraf');
    const panels = exported.panels as unknown as { title: string; datasource: { uid: string }; targets: { rawSql: string }[] }[];
    expect(panels.map((p) => p.title)).toEqual(loadPanels().map((p) => p.title));
    expect(new Set(panels.map((p) => p.datasource.uid))).toEqual(new Set(['prodhome-ds-dashgraf']));
    const before = fs.readFileSync(path.join(out, 'dashboards', 'prodhome-dashgraf.json'), 'utf8');
    expect(cli(['grafana', 'export', out], { cwd: lab.dir }).code).toBe(0);
    expect(fs.readFileSync(path.join(out, 'dashboards', 'prodhome-dashgraf.json'), 'utf8')).toBe(before);
  });

  it("runs every panel's SQL, the node variable's and the annotations', macros expanded, against the metrics node as the read-only role: each returns rows", async () => {
    const secret = readSecrets(lab.config().stateDir).dashboard!;
    const reader = { ...nodeConnection(lab.config(), 'metrics'), user: secret.user, password: secret.password };
    const nodes = ['publisher', 'subscriber1', 'subscriber2', 'metrics'];
    // Rates are derived from two samples of a counter, and pg_table is sampled every 5 s: wait
    // until the slowest panel's counter has two.
    await waitFor(
      () => withConnection(reader, (sql) => sql`select count(distinct time)::int as n from metrics.pg_table where autovacuum_count is not null`).then((r) => r[0]!.n >= 2).catch(() => false),
      30_000,
      'two pg_table samples in the store',
    );
    const panels = exported.panels as unknown as { title: string; targets: { rawSql: string; format: string }[] }[];
    await withConnection(reader, async (sql) => {
      const run = (text: string) => {
        const to = new Date();
        return sql.unsafe(expandMacros(text, { from: new Date(to.getTime() - 15 * 60_000), to, intervalSeconds: 5, nodes }));
      };
      expect((await run(NODES_SQL)).map((r) => r.node).sort()).toEqual([...nodes].sort());
      const annotations = await run(ANNOTATIONS_SQL);
      expect(annotations.some((a) => a.tags === 'load' && String(a.text).includes('prodhome load custom flaky.sql'))).toBe(true);
      for (const p of panels) {
        const rows = await waitFor(async () => {
          const r = await run(p.targets[0]!.rawSql);
          return r.length ? r : undefined;
        }, 15_000, `rows for ${p.title}`);
        expect(Object.keys(rows[0]!)[0], p.title).toBe('time');
        expect(p.targets[0]!.format).toBe('time_series');
        // At 1-minute and 10-minute intervals the same SQL reads the rollup tiers (and the raw rows past them).
        for (const intervalSeconds of [60, 600]) {
          const to = new Date();
          const rolled = await sql.unsafe(expandMacros(p.targets[0]!.rawSql, { from: new Date(to.getTime() - 86_400_000), to, intervalSeconds, nodes }));
          expect(rolled.length, `${p.title} at ${intervalSeconds} s`).toBeGreaterThan(0);
        }
      }
    });
  }, 120_000);
});
