// prodhome's dashboard page: plain JavaScript, no build step. It reads the agent's JSON API
// (the token travels in an HttpOnly cookie the page's URL set) and draws with uPlot: columnar
// data, one canvas per panel, one shared cursor. The view's state lives in the URL.
'use strict';

const RANGES = { '5m': 300e3, '15m': 900e3, '1h': 3600e3, '6h': 21600e3, '24h': 86400e3 };
const PALETTE = ['#2f7ed8', '#e4572e', '#17a673', '#9b59b6', '#f0a202', '#1fb5c9', '#d63384', '#6c757d'];
const DASHES = [[], [6, 3], [2, 3], [10, 3, 2, 3], [1, 2]];
const LIVE_MS = 1000;

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== undefined && c !== null) e.append(c);
  return e;
};

// ---- state, kept in the URL ----
const params = new URLSearchParams(location.search);
const state = {
  range: RANGES[params.get('range')] ? params.get('range') : '15m',
  from: Number(params.get('from')) || undefined,
  to: Number(params.get('to')) || undefined,
  live: params.get('live') !== '0',
  nodes: params.get('nodes') ? new Set(params.get('nodes').split(',')) : undefined,
};
if (state.from && state.to) state.live = false;
// A snapshot (`prodhome dashboard snapshot`) carries its range and every answer inline: no server.
const SNAPSHOT = window.PRODHOME_SNAPSHOT;
if (SNAPSHOT) Object.assign(state, { range: '15m', from: SNAPSHOT.from, to: SNAPSHOT.to, live: false });

function saveState() {
  if (SNAPSHOT) return; // a file: nothing to bookmark
  const p = new URLSearchParams();
  // The token stays in the address so a bookmark keeps working.
  if (params.get('token')) p.set('token', params.get('token'));
  p.set('range', state.range);
  if (state.from && state.to) {
    p.set('from', String(Math.round(state.from)));
    p.set('to', String(Math.round(state.to)));
  }
  if (!state.live) p.set('live', '0');
  if (state.nodes) p.set('nodes', [...state.nodes].join(','));
  history.replaceState(null, '', `?${p}`);
}

function window_() {
  if (state.from && state.to) return { from: Math.round(state.from), to: Math.round(state.to) };
  const to = Date.now();
  return { from: to - RANGES[state.range], to };
}

// ---- formatting with units ----
const BYTES = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
function fmt(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const n = (x, d = 2) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(d));
  switch (unit) {
    case 'bytes':
    case 'bytes/s': {
      let i = 0;
      let x = v;
      while (Math.abs(x) >= 1024 && i < BYTES.length - 1) {
        x /= 1024;
        i++;
      }
      return `${n(x, i ? 2 : 0)} ${BYTES[i]}${unit === 'bytes/s' ? '/s' : ''}`;
    }
    case 'seconds':
      return Math.abs(v) < 1 ? `${n(v * 1000)} ms` : `${n(v)} s`;
    case 'ms':
      return `${n(v)} ms`;
    case 'percent':
      return `${n(v, 1)} %`;
    case 'ratio':
      return `${(v * 100).toFixed(2)} %`;
    case '/s':
      return `${n(v)}/s`;
    default:
      return `${n(v, Number.isInteger(v) ? 0 : 2)}${unit ? ` ${unit}` : ''}`;
  }
}

/** Axis ticks: the unit's short form; counts (connections, rows…) as bare numbers, the title names them. */
function axisFmt(v, unit) {
  if (['bytes', 'bytes/s', 'seconds', 'ms', 'percent', 'ratio', '/s'].includes(unit)) return fmt(v, unit);
  const a = Math.abs(v);
  return a >= 1e6 ? `${+(v / 1e6).toFixed(1)}M` : a >= 1e4 ? `${+(v / 1e3).toFixed(1)}k` : String(+v.toFixed(2));
}

