import fs from 'node:fs';
import path from 'node:path';
import type { LabConfig } from '../config/index.js';
import { chooseStep, loadPanels, readPanel, type Panel } from '../dashboard/index.js';
import { ProdhomeError } from '../errors.js';
import { nodeConnection, readState } from '../lab/index.js';
import { connect } from '../pg/index.js';
import type { Journal } from './run.js';

/**
 * A run's files in the lab's state dir, `experiments/<run-id>/`: summary.json (the journal: every
 * step with its timing, result and evidence), report.md, and report.html — one self-contained
 * page (inline SVG, no script, no fetch) with the key metrics over the run read back from the
 * metrics store, the annotations drawn on them, the timeline, each check with its evidence.
 */

export const REPORT_PANELS = ['load_tps', 'load_errors', 'lag_bytes', 'heartbeat', 'transactions', 'connections_state'];

export interface Series { label: string; points: [number, number][] }
export interface Chart { id: string; title: string; unit: string; series: Series[] }
export interface Band { start: number; end: number; text: string; kind: string }

export function experimentsDir(stateDir: string): string {
  return path.join(stateDir, 'experiments');
}

export function runDir(stateDir: string, runId: string): string {
  return path.join(experimentsDir(stateDir), runId);
}

/** Writes the journal as it stands (the CLI calls it after every step: a killed run still leaves one). */
export function writeJournal(stateDir: string, j: Journal): string {
  const dir = runDir(stateDir, j.runId);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, 'summary.json');
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(j, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
  return file;
}

/** Runs in this lab, newest first. */
export function listRuns(stateDir: string): string[] {
  const dir = experimentsDir(stateDir);
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((d) => fs.existsSync(path.join(dir, d, 'summary.json'))).sort().reverse();
}

export function readJournal(stateDir: string, runId?: string): Journal {
  const runs = listRuns(stateDir);
  const id = runId ?? runs[0];
  if (!id || !runs.includes(id)) {
    throw new ProdhomeError('USAGE', runId ? `there is no experiment run "${runId}" in this lab${runs.length ? ` (runs: ${runs.slice(0, 5).join(', ')}${runs.length > 5 ? ', …' : ''})` : ''}` : 'no experiment has run in this lab yet', {
      hint: '`prodhome experiment run NAME` runs one; `prodhome experiment report` with no RUN takes the newest.',
    });
  }
  return JSON.parse(fs.readFileSync(path.join(runDir(stateDir, id), 'summary.json'), 'utf8')) as Journal;
}

