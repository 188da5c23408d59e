import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG_YAML } from '../src/config/index.js';
import { readSecrets, readState } from '../src/lab/index.js';
import { runningPid } from '../src/runtime/index.js';
import { IN_CI, ROOT, cli, portRange, tempLab, waitFor, type TempLab } from './helpers.js';

/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core, against a real
 * lab (the default topology) after a short load run. Screenshots at laptop and phone size go to
 * test-artifacts/ for a person to look at.
 */

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
if (!HAVE_CHROMIUM && !IN_CI) {
  console.warn(`\n*** SKIPPING the dashboard browser tests: ${CHROMIUM} is missing (apt-get install chromium). Under CI=true they fail instead. ***\n`);
}
const suite = HAVE_CHROMIUM || IN_CI ? describe : describe.skip;

const YAML = DEFAULT_CONFIG_YAML.replace('lab: prodhome', 'lab: dashweb').replace(/ports:\n  from: \d+\n  to: \d+\n/, portRange(58850));
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const ALL = ['metrics', 'publisher', 'subscriber1', 'subscriber2'];
/** Which nodes each default panel draws: replication is seen from one end or the other. */
const EXPECTED: Record<string, string[]> = {
  lag_bytes: ['publisher'],
  lag_seconds: ['publisher'],
  slot_retained: ['publisher'],
  heartbeat: ['subscriber1', 'subscriber2'],
  subscription_errors: ['subscriber1', 'subscriber2'],
  load_tps: ['publisher'],
  load_latency: ['publisher'],
};
/** Panels that rightly stay empty in this run: a read-only load meets no errors. */
const MAY_BE_EMPTY = new Set(['load_errors']);

let lab: TempLab;
let url: string;
let browser: Browser;
let passwords: string[] = [];

beforeAll(async () => {
  if (!HAVE_CHROMIUM) throw new Error(`${CHROMIUM} is missing: .ci/run installs Debian's chromium`);
  lab = tempLab(YAML);
  const up = cli(['up'], { cwd: lab.dir });
  expect(up.code, up.stderr).toBe(0);
  const load = cli(['load', 'mixed', '-T', '4', '-c', '2', '-R', '100'], { cwd: lab.dir });
  expect(load.code, load.stderr).toBe(0);
  url = cli(['dashboard', '--print-url'], { cwd: lab.dir }).stdout.trim();
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=/);
  const secrets = readSecrets(lab.config().stateDir);
  passwords = [...Object.values(secrets.nodes).map((n) => n.password), ...Object.values(secrets.replication ?? {}), secrets.dashboard!.password];
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  fs.mkdirSync(ARTIFACTS, { recursive: true });
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await lab?.cleanup();
});

interface Watched {
  page: Page;
  errors: string[];
  bodies: Promise<string>[];
}