/** A break in the lines where the store has no rows for a while (the lab or agent was down). */
function withGaps(times, series, stepMs) {
  const gap = Math.max(3 * stepMs, 15000);
  const t = [];
  const cols = series.map(() => []);
  for (let i = 0; i < times.length; i++) {
    if (i && times[i] - times[i - 1] > gap) {
      t.push((times[i] + times[i - 1]) / 2);
      cols.forEach((c) => c.push(null));
    }
    t.push(times[i]);
    series.forEach((s, j) => cols[j].push(s.values[i]));
  }
  return [t, cols];
}

// ---- API ----
let storeDown = false;
let lastGood = 0;
async function api(path, query = {}) {
  if (SNAPSHOT) {
    // Answers were taken for the whole range; a zoom shows part of the same data.
    const body = SNAPSHOT.answers[path === 'series' ? `series/${query.panel}` : path];
    if (!body) throw new Error(`this snapshot holds no ${path}`);
    return body;
  }
  const q = new URLSearchParams(query);
  const res = await fetch(`api/${path}?${q}`, { credentials: 'same-origin', signal: AbortSignal.timeout(10000) });
  const body = await res.json().catch(() => ({}));
  if (res.status === 503) throw Object.assign(new Error(body.error || 'the metrics store did not answer'), { store: true });
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

function banner(text) {
  const b = $('banner');
  if (!text) {
    b.hidden = true;
    return;
  }
  b.hidden = false;
  b.textContent = text;
}

// ---- colours: one per node, everywhere ----
const css = (name) => getComputedStyle(document.body).getPropertyValue(name).trim();
let NODES = [];
const colourOf = (node) => PALETTE[Math.max(0, NODES.findIndex((n) => n.name === node)) % PALETTE.length];

// ---- panels ----
const charts = new Map(); // id → { panel, u, key, box, empty }
let annotations = [];
let links = [];

function panelBox(panel) {
  const info = el('button', { class: 'info', type: 'button', title: 'what this shows, and its SQL', 'aria-label': `about ${panel.title}`, onclick: () => showInfo(panel) }, 'i');
  const head = el('div', { class: 'panel-head' }, el('h3', {}, panel.title, el('small', {}, ` ${unitLabel(panel.unit)}`)), info);
  const chart = el('div', { class: 'chart' });
  const empty = el('div', { class: 'empty', hidden: '' });
  const box = el('article', { class: 'panel', id: `panel-${panel.id}`, 'data-panel': panel.id, 'data-points': '0', 'data-nodes': '' }, head, chart, empty);
  return { box, chart, empty };
}

const unitLabel = (u) => ({ '/s': '(per second)', bytes: '(bytes)', 'bytes/s': '(bytes/s)', seconds: '(seconds)', ms: '(ms)', percent: '(% of a core)', ratio: '(%)' })[u] ?? `(${u})`;

function showInfo(panel) {
  $('info-title').textContent = panel.title;
  const [what, health] = panel.info.trim().split('\n');
  $('info-text').replaceChildren(el('span', {}, what), el('br'), el('span', {}, health));
  $('info-sql').textContent = panel.sql;
  $('info').showModal();
}

function chartWidth(c) {
  return Math.max(240, c.chart.clientWidth || c.box.clientWidth - 24);
}

function lastValue(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] != null) return values[i];
  return null;
}

function makeChart(c, data, series) {
  const panel = c.panel;
  const perNode = new Map();
  const opts = {
    width: chartWidth(c),
    height: window.innerWidth < 600 ? 170 : 200,
    cursor: { sync: { key: 'prodhome', setSeries: false }, drag: { x: true, y: false, setScale: false } },
    scales: { x: { time: true } },
    legend: { live: true },
    axes: [
      { stroke: css('--fg'), grid: { stroke: css('--grid') }, ticks: { stroke: css('--grid') } },
      { stroke: css('--fg'), grid: { stroke: css('--grid') }, ticks: { stroke: css('--grid') }, size: 78, values: (u, vals) => vals.map((v) => axisFmt(v, panel.unit)) },
    ],
    series: [
      { value: (u, v) => (v == null ? '–' : new Date(v * 1000).toLocaleTimeString()) },
      ...series.map((s) => {
        const i = perNode.get(s.node) ?? 0;
        perNode.set(s.node, i + 1);
        // Under the cursor: its value; with the cursor away: the latest value (the legend says where things stand now).
        const value = (u, v, si, di) => fmt(di == null ? lastValue(u.data[si]) : v, panel.unit);
        return { label: s.name, stroke: colourOf(s.node), width: 1.5, dash: DASHES[i % DASHES.length], spanGaps: false, points: { show: false }, value };
      }),
    ],
    hooks: {
      setSelect: [
        (u) => {
          if (u.select.width < 5) return;
          const from = u.posToVal(u.select.left, 'x') * 1000;
          const to = u.posToVal(u.select.left + u.select.width, 'x') * 1000;
          u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
          zoom(from, to);
        },
      ],
      draw: [drawAnnotations],
    },
  };
  c.chart.replaceChildren();
  return new uPlot(opts, data, c.chart);
}