/** The charts and annotations of a run's window, from the metrics store (none when the lab has no store or it is away). */
export async function readRunMetrics(config: LabConfig, j: Journal, warn: (l: string) => void = () => {}): Promise<{ charts: Chart[]; bands: Band[] }> {
  const state = readState(config.stateDir);
  const storeName = config.metrics.store;
  if (!storeName || !state?.nodes[storeName]) return { charts: [], bands: [] };
  const from = Date.parse(j.startedAt) - 5000;
  const to = (j.endedAt ? Date.parse(j.endedAt) : Date.now()) + 5000;
  const step = chooseStep(to - from, config.metrics.intervalMs, 300);
  const sql = connect(nodeConnection(config, storeName), { connectTimeoutSeconds: 3, statementTimeoutMs: 10_000, applicationName: 'prodhome-report' });
  const charts: Chart[] = [];
  const bands: Band[] = [];
  try {
    const panels = new Map(loadPanels().map((p) => [p.id, p]));
    for (const id of REPORT_PANELS) {
      const panel = panels.get(id);
      if (!panel) continue;
      const chart = await panelChart(sql, panel, from, to, step).catch((e: Error) => (warn(`report: ${panel.title}: ${e.message}`), undefined));
      if (chart && chart.series.length) charts.push(chart);
    }
    const rows = await sql<{ time: Date; end: Date | null; kind: string; node: string | null; text: string }[]>`
      select time, "end", kind, node, text from metrics.annotations
      where time <= ${new Date(to)} and coalesce("end", time) >= ${new Date(from)} and kind in ('fault', 'load', 'experiment') order by time`.catch(() => []);
    for (const r of rows) {
      if (r.kind === 'experiment' && !/: method: /.test(r.text)) continue; // the method's steps; phases and probes would crowd it
      bands.push({ start: r.time.getTime(), end: (r.end ?? r.time).getTime(), kind: r.kind, text: `${r.node ? `${r.node}: ` : ''}${r.text}` });
    }
  } catch (e) {
    warn(`report: the metrics store did not answer (${(e as Error).message}); the report has no charts`);
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
  return { charts, bands };
}

async function panelChart(sql: ReturnType<typeof connect>, panel: Panel, from: number, to: number, stepS: number): Promise<Chart> {
  const { fields, rows } = await readPanel(sql, panel, from, to, stepS);
  if (!fields.length) return { id: panel.id, title: panel.title, unit: panel.unit, series: [] };
  const series = new Map<string, Series>();
  for (const row of rows as unknown as Record<string, unknown>[]) {
    const key = panel.by.map((b) => String(row[b] ?? '')).join(' ');
    fields.forEach((f, i) => {
      const v = row[f];
      if (v === null || v === undefined) return;
      const label = fields.length > 1 ? `${key} ${panel.labels?.[panel.fields.indexOf(f)] ?? f}` : key;
      const s = series.get(label) ?? series.set(label, { label, points: [] }).get(label)!;
      s.points.push([Number(row.t), Number(v)]);
      void i;
    });
  }
  return { id: panel.id, title: panel.title, unit: panel.unit, series: [...series.values()].slice(0, 8) };
}

/** Writes summary.json, report.md and report.html; returns their paths. */
export function writeReport(stateDir: string, j: Journal, metrics: { charts: Chart[]; bands: Band[] }): { dir: string; files: string[] } {
  const dir = runDir(stateDir, j.runId);
  writeJournal(stateDir, j);
  const md = path.join(dir, 'report.md');
  const html = path.join(dir, 'report.html');
  fs.writeFileSync(md, renderMarkdown(j), { mode: 0o600 });
  fs.writeFileSync(html, renderHtml(j, metrics), { mode: 0o600 });
  return { dir, files: [path.join(dir, 'summary.json'), md, html] };
}

const secs = (a: string, b?: string) => (b ? `${((Date.parse(b) - Date.parse(a)) / 1000).toFixed(1)} s` : '—');

/** Figures a reader wants first: how many faults, rows verified, rows lost. */
export function headline(j: Journal): { faults: number; rowsVerified: number | null; rowsLost: number | null } {
  const tables = j.verify?.tables ?? [];
  return {
    faults: j.faults.length,
    rowsVerified: j.verify ? tables.reduce((n, t) => n + t.subscriberRows, 0) : null,
    rowsLost: j.verify ? tables.reduce((n, t) => n + Math.max(t.missing.length, t.publisherRows - t.subscriberRows, 0), 0) : null,
  };
}

export function renderMarkdown(j: Journal): string {
  const h = headline(j);
  const out = [
    `# Experiment ${j.experiment.name} — ${j.status.toUpperCase()}`,
    '',
    j.experiment.description,
    '',
    `- run: \`${j.runId}\` on lab \`${j.lab}\`, from ${j.startedAt} to ${j.endedAt ?? '(running)'} (${secs(j.startedAt, j.endedAt)}); times scaled by ${j.experiment.scale}`,
    `- faults: ${h.faults}; rows verified: ${h.rowsVerified ?? 'not verified'}; rows lost: ${h.rowsLost ?? 'not verified'}`,
    '',
  ];
  if (j.failures.length) out.push('## What failed', '', ...j.failures.map((f) => `- ${f}`), '');
  out.push('## Timeline', '', '| phase | line | step | at | took | result |', '| --- | --- | --- | --- | --- | --- |');
  for (const e of j.entries) out.push(`| ${e.phase} | ${e.line || ''} | \`${e.text.replace(/\|/g, '\\|')}\` | ${e.atMs !== undefined ? `${(e.atMs / 1000).toFixed(1)} s` : ''} | ${secs(e.start, e.end)} | ${e.status === 'ok' ? 'ok' : `**${e.status}**`}: ${e.result.replace(/\|/g, '\\|').replace(/\n/g, ' ')} |`);
  out.push('', '## Checks and their evidence', '');
  for (const e of j.entries.filter((x) => x.phase !== 'method' || /^assert|^wait: caught/.test(x.text))) {
    if (e.phase === 'cleanup') continue;
    out.push(`### ${e.status === 'ok' ? '✔' : '✘'} ${e.text} (${e.phase}, line ${e.line})`, '', e.result, '');
    if (e.evidence !== undefined) out.push('```json', JSON.stringify(e.evidence, null, 2).slice(0, 4000), '```', '');
  }
  out.push('## Verify', '');
  if (!j.verify) out.push('verify did not run.', '');
  else {
    out.push(`verify: ${j.verify.ok ? 'every row arrived' : 'MISMATCH'}`, '', '| subscriber | table | publisher rows | subscriber rows | missing | extra | changed |', '| --- | --- | --- | --- | --- | --- | --- |');
    for (const t of j.verify.tables) out.push(`| ${t.subscriber} | ${t.table} | ${t.publisherRows} | ${t.subscriberRows} | ${t.missing.length} | ${t.extra.length} | ${t.changed.length} |`);
    out.push('');
  }
  out.push('## Loads', '');
  if (!j.loads.length) out.push('no load ran.', '');
  else {
    out.push('| load | node | took | transactions | failed | tps | p50 ms | p99 ms | errors | stopped by |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const l of j.loads) {
      const s = l.summary;
      out.push(s
        ? `| ${l.name} (${l.workload}) | ${l.node} | ${s.seconds.toFixed(1)} s | ${s.transactions} | ${s.failed} | ${s.tps.toFixed(1)} | ${s.latencyMs.p50} | ${s.latencyMs.p99} | ${s.errors.map((e) => `${e.code}×${e.count}`).join(', ') || '0'} | ${s.stoppedBy} |`
        : `| ${l.name} (${l.workload}) | ${l.node} | ${secs(l.start, l.end)} | | | | | | ${l.error ?? ''} | |`);
    }
    out.push('');
  }
  out.push('## Faults', '');
  out.push(...(j.faults.length ? j.faults.map((f) => `- ${f.kind} ${f.target}${f.id ? ` (fault ${f.id})` : ''}: ${f.start} → ${f.end ?? 'instant'}`) : ['none']), '');
  return `${out.join('\n')}\n`;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const COLOURS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#be185d', '#4d7c0f'];

function fmt(v: number, unit: string): string {
  if (unit.startsWith('bytes')) {
    const u = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < u.length - 1) (v /= 1024), i++;
    return `${Number(v.toFixed(1))} ${u[i]}`;
  }
  return `${Number(v.toPrecision(3))}${unit === 'seconds' ? ' s' : unit === 'ms' ? ' ms' : ''}`;
}

/** One chart as inline SVG: lines per series, annotation bands behind, the time axis in seconds from the run's start. */
export function chartSvg(c: Chart, bands: Band[], t0: number, t1: number): string {
  const W = 380, H = 170, L = 50, R = 6, T = 8, B = 18;
  const max = Math.max(1e-9, ...c.series.flatMap((s) => s.points.map((p) => p[1])));
  const x = (t: number) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v: number) => T + (1 - v / max) * (H - T - B);
  const parts: string[] = [`<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(c.title)}" preserveAspectRatio="none">`];
  for (const b of bands) {
    const x0 = Math.max(L, x(b.start));
    const x1 = Math.min(W - R, Math.max(x0 + 1.5, x(b.end)));
    if (x1 < L || x0 > W - R) continue;
    parts.push(`<rect x="${x0.toFixed(1)}" y="${T}" width="${(x1 - x0).toFixed(1)}" height="${H - T - B}" fill="${b.kind === 'fault' ? '#fca5a5' : b.kind === 'load' ? '#bfdbfe' : '#fde68a'}" opacity="0.35"><title>${esc(b.text)}</title></rect>`);
  }
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e7eb"/><text x="${L - 4}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" font-size="9" fill="#6b7280">${esc(fmt(v, c.unit))}</text>`);
  }
  const span = (t1 - t0) / 1000;
  const tick = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600].find((s) => span / s <= 8) ?? 1200;
  for (let s = 0; s <= span; s += tick) parts.push(`<text x="${x(t0 + s * 1000).toFixed(1)}" y="${H - 5}" text-anchor="middle" font-size="9" fill="#6b7280">${s}s</text>`);
  c.series.forEach((s, i) => {
    // A gap (a node down, nothing sampled) is left as a gap, not bridged by a line.
    const pts = s.points.filter((p) => p[0] >= t0 && p[0] <= t1);
    const deltas = pts.slice(1).map((p, k) => p[0] - pts[k]![0]).filter((d) => d > 0);
    const gap = 3 * (deltas.length ? Math.min(...deltas) : Infinity);
    const d = pts.map((p, k) => `${k === 0 || p[0] - pts[k - 1]![0] > gap ? 'M' : 'L'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join('');
    if (d) parts.push(`<path d="${d}" fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="1.6"><title>${esc(s.label)}</title></path>`);
  });
  parts.push('</svg>');
  const legend = c.series.map((s, i) => `<span><i style="background:${COLOURS[i % COLOURS.length]}"></i>${esc(s.label)}</span>`).join('');
  return `<figure><figcaption>${esc(c.title)}</figcaption>${parts.join('')}<div class="legend">${legend}</div></figure>`;
}

export function renderHtml(j: Journal, m: { charts: Chart[]; bands: Band[] }): string {
  const h = headline(j);
  const t0 = Date.parse(j.startedAt);
  const t1 = j.endedAt ? Date.parse(j.endedAt) : Date.now();
  const badge = j.status === 'passed' ? 'pass' : 'fail';
  const rel = (iso?: string) => (iso ? `${((Date.parse(iso) - t0) / 1000).toFixed(1)} s` : '');
  const rows = j.entries
    .map((e) => `<tr class="${e.status}"><td>${e.phase}</td><td>${e.line || ''}</td><td><code>${esc(e.text)}</code></td><td>${rel(e.start)}</td><td>${secs(e.start, e.end)}</td><td><b>${e.status}</b> ${esc(e.result)}</td></tr>`)
    .join('\n');
  const checks = j.entries
    .filter((e) => e.phase !== 'cleanup' && (e.phase !== 'method' || /^assert|^wait: caught/.test(e.text)))
    .map((e) => `<details ${e.status === 'ok' ? '' : 'open'} class="${e.status}"><summary>${e.status === 'ok' ? '✔' : '✘'} <code>${esc(e.text)}</code> <small>(${e.phase}, line ${e.line})</small> — ${esc(e.result)}</summary>${e.evidence !== undefined ? `<pre>${esc(JSON.stringify(e.evidence, null, 2).slice(0, 6000))}</pre>` : ''}</details>`)
    .join('\n');
  const verify = j.verify
    ? `<p>${j.verify.ok ? '✔ every row arrived' : '✘ mismatch'}</p><table><tr><th>subscriber</th><th>table</th><th>publisher rows</th><th>subscriber rows</th><th>missing</th><th>extra</th><th>changed</th></tr>${j.verify.tables.map((t) => `<tr><td>${esc(t.subscriber)}</td><td>${esc(t.table)}</td><td>${t.publisherRows}</td><td>${t.subscriberRows}</td><td>${t.missing.length}</td><td>${t.extra.length}</td><td>${t.changed.length}</td></tr>`).join('')}</table>`
    : '<p>verify did not run.</p>';
  const loads = j.loads.length
    ? `<table><tr><th>load</th><th>node</th><th>took</th><th>transactions</th><th>failed</th><th>tps</th><th>p50 ms</th><th>p99 ms</th><th>errors</th></tr>${j.loads
        .map((l) => {
          const s = l.summary;
          return s
            ? `<tr><td>${esc(l.name)} (${esc(l.workload)})</td><td>${esc(l.node)}</td><td>${s.seconds.toFixed(1)} s</td><td>${s.transactions}</td><td>${s.failed}</td><td>${s.tps.toFixed(1)}</td><td>${s.latencyMs.p50}</td><td>${s.latencyMs.p99}</td><td>${esc(s.errors.map((e) => `${e.code}×${e.count}`).join(', ') || '0')}</td></tr>`
            : `<tr><td>${esc(l.name)}</td><td>${esc(l.node)}</td><td colspan="7">${esc(l.error ?? 'no summary')}</td></tr>`;
        })
        .join('')}</table>`
    : '<p>no load ran.</p>';
  const charts = m.charts.length ? m.charts.map((c) => chartSvg(c, m.bands, t0, t1)).join('\n') : '<p class="muted">No charts: the lab has no metrics store, or its agent was not sampling during the run.</p>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(j.experiment.name)} — ${j.status}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:16px;color:#111827}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #e5e7eb}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff;vertical-align:middle}.pass{background:#16a34a}.fail{background:#dc2626}
.figures{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}.figures div{border:1px solid #e5e7eb;border-radius:8px;padding:8px 14px}.figures b{display:block;font-size:20px}
.failures{background:#fef2f2;border:1px solid #fecaca;border-radius:8px;padding:8px 14px}
table{border-collapse:collapse;width:100%;font-size:13px;display:block;overflow-x:auto}td,th{border-bottom:1px solid #e5e7eb;padding:4px 6px;text-align:left;vertical-align:top}
tr.failed td,tr.error td,details.failed summary,details.error summary{color:#b91c1c}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:12px}
figure{margin:0;border:1px solid #e5e7eb;border-radius:8px;padding:8px}figcaption{font-weight:600;margin-bottom:4px}svg{width:100%;height:180px}
.legend{font-size:11px;color:#374151;display:flex;flex-wrap:wrap;gap:8px}.legend i{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle}
.key span{margin-right:12px}.key i{display:inline-block;width:12px;height:12px;vertical-align:middle;margin-right:4px;opacity:.6}
td:nth-child(4),td:nth-child(5){white-space:nowrap}table.timeline td:nth-child(3){min-width:11em}table.timeline td:nth-child(6){min-width:14em}
@media (max-width:600px){table.timeline td:nth-child(2),table.timeline th:nth-child(2){display:none}}
pre{background:#f9fafb;padding:8px;overflow-x:auto;font-size:12px}code{font-size:12px}.muted{color:#6b7280}details{margin:4px 0}
</style></head><body>
<h1>${esc(j.experiment.name)} <span class="badge ${badge}">${j.status.toUpperCase()}</span></h1>
<p>${esc(j.experiment.description)}</p>
<p class="muted">run <code>${esc(j.runId)}</code> on lab <code>${esc(j.lab)}</code> · ${esc(j.startedAt)} · ${secs(j.startedAt, j.endedAt)} · times scaled by ${j.experiment.scale} · ${esc(j.experiment.source)}</p>
<div class="figures"><div><b>${h.faults}</b>faults</div><div><b>${h.rowsVerified ?? '—'}</b>rows verified</div><div><b>${h.rowsLost ?? '—'}</b>rows lost</div><div><b>${j.entries.filter((e) => e.status === 'ok').length}/${j.entries.length}</b>steps ok</div></div>
${j.failures.length ? `<div class="failures"><b>What failed</b><ul>${j.failures.map((f) => `<li>${esc(f)}</li>`).join('')}</ul></div>` : ''}
<h2>Metrics over the run</h2>
<p class="key"><span><i style="background:#fca5a5"></i>fault</span><span><i style="background:#bfdbfe"></i>load run</span><span><i style="background:#fde68a"></i>experiment step</span></p>
<div class="charts">${charts}</div>
<h2>Checks and their evidence</h2>
${checks || '<p>none</p>'}
<h2>Timeline</h2>
<table class="timeline"><tr><th>phase</th><th>line</th><th>step</th><th>at</th><th>took</th><th>result</th></tr>
${rows}</table>
<h2>Verify</h2>
${verify}
<h2>Loads</h2>
${loads}
</body></html>
`;
}
