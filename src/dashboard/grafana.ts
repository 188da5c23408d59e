import type { AnnotationQuery, Dashboard, DataQuery, Panel as GrafanaPanel, VariableModel } from '@grafana/schema';
import { grafanaDownsampleSql } from '../sinks/index.js';
import { panelQuery, type Panel } from './panels.js';

/**
 * The same panels for Grafana: provisioning files for a Postgres data source on the metrics node
 * (the dashboard's read-only role; its password an environment reference, never in a file) and
 * one dashboard whose panels are made from panels/*.yaml, as the built-in page's are. uids are
 * fixed per lab, so provisioning again updates in place.
 */

export interface GrafanaExport {
  /** path relative to the export dir → file text */
  files: Record<string, string>;
  dashboard: Dashboard;
  /** The data source the dashboard reads (what the provisioning file declares). */
  datasource: { uid: string; name: string; type: string };
}

export interface GrafanaSource {
  lab: string;
  host: string;
  port: number;
  database: string;
  user: string;
}

/** The Postgres data source's query, as its query editor saves it in code mode. */
interface SqlQuery extends DataQuery {
  rawQuery: true;
  editorMode: 'code';
  format: 'time_series' | 'table';
  rawSql: string;
}

export const PASSWORD_ENV = 'PRODHOME_DASHBOARD_PASSWORD';
const DS_TYPE = 'grafana-postgresql-datasource';

const UNITS: Record<Panel['unit'], string> = {
  '/s': 'ops',
  bytes: 'bytes',
  'bytes/s': 'Bps',
  seconds: 's',
  ms: 'ms',
  percent: 'percent',
  ratio: 'percentunit',
  connections: 'short',
  locks: 'short',
  rows: 'short',
  errors: 'short',
};

/**
 * A panel's query with Grafana's macros: the range, the bucket ($__interval) and the node variable.
 * The same builder as the built-in page's (sinks' downsampleSql): it reads the store's tier that
 * fits $__interval_ms and derives counters' rates in SQL.
 */
export function grafanaSql(panel: Panel, schema = 'metrics'): string {
  return grafanaDownsampleSql(panelQuery(panel, undefined, schema));
}

export const ANNOTATIONS_SQL = `select extract(epoch from time) * 1000 as time, extract(epoch from coalesce("end", time)) * 1000 as timeend, text, kind as tags
from metrics.annotations where $__timeFilter(time) order by time`;

export const NODES_SQL = "select distinct tags->>'node' as node from metrics._series where measurement = 'pg_up' order by 1";

const uidPart = (lab: string) => lab.replace(/[^a-zA-Z0-9_-]/g, '-').slice(0, 24);

export function grafanaExport(panels: Panel[], source: GrafanaSource): GrafanaExport {
  const dsUid = `prodhome-ds-${uidPart(source.lab)}`;
  const datasource = { type: DS_TYPE, uid: dsUid };
  const grafanaPanels: GrafanaPanel[] = panels.map((p, i) => ({
    id: i + 1,
    type: 'timeseries',
    title: p.title,
    description: p.info.trim().split('\n').join(' '),
    datasource,
    gridPos: { x: (i % 2) * 12, y: Math.floor(i / 2) * 8, w: 12, h: 8 },
    fieldConfig: { defaults: { unit: UNITS[p.unit], custom: { spanNulls: false } }, overrides: [] },
    options: { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'none' } },
    targets: [{ refId: 'A', datasource, editorMode: 'code', format: 'time_series', rawQuery: true, rawSql: grafanaSql(p) } satisfies SqlQuery],
  }));
  const node: VariableModel = {
    name: 'node',
    label: 'node',
    type: 'query',
    datasource,
    query: NODES_SQL,
    multi: true,
    includeAll: true,
    refresh: 2,
    current: { text: ['All'], value: ['$__all'] },
  };
  const loadRuns: AnnotationQuery<SqlQuery> = {
    name: 'prodhome annotations (load runs…)',
    enable: true,
    iconColor: 'orange',
    datasource,
    target: { refId: 'Anno', rawQuery: true, editorMode: 'code', format: 'table', rawSql: ANNOTATIONS_SQL },
  };
  const dashboard: Dashboard = {
    uid: `prodhome-${uidPart(source.lab)}`,
    title: `prodhome · ${source.lab}`,
    tags: ['prodhome'],
    editable: true,
    schemaVersion: 39,
    graphTooltip: 1, // a crosshair shared by every panel, as on prodhome's own page
    time: { from: 'now-15m', to: 'now' },
    refresh: '5s',
    timezone: 'browser',
    templating: { list: [node] },
    annotations: { list: [loadRuns] },
    panels: grafanaPanels,
  };
  const datasources = [
    'apiVersion: 1',
    'datasources:',
    `  - name: prodhome metrics (${source.lab})`,
    `    uid: ${dsUid}`,
    `    type: ${DS_TYPE}`,
    '    access: proxy',
    `    url: ${source.host}:${source.port}`,
    `    user: ${source.user}`,
    '    jsonData:',
    `      database: ${source.database}`,
    '      sslmode: disable',
    '      timescaledb: false',
    '    secureJsonData:',
    `      # The read-only role's password, from the environment Grafana runs in (prodhome writes no secret here):`,
    `      password: $${'{'}${PASSWORD_ENV}}`,
    '',
  ].join('\n');
  const providers = [
    'apiVersion: 1',
    'providers:',
    `  - name: prodhome (${source.lab})`,
    '    type: file',
    '    allowUiUpdates: false',
    '    options:',
    '      # Point this at where the dashboards/ folder of this export lives on the Grafana host.',
    '      path: dashboards',
    '',
  ].join('\n');
  return {
    dashboard,
    datasource: { uid: dsUid, name: `prodhome metrics (${source.lab})`, type: DS_TYPE },
    files: {
      'provisioning/datasources/prodhome.yaml': datasources,
      'provisioning/dashboards/prodhome.yaml': providers,
      [`dashboards/prodhome-${uidPart(source.lab)}.json`]: `${JSON.stringify(dashboard, null, 2)}\n`,
    },
  };
}

/**
 * A Grafana query as the Postgres data source sends it: $__timeFilter, $__timeFrom(), $__timeTo(),
 * $__interval_ms, $__timeGroup, $__timeGroupAlias and
 * the $node variable expanded as Grafana does (for tests and for `--print-sql`).
 */
export function expandMacros(sql: string, o: { from: Date; to: Date; intervalSeconds: number; nodes: string[] }): string {
  const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
  return sql
    .replace(/\$__timeFrom\(\)/g, lit(o.from.toISOString()))
    .replace(/\$__timeTo\(\)/g, lit(o.to.toISOString()))
    .replace(/\$__interval_ms\b/g, String(o.intervalSeconds * 1000))
    .replace(/\$__timeFilter\((\w+)\)/g, (_, c: string) => `${c} BETWEEN ${lit(o.from.toISOString())} AND ${lit(o.to.toISOString())}`)
    .replace(/\$__timeGroupAlias\((\w+),\s*\$__interval\)/g, (_, c: string) => `floor(extract(epoch from ${c})/${o.intervalSeconds})*${o.intervalSeconds} AS "time"`)
    .replace(/\$__timeGroup\((\w+),\s*\$__interval\)/g, (_, c: string) => `floor(extract(epoch from ${c})/${o.intervalSeconds})*${o.intervalSeconds}`)
    .replace(/\$node\b/g, o.nodes.map(lit).join(','));
}