// Load runs (and later faults, experiment phases) as bands with their label, on every chart.
function drawAnnotations(u) {
  if (!annotations.length) return;
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  const style = getComputedStyle(document.body);
  for (const a of annotations) {
    const x0 = u.valToPos(a.time / 1000, 'x', true);
    const x1 = a.end ? u.valToPos(a.end / 1000, 'x', true) : x0;
    ctx.fillStyle = style.getPropertyValue('--band');
    ctx.fillRect(x0, top, Math.max(1, x1 - x0), height);
    ctx.strokeStyle = style.getPropertyValue('--annot');
    ctx.lineWidth = 1 * devicePixelRatio;
    ctx.beginPath();
    ctx.moveTo(x0, top);
    ctx.lineTo(x0, top + height);
    ctx.stroke();
    ctx.fillStyle = style.getPropertyValue('--annot');
    ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
    ctx.fillText(a.text.length > 40 ? `${a.text.slice(0, 39)}…` : a.text, x0 + 3 * devicePixelRatio, top + 12 * devicePixelRatio);
  }
  ctx.restore();
}

/**
 * Every chart's series over the window, in one request. Incremental (live mode): each chart asks
 * only from its last bucket on (that bucket may have been partial), at the step it has, and the
 * answer is merged into what it holds; otherwise the whole window at a step sized to the charts'
 * width in pixels (one bucket a pixel at most), which the server reads from its rollups for long
 * ranges.
 */
async function loadSeries(list, win, incremental) {
  if (SNAPSHOT) return Promise.all(list.map((c) => api('series', { panel: c.panel.id, from: win.from, to: win.to })));
  const q = { from: win.from, to: win.to };
  const step = incremental ? list.find((c) => c.step)?.step : undefined;
  q.panels = list.map((c) => (step && c.last !== undefined ? `${c.panel.id}:${c.last}` : c.panel.id)).join(',');
  if (step) q.step = step;
  else q.buckets = Math.min(1000, Math.max(100, Math.round(chartWidth(list[0]))));
  if (state.nodes) q.nodes = [...state.nodes].join(',');
  return (await api('batch', q)).results;
}

/** Keeps a chart's columns: replaced whole, or from `since` on (merged by series name), trimmed to the window. */
function mergeSeries(c, r, win, since) {
  if (since === undefined || !c.times) {
    c.times = r.times;
    c.series = r.series;
  } else {
    const keep = c.times.findIndex((t) => t >= since);
    const cut = keep < 0 ? c.times.length : keep;
    const oldTimes = c.times.slice(0, cut);
    const byName = new Map(r.series.map((s) => [s.name, s]));
    const names = new Set([...c.series.map((s) => s.name), ...r.series.map((s) => s.name)]);
    const before = new Map(c.series.map((s) => [s.name, s]));
    c.series = [...names].sort().map((name) => {
      const old = before.get(name);
      const fresh = byName.get(name);
      const base = old ?? fresh;
      return { ...base, values: [...(old ? old.values.slice(0, cut) : oldTimes.map(() => null)), ...(fresh ? fresh.values : r.times.map(() => null))] };
    });
    c.times = [...oldTimes, ...r.times];
  }
  c.step = r.step;
  // The window moved on: drop what fell out of it.
  const first = c.times.findIndex((t) => t >= win.from - c.step * 1000);
  if (first > 0) {
    c.times = c.times.slice(first);
    for (const s of c.series) s.values = s.values.slice(first);
  }
  c.last = c.times.length ? c.times[c.times.length - 1] : undefined;
}

