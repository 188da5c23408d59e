import { ProdhomeError } from '../errors.js';
import type { GrafanaExport, GrafanaSource } from './grafana.js';

/**
 * `prodhome grafana push`: the same data source and dashboard `grafana export` writes, created or
 * updated through Grafana's HTTP API, idempotently by uid — a second push changes nothing and
 * says so. Data sources: GET /api/datasources/uid/:uid, then PUT there or POST
 * /api/datasources. Dashboards: GET /api/dashboards/uid/:uid to compare, then POST
 * /api/dashboards/db with overwrite. The API token travels in the Authorization header only.
 */

export interface PushTarget {
  /** Grafana's base URL, e.g. http://127.0.0.1:3000 */
  url: string;
  token: string;
}

export interface PushReport {
  /** One line per object: what it is, and created / updated / unchanged. */
  changes: string[];
}

export async function grafanaPush(exported: GrafanaExport, source: GrafanaSource & { password: string }, target: PushTarget): Promise<PushReport> {
  const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
    let r: Response;
    try {
      r = await fetch(new URL(path, target.url.endsWith('/') ? target.url : `${target.url}/`), {
        method,
        headers: { authorization: `Bearer ${target.token}`, 'content-type': 'application/json', accept: 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (e) {
      throw new ProdhomeError('USAGE', `cannot reach Grafana at ${target.url}: ${(e as Error).message}`, { hint: 'Check --url (Grafana listens on port 3000 by default).' });
    }
    const text = await r.text();
    const json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (r.status === 401 || r.status === 403) {
      throw new ProdhomeError('USAGE', `Grafana refused the token (${r.status} on ${method} ${path})`, { hint: 'Give a service account token with the Editor role (Admin to manage data sources) in --token-file or GRAFANA_TOKEN.' });
    }
    if (r.status >= 400 && r.status !== 404) throw new ProdhomeError('USAGE', `Grafana answered ${r.status} to ${method} ${path}: ${String(json.message ?? text).slice(0, 200)}`);
    return { status: r.status, json };
  };

  const changes: string[] = [];
  const ds = exported.datasource;
  const dsBody = {
    uid: ds.uid,
    name: ds.name,
    type: ds.type,
    access: 'proxy',
    url: `${source.host}:${source.port}`,
    user: source.user,
    jsonData: { database: source.database, sslmode: 'disable', timescaledb: false },
    secureJsonData: { password: source.password },
  };
  const existing = await api('GET', `api/datasources/uid/${encodeURIComponent(ds.uid)}`);
  if (existing.status === 404) {
    await api('POST', 'api/datasources', dsBody);
    changes.push(`data source "${ds.name}" (uid ${ds.uid}): created`);
  } else {
    const same = existing.json.url === dsBody.url && existing.json.user === dsBody.user && existing.json.name === dsBody.name && (existing.json.jsonData as { database?: string } | undefined)?.database === source.database;
    // The password cannot be read back: it is sent again each time, which changes nothing visible.
    await api('PUT', `api/datasources/uid/${encodeURIComponent(ds.uid)}`, dsBody);
    changes.push(`data source "${ds.name}" (uid ${ds.uid}): ${same ? 'unchanged' : 'updated'}`);
  }

  const dashboard = exported.dashboard as { uid: string; title: string };
  const current = await api('GET', `api/dashboards/uid/${encodeURIComponent(dashboard.uid)}`);
  const stored = current.status === 404 ? undefined : (current.json.dashboard as Record<string, unknown> | undefined);
  const comparable = (d: Record<string, unknown>) => JSON.stringify({ ...d, id: undefined, version: undefined });
  if (stored && comparable(stored) === comparable(dashboard as unknown as Record<string, unknown>)) {
    changes.push(`dashboard "${dashboard.title}" (uid ${dashboard.uid}): unchanged`);
  } else {
    await api('POST', 'api/dashboards/db', { dashboard: { ...dashboard, id: null }, overwrite: true, message: 'prodhome grafana push' });
    changes.push(`dashboard "${dashboard.title}" (uid ${dashboard.uid}): ${stored ? 'updated' : 'created'}`);
  }
  return { changes };
}