async function open(width: number, height: number, address = `${url}&range=5m`): Promise<Watched> {
  const page = await browser.newPage({ viewport: { width, height } });
  const errors: string[] = [];
  const bodies: Promise<string>[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('response', (r) => bodies.push(r.text().catch(() => '')));
  await page.goto(address);
  await page.waitForFunction(() => Number(document.body.dataset.updates || 0) >= 1, null, { timeout: 20_000 });
  return { page, errors, bodies };
}

/** Panels whose legend hides some of its text: cut off at the bottom, or an entry wider than the panel. */
const clippedLegends = (page: Page) =>
  page.$$eval('.panel', (els) =>
    els.flatMap((e) => {
      const legend = e.querySelector('.u-legend') as HTMLElement | null;
      if (!legend) return [];
      const box = e.getBoundingClientRect();
      const cut = legend.scrollHeight > legend.clientHeight + 1 || legend.getBoundingClientRect().bottom > box.bottom + 1;
      const wide = [...legend.querySelectorAll('.u-series')].some((s) => s.getBoundingClientRect().right > box.right + 1);
      return cut || wide ? [(e as HTMLElement).dataset.panel!] : [];
    }),
  );

const panelsOf = (page: Page) =>
  page.$$eval('.panel', (els) => els.map((e) => ({ id: (e as HTMLElement).dataset.panel!, points: Number((e as HTMLElement).dataset.points), nodes: (e as HTMLElement).dataset.nodes!, canvas: !!e.querySelector('canvas') })));

suite('dashboard in Chromium', () => {
  it('draws every default panel for the right nodes, the topology with both filtered subscriptions, live updates; no console errors, no password', async () => {
    const w = await open(1280, 800);
    const { page } = w;
    // Rates need two samples of a series, and some families are sampled every 5 s: give every
    // panel a few live updates to fill in, then check each exactly.
    const complete = (list: Awaited<ReturnType<typeof panelsOf>>) =>
      list.every((p) => MAY_BE_EMPTY.has(p.id) || p.nodes.split(',').sort().join() === (EXPECTED[p.id] ?? ALL).join());
    const panels = await waitFor(async () => {
      const list = await panelsOf(page);
      return complete(list) ? list : undefined;
    }, 20_000, 'every panel drawn for its nodes').catch(async () => panelsOf(page));
    expect(panels.length).toBeGreaterThanOrEqual(20);
    for (const p of panels) {
      if (MAY_BE_EMPTY.has(p.id)) continue;
      expect(p.points, `${p.id} drew no points`).toBeGreaterThan(0);
      expect(p.canvas, `${p.id} has no chart`).toBe(true);
      expect(p.nodes.split(',').sort(), p.id).toEqual(EXPECTED[p.id] ?? ALL);
    }
    // Topology: both subscriptions, publisher → subscriber, labelled with their row filters.
    const links = await page.$$eval('#topology g.link', (els) => els.map((e) => ({ sub: e.getAttribute('data-subscription'), cls: e.getAttribute('class'), text: e.textContent })));
    expect(links.map((l) => l.sub)).toEqual(['leadership_sub', 'technical_sub']);
    expect(links[0]!.text).toContain("books where topic = 'leadership'");
    expect(links[1]!.text).toContain("books where topic = 'technical'");
    expect(links.every((l) => l.cls === 'link streaming')).toBe(true);
    expect(await page.$$eval('#topology g.node', (els) => els.map((e) => e.getAttribute('data-node')))).toEqual(['publisher', 'subscriber1', 'subscriber2', 'metrics']);
    // The load run is an annotation band on the charts, and the overview has every node up.
    expect(await page.$$eval('#overview .card .badge.up', (els) => els.length)).toBe(4);
    // Live: new data arrives without a reload, a couple of seconds behind at most.
    const last = async () => Number(await page.$eval('#panel-transactions', (e) => (e as HTMLElement).dataset.last));
    const first = await last();
    const newer = await waitFor(async () => ((await last()) > first ? last() : 0), 10_000, 'a live update');
    expect(newer).toBeGreaterThan(first);
    expect(Date.now() - newer).toBeLessThan(5000);
    // The info button shows the two lines and the SQL.
    await page.click('#panel-lag_bytes button.info');
    expect(await page.textContent('#info-sql')).toContain('"metrics"."pg_replication_raw"');
    expect((await page.textContent('#info-text'))!.length).toBeGreaterThan(40);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-info.png') });
    await page.keyboard.press('Escape');
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-1280x800.png') });
    expect(await clippedLegends(page)).toEqual([]);
    await (await page.$('#panel-lag_bytes'))!.screenshot({ path: path.join(ARTIFACTS, 'dashboard-lag-1280.png') });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-1280-full.png'), fullPage: true });
    await page.close();
    expect(w.errors).toEqual([]);
    const bodies = await Promise.all(w.bodies);
    expect(bodies.length).toBeGreaterThan(5); // a live tick is one request for every panel
    for (const b of bodies) for (const pw of passwords) expect(b.includes(pw)).toBe(false);
  }, 60_000);

  it('zooming by dragging across a chart puts the range in the URL, and the URL restores it', async () => {
    const { page, errors } = await open(1280, 800);
    const over = (await page.$('#panel-transactions .u-over'))!;
    await over.scrollIntoViewIfNeeded();
    const box = (await over.boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    await waitFor(() => new URL(page.url()).searchParams.get('from'), 5000, 'the zoomed range in the URL');
    const q = new URL(page.url()).searchParams;
    const from = Number(q.get('from'));
    const to = Number(q.get('to'));
    expect(q.get('live')).toBe('0');
    expect(to - from).toBeGreaterThan(60_000);
    expect(to - from).toBeLessThan(120_000); // about 30 % of 5 minutes
    // A bookmark of it opens the same range.
    const again = await open(1280, 800, page.url());
    const shown = await again.page.evaluate(() => new URL(location.href).searchParams.get('from'));
    expect(Number(shown)).toBe(from);
    expect(await again.page.isChecked('#live')).toBe(false);
    await page.close();
    await again.page.close();
    expect([...errors, ...again.errors]).toEqual([]);
  }, 60_000);

  it('is usable at phone width: one column, nothing wider than the screen', async () => {
    const { page, errors } = await open(390, 844);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    const widths = await page.$$eval('.panel', (els) => els.map((e) => e.getBoundingClientRect().width));
    expect(Math.min(...widths)).toBeGreaterThan(300);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-390x844.png') });
    expect(await clippedLegends(page)).toEqual([]);
    await (await page.$('#panel-lag_seconds'))!.screenshot({ path: path.join(ARTIFACTS, 'dashboard-lag-390.png') });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-390-full.png'), fullPage: true });
    await page.close();
    expect(errors).toEqual([]);
  }, 60_000);

  it('without the token: 401 and a page saying how to get the URL', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const res = await page.goto(url.slice(0, url.indexOf('?')));
    expect(res!.status()).toBe(401);
    expect(await page.textContent('body')).toContain('prodhome dashboard --print-url');
    await context.close();
  });

  it('dashboard snapshot writes one HTML file that draws every panel offline, with no request and no password in it', async () => {
    const file = path.join(lab.dir, 'snapshot.html');
    const r = cli(['dashboard', 'snapshot', '--range', '5m', '-o', file], { cwd: lab.dir });
    expect(r.code, r.stderr).toBe(0);
    const html = fs.readFileSync(file, 'utf8');
    for (const pw of passwords) expect(html.includes(pw)).toBe(false);
    expect(html).not.toContain('token=');
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (req) => !req.url().startsWith('file:') && !req.url().startsWith('data:') && requests.push(req.url()));
    await page.goto(`file://${file}`);
    await page.waitForFunction(() => Number(document.body.dataset.updates || 0) >= 1, null, { timeout: 20_000 });
    const panels = await panelsOf(page);
    expect(panels.length).toBeGreaterThanOrEqual(20);
    for (const p of panels) if (!MAY_BE_EMPTY.has(p.id)) expect(p.points, `${p.id} drew no points in the snapshot`).toBeGreaterThan(0);
    expect(await page.$$eval('#topology g.link', (els) => els.length)).toBe(2);
    expect(await page.textContent('#lab')).toContain('snapshot');
    await page.screenshot({ path: path.join(ARTIFACTS, 'snapshot-1280x800.png') });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(500); // the page lays itself out again after a resize
    await page.screenshot({ path: path.join(ARTIFACTS, 'snapshot-390x844.png') });
    await page.close();
    expect(errors).toEqual([]);
    expect(requests).toEqual([]); // it opens offline
  }, 60_000);

  it('shows a banner, not a blank page, when the metrics store goes away, and keeps the last data', async () => {
    const { page } = await open(1280, 800);
    const node = readState(lab.config().stateDir)!.nodes.metrics!;
    if (node.runtime !== 'local') throw new Error('the metrics node is local in this lab');
    const pid = runningPid(node.dataDir)!;
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGINT'); // fast shutdown of the metrics node
    await page.waitForSelector('#banner:not([hidden])', { timeout: 20_000 });
    expect(await page.textContent('#banner')).toContain('metrics store is unreachable');
    const panels = await panelsOf(page);
    expect(panels.find((p) => p.id === 'transactions')!.points).toBeGreaterThan(0);
    expect(panels.find((p) => p.id === 'transactions')!.canvas).toBe(true);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-store-down.png') });
    await page.close();
  }, 60_000);
});