function drawPanel(c, win) {
  const series = c.series;
  const [ms, cols] = withGaps(c.times, series, c.step * 1000);
  const data = [ms.map((t) => t / 1000), ...cols];
  const key = series.map((s) => s.name).join('\n');
  const points = series.reduce((n, s) => n + s.values.filter((v) => v !== null).length, 0);
  c.box.dataset.points = String(points);
  c.box.dataset.last = String(c.last ?? 0);
  c.box.dataset.nodes = [...new Set(series.filter((s) => s.values.some((v) => v !== null)).map((s) => s.node))].join(',');
  if (!series.length) {
    c.u?.destroy();
    c.u = undefined;
    c.key = '';
    c.chart.hidden = true;
    c.empty.hidden = false;
    c.empty.textContent = emptyText(c.panel);
    return;
  }
  c.chart.hidden = false;
  c.empty.hidden = true;
  if (!c.u || c.key !== key) {
    c.u?.destroy();
    c.u = makeChart(c, data, series);
    c.key = key;
  } else {
    c.u.setData(data, false);
    if (c.u.cursor.idx == null) c.u.setLegend({ idx: null }); // the latest values, unless a cursor is over a chart
  }
  c.u.setScale('x', { min: win.from / 1000, max: win.to / 1000 });
}

function emptyText(panel) {
  if (panel.group === 'load') return annotations.some((a) => a.kind === 'load') ? (panel.measurement === 'workload_errors' ? 'No errors in the load runs of this range.' : 'No figures from the load runs of this range.') : 'No load run in this range.';
  if (['pg_replication', 'replication_heartbeat', 'pg_replication_slot', 'pg_subscription_errors', 'pg_subscription'].includes(panel.measurement) && !links.length) return 'No subscriptions in this lab.';
  return 'No data in this range yet.';
}

let refreshing = false;
let shownView = '';
// Live mode: the topology and overview (the agent's memory, cheap) every second; the charts as
// often as their bucket can change (every second at 5 m, every 2 s from 15 m up), statements
// every 10 s. A user's action refreshes everything at once.
let lastCharts = 0;
let lastStatements = 0;
function chartsDue() {
  const range = state.from && state.to ? state.to - state.from : RANGES[state.range];
  return Date.now() - lastCharts >= (range <= RANGES['5m'] ? 900 : 1900);
}

async function tick() {
  if (!state.live) return;
  if (chartsDue()) return refreshAll(false);
  await refreshLive();
}

async function refreshAll(forced = true) {
  if (refreshing) return;
  refreshing = true;
  lastCharts = Date.now();
  const win = window_();
  // Live ticks fetch only what is new, as long as the view (range, nodes) is the one the charts hold.
  const view = `${state.range}|${state.from}|${state.to}|${state.nodes ? [...state.nodes].join(',') : ''}`;
  const incremental = !forced && state.live && !SNAPSHOT && view === shownView;
  try {
    const [ann] = await Promise.all([api('annotations', win).catch(() => ({ annotations })), refreshLive()]);
    annotations = ann.annotations;
    const list = [...charts.values()];
    let failed;
    const results = await loadSeries(list, win, incremental).catch((e) => {
      failed = e;
      return [];
    });
    results.forEach((r, i) => {
      const c = list[i];
      if (r.error) {
        failed ??= Object.assign(new Error(r.error), { store: true }); // this chart keeps its last data
        return;
      }
      mergeSeries(c, r, win, incremental ? c.last : undefined);
      drawPanel(c, win);
    });
    if (!failed) shownView = view;
    else if (!incremental) shownView = ''; // the next tick asks for the whole window again
    $('load-empty').hidden = [...charts.values()].some((c) => c.panel.group === 'load' && Number(c.box.dataset.points) > 0);
    if (forced || Date.now() - lastStatements >= 10_000) {
      lastStatements = Date.now();
      await refreshStatements(win).catch((e) => (failed ??= e));
    }
    if (failed) throw failed;
    storeDown = false;
    lastGood = Date.now();
    banner('');
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    storeDown = true;
    banner(`${e.store ? 'The metrics store is unreachable' : 'The dashboard could not load its data'} (${e.message}). Showing the last data${lastGood ? ` from ${new Date(lastGood).toLocaleTimeString()}` : ''}; retrying.`);
  } finally {
    refreshing = false;
    // Every refresh that ended, with data or with the banner (for tests and the bench).
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  }
}

