import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grafanaExport, grafanaPush, loadPanels } from '../src/dashboard/index.js';
import { cli } from './helpers.js';

/**
 * `grafana push` against a STAND-IN for Grafana's HTTP API: no Grafana server can run on this
 * machine (it is neither in Debian nor on npm). The stand-in implements the documented routes
 * push uses — GET/POST /api/datasources, GET/PUT /api/datasources/uid/:uid, GET
 * /api/dashboards/uid/:uid, POST /api/dashboards/db — with bearer-token auth, and keeps what it
 * is sent, so the test checks the requests' shape and that a second push changes nothing.
 */
class GrafanaStandIn {
  readonly datasources = new Map<string, Record<string, unknown>>();
  readonly dashboards = new Map<string, { dashboard: Record<string, unknown>; version: number }>();
  readonly requests: string[] = [];
  private readonly server = http.createServer((req, res) => this.handle(req, res));
  constructor(private readonly token: string) {}

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  stop(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const send = (status: number, json: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
      this.requests.push(`${req.method} ${req.url}`);
      if (req.headers.authorization !== `Bearer ${this.token}`) return send(401, { message: 'Unauthorized' });
      const data = body ? (JSON.parse(body) as Record<string, unknown>) : {};
      let m: RegExpExecArray | null;
      if (req.method === 'POST' && req.url === '/api/datasources') {
        for (const k of ['name', 'type', 'url', 'access']) if (typeof data[k] !== 'string') return send(400, { message: `${k} required` });
        this.datasources.set(String(data.uid), data);
        return send(200, { message: 'Datasource added', id: this.datasources.size });
      }
      if ((m = /^\/api\/datasources\/uid\/([^/]+)$/.exec(req.url ?? ''))) {
        const uid = decodeURIComponent(m[1]!);
        if (req.method === 'GET') return this.datasources.has(uid) ? send(200, { ...this.datasources.get(uid), secureJsonData: undefined }) : send(404, { message: 'Data source not found' });
        if (req.method === 'PUT') {
          if (!this.datasources.has(uid)) return send(404, { message: 'Data source not found' });
          this.datasources.set(uid, data);
          return send(200, { message: 'Datasource updated' });
        }
      }
      if ((m = /^\/api\/dashboards\/uid\/([^/]+)$/.exec(req.url ?? '')) && req.method === 'GET') {
        const d = this.dashboards.get(decodeURIComponent(m[1]!));
        return d ? send(200, { dashboard: { ...d.dashboard, id: 7, version: d.version }, meta: {} }) : send(404, { message: 'Dashboard not found' });
      }
      if (req.method === 'POST' && req.url === '/api/dashboards/db') {
        const d = data.dashboard as Record<string, unknown> | undefined;
        if (!d || typeof d.uid !== 'string' || data.overwrite !== true) return send(400, { message: 'dashboard with uid, and overwrite, expected' });
        const prev = this.dashboards.get(d.uid);
        this.dashboards.set(d.uid, { dashboard: { ...d, id: undefined }, version: (prev?.version ?? 0) + 1 });
        return send(200, { status: 'success', uid: d.uid, version: (prev?.version ?? 0) + 1 });
      }
      return send(404, { message: 'Not found' });
    });
  }
}

describe('grafana push (against a stand-in for the Grafana API: no Grafana can run here)', () => {
  const grafana = new GrafanaStandIn('t0ken');
  let url = '';
  const source = { lab: 'pushlab', host: '127.0.0.1', port: 54323, database: 'postgres', user: 'prodhome_dashboard', password: 'reader-secret' };
  const exported = () => grafanaExport(loadPanels(), source);
  beforeAll(async () => {
    url = await grafana.start();
  });
  afterAll(() => grafana.stop());

  it('creates the data source and the dashboard by uid, then a second push changes nothing and says so', async () => {
    const first = await grafanaPush(exported(), source, { url, token: 't0ken' });
    expect(first.changes).toEqual([
      'data source "prodhome metrics (pushlab)" (uid prodhome-ds-pushlab): created',
      'dashboard "prodhome · pushlab" (uid prodhome-pushlab): created',
    ]);
    const ds = grafana.datasources.get('prodhome-ds-pushlab')!;
    expect(ds).toMatchObject({ type: 'grafana-postgresql-datasource', url: '127.0.0.1:54323', user: 'prodhome_dashboard', secureJsonData: { password: 'reader-secret' } });
    expect(grafana.dashboards.get('prodhome-pushlab')!.dashboard.panels).toHaveLength(loadPanels().length);
    const second = await grafanaPush(exported(), source, { url, token: 't0ken' });
    expect(second.changes.map((c) => c.split(': ').at(-1))).toEqual(['unchanged', 'unchanged']);
    expect(grafana.dashboards.get('prodhome-pushlab')!.version).toBe(1);
  });

  it('a wrong token is a clear error naming the fix; the API token never appears in a URL', async () => {
    await expect(grafanaPush(exported(), source, { url, token: 'nope' })).rejects.toThrow(/Grafana refused the token \(401/);
    expect(grafana.requests.some((r) => r.includes('t0ken'))).toBe(false);
  });

  it('the CLI without a token says where to put one (exit 2)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prodhome-push-'));
    try {
      const r = cli(['grafana', 'push', '--url', url], { cwd: dir, env: { GRAFANA_TOKEN: '' } });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('grafana push needs an API token');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