// ---- topology and overview, from the agent's latest sample ----
async function refreshLive() {
  let v;
  try {
    v = await api('live');
  } catch {
    return; // the agent's own view; the banner is for the store
  }
  links = v.links;
  drawTopology(v);
  drawOverview(v);
}

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, val] of Object.entries(attrs)) e.setAttribute(k, val);
  for (const c of children) if (c !== undefined && c !== null) e.append(c);
  return e;
}

function drawTopology(v) {
  const host = $('topology');
  const narrow = host.clientWidth < 640;
  const W = narrow ? Math.max(340, host.clientWidth) : Math.max(640, host.clientWidth);
  const pubs = v.nodes.filter((n) => v.links.some((l) => l.publisher === n.name));
  const subs = v.nodes.filter((n) => !pubs.includes(n) && v.links.some((l) => l.subscriber === n.name));
  const others = v.nodes.filter((n) => !pubs.includes(n) && !subs.includes(n));
  const NW = narrow ? 150 : 170;
  const NH = 46;
  const pos = new Map();
  let H;
  if (narrow) {
    // Publishers on top, subscribers below, others at the bottom.
    const rowY = [20, 230, 330];
    [pubs, subs, others].forEach((row, r) => row.forEach((n, i) => pos.set(n.name, { x: ((i + 0.5) * W) / row.length - NW / 2, y: rowY[r] })));
    H = others.length ? 390 : 290;
  } else {
    const GAP = 80;
    const col = (row, x) => row.forEach((n, i) => pos.set(n.name, { x, y: 60 + i * (NH + GAP) }));
    col(pubs, 20);
    col(subs, W - NW - 20);
    others.forEach((n, i) => pos.set(n.name, { x: 20 + i * (NW + 20), y: 60 + Math.max(pubs.length, subs.length, 1) * (NH + GAP) - GAP + 30 }));
    H = 60 + Math.max(pubs.length, subs.length, 1) * (NH + GAP) - GAP + (others.length ? NH + 50 : 20);
  }
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'replication topology' });
  root.append(
    svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse' }, svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }))),
  );
  v.links.forEach((l, i) => {
    const a = pos.get(l.publisher);
    const b = pos.get(l.subscriber);
    if (!a || !b) return;
    const x1 = narrow ? a.x + NW / 2 : a.x + NW;
    const y1 = narrow ? a.y + NH : a.y + NH / 2;
    const x2 = narrow ? b.x + NW / 2 : b.x;
    const y2 = narrow ? b.y : b.y + NH / 2;
    const g = svg('g', { class: `link ${l.state}`, 'data-subscription': l.subscription });
    const mx = (x1 + x2) / 2;
    const d = narrow ? `M${x1},${y1} C${x1},${(y1 + y2) / 2} ${x2},${(y1 + y2) / 2} ${x2},${y2}` : `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
    g.append(svg('path', { d, 'marker-end': 'url(#arrow)' }));
    const filters = l.publications.flatMap((p) => (p.allTables ? [`${p.name}: all tables`] : p.tables.map((t) => `${t.table}${t.where ? ` where ${t.where}` : ''}`)));
    const lag = [l.lagBytes !== undefined ? fmt(l.lagBytes, 'bytes') : undefined, l.lagSeconds !== undefined ? fmt(l.lagSeconds, 'seconds') : undefined].filter(Boolean).join(' · ');
    const lines = [
      `${l.subscription} ← ${l.publications.map((p) => p.name).join(', ')}`,
      ...filters,
      `${l.state}${lag ? ` · lag ${lag}` : ''}${l.heartbeatSeconds !== undefined ? ` · e2e ${fmt(l.heartbeatSeconds, 'seconds')}` : ''}${l.applyErrors ? ` · ${l.applyErrors} apply errors` : ''}`,
    ];
    // Wide: the label sits above the link's last, level stretch, ending at the subscriber.
    const lx = narrow ? (x1 + x2) / 2 : x2 - 14;
    const ly = narrow ? y1 + 26 + (i % 2) * 70 : y2 - 10 - (lines.length - 1) * 14.4;
    const t = svg('text', { x: lx, y: ly, 'text-anchor': narrow ? 'middle' : 'end', class: 'linklabel' });
    lines.forEach((line, j) => t.append(svg('tspan', { x: lx, dy: j ? '1.2em' : '0', class: j === 0 ? 'sub' : j === lines.length - 1 ? 'state' : 'filter' }, line)));
    g.append(t);
    root.append(g);
  });
  for (const n of v.nodes) {
    const p = pos.get(n.name);
    const cls = n.up === false ? 'node down' : n.up === null ? 'node unknown' : 'node';
    root.append(
      svg(
        'g',
        { class: cls, 'data-node': n.name, transform: `translate(${p.x},${p.y})` },
        svg('rect', { width: NW, height: NH, rx: 6, style: `stroke:${colourOf(n.name)}` }),
        svg('circle', { cx: 14, cy: NH / 2, r: 5, class: 'dot' }),
        svg('text', { x: 26, y: 19, class: 'name' }, n.name),
        svg('text', { x: 26, y: 36, class: 'role' }, `${n.role}${n.up === false ? ' · DOWN' : ''}`),
      ),
    );
  }
  if (!v.links.length) root.append(svg('text', { x: W / 2, y: H - 6, 'text-anchor': 'middle', class: 'role' }, 'No subscriptions in this lab.'));
  host.replaceChildren(root);
}

function drawOverview(v) {
  const host = $('overview');
  host.replaceChildren(
    ...v.nodes
      .filter((n) => !state.nodes || state.nodes.has(n.name))
      .map((n) => {
        const stat = (label, value, warn) => el('div', { class: `stat${warn ? ' warn' : ''}` }, el('span', { class: 'k' }, label), el('span', { class: 'v' }, value));
        const mem = n.memoryBytes !== undefined ? `${fmt(n.memoryBytes, 'bytes')}${n.memoryLimitBytes ? ` / ${fmt(n.memoryLimitBytes, 'bytes')}` : ''}` : '–';
        return el(
          'div',
          { class: `card${n.up === false ? ' down' : ''}`, 'data-node': n.name, style: `border-top-color:${colourOf(n.name)}` },
          el('div', { class: 'card-head' }, el('b', {}, n.name), el('span', { class: 'role' }, n.role), el('span', { class: `badge ${n.up ? 'up' : n.up === false ? 'down' : ''}` }, n.up ? 'up' : n.up === false ? 'DOWN' : '?')),
          stat('tx/s', fmt(n.tps, '')),
          stat('connections', n.connections !== undefined ? `${n.connections} / ${n.maxConnections}` : '–', n.maxConnections && n.connections / n.maxConnections > 0.8),
          stat('cache hit', fmt(n.cacheHit, 'ratio'), n.cacheHit !== undefined && n.cacheHit < 0.95),
          stat('lag', n.lagSeconds !== undefined ? `${fmt(n.lagSeconds, 'seconds')}${n.lagBytes !== undefined ? ` · ${fmt(n.lagBytes, 'bytes')}` : ''}` : '–', n.lagSeconds > 5),
          stat('CPU', fmt(n.cpuPercent, 'percent')),
          stat('memory', mem, n.memoryLimitBytes && n.memoryBytes / n.memoryLimitBytes > 0.9),
        );
      }),
  );
}

async function refreshStatements(win) {
  const q = { ...win };
  if (state.nodes) q.nodes = [...state.nodes].join(',');
  const r = await api('statements', q);
  const host = $('statements');
  if (!r.statements.length) {
    host.replaceChildren(el('div', { class: 'empty' }, 'No statements ran in this range (pg_stat_statements deltas).'));
    return;
  }
  const th = (t) => el('th', {}, t);
  host.replaceChildren(
    el(
      'div',
      { class: 'tablewrap' },
      el(
        'table',
        {},
        el('thead', {}, el('tr', {}, th('node'), th('calls'), th('total'), th('mean'), th('rows'), th('query'))),
        el(
          'tbody',
          {},
          ...r.statements.map((s) =>
            el(
              'tr',
              {},
              el('td', { style: `color:${colourOf(s.node)}` }, s.node),
              el('td', { class: 'num' }, String(s.calls)),
              el('td', { class: 'num' }, fmt(s.total_seconds, 'seconds')),
              el('td', { class: 'num' }, fmt(s.mean_seconds, 'seconds')),
              el('td', { class: 'num' }, String(s.rows)),
              el('td', { class: 'query' }, el('code', {}, s.query)),
            ),
          ),
        ),
      ),
    ),
  );
}

// ---- controls ----
function zoom(from, to) {
  state.from = from;
  state.to = to;
  state.live = false;
  $('live').checked = false;
  $('zoomed').hidden = false;
  saveState();
  refreshAll();
}

function controls(meta) {
  $('lab').textContent = `· ${meta.lab}`;
  document.title = `prodhome · ${meta.lab}`;
  if (SNAPSHOT) {
    document.title += ' · snapshot';
    $('lab').textContent += ` · snapshot, ${new Date(SNAPSHOT.from).toLocaleString()} – ${new Date(SNAPSHOT.to).toLocaleTimeString()}`;
    // A file shows one range: no range buttons, no live mode, nothing to reset.
    for (const e of [$('ranges'), $('live').closest('label'), $('zoomed')]) e.style.display = 'none';
  }
  for (const r of Object.keys(RANGES)) {
    $('ranges').append(
      el(
        'button',
        {
          type: 'button',
          'data-range': r,
          class: r === state.range && !state.from ? 'on' : '',
          onclick: () => {
            state.range = r;
            state.from = state.to = undefined;
            $('zoomed').hidden = true;
            for (const b of $('ranges').children) b.className = b.dataset.range === r ? 'on' : '';
            saveState();
            refreshAll();
          },
        },
        r,
      ),
    );
  }
  $('live').checked = state.live;
  $('live').addEventListener('change', () => {
    state.live = $('live').checked;
    if (state.live) {
      state.from = state.to = undefined;
      $('zoomed').hidden = true;
    }
    saveState();
    refreshAll();
  });
  $('zoomed').hidden = !state.from;
  $('unzoom').addEventListener('click', () => {
    state.from = state.to = undefined;
    $('zoomed').hidden = true;
    saveState();
    refreshAll();
  });
  for (const n of meta.nodes) {
    const box = el('input', { type: 'checkbox', value: n.name });
    box.checked = !state.nodes || state.nodes.has(n.name);
    box.addEventListener('change', () => {
      const on = [...$('nodefilter').querySelectorAll('input')].filter((i) => i.checked).map((i) => i.value);
      state.nodes = on.length === meta.nodes.length ? undefined : new Set(on);
      saveState();
      refreshAll();
    });
    $('nodefilter').append(el('label', { style: `--c:${colourOf(n.name)}` }, box, n.name));
  }
}

async function start() {
  let meta;
  try {
    meta = await api('panels');
  } catch (e) {
    banner(`The dashboard could not start: ${e.message}`);
    return;
  }
  NODES = meta.nodes;
  controls(meta);
  if (!meta.store) banner('This lab has no metrics store (metrics.store), so there is nothing to chart over time; the topology and nodes are live.');
  for (const panel of meta.panels) {
    const { box, chart, empty } = panelBox(panel);
    (panel.group === 'load' ? $('load-panels') : $('panels')).append(box);
    charts.set(panel.id, { panel, box, chart, empty });
  }
  saveState();
  await refreshAll();
  if (!SNAPSHOT) setInterval(() => tick(), LIVE_MS);
  let resize;
  window.addEventListener('resize', () => {
    clearTimeout(resize);
    resize = setTimeout(() => {
      for (const c of charts.values()) c.u?.setSize({ width: chartWidth(c), height: c.u.height });
      refreshLive();
    }, 100);
  });
}

start();
