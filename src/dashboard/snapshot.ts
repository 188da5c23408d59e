/**
 * `prodhome dashboard snapshot`: the dashboard over a range as ONE self-contained HTML file —
 * the page, its script, styles and uPlot inline, and every answer the page would ask the agent
 * for (panels, each panel's series, annotations, the latest sample, top statements) inline as
 * JSON — so it opens offline, to attach to a bug report or a write-up. Made from the running
 * agent's own API, so it shows exactly what the live page shows.
 */
export async function dashboardSnapshot(url: string, rangeMs: number, now = Date.now()): Promise<string> {
  const address = new URL(url);
  const token = address.searchParams.get('token') ?? '';
  const base = `${address.origin}/`;
  const get = async (path: string): Promise<string> => {
    const r = await fetch(new URL(path, base), { headers: { 'x-prodhome-token': token }, signal: AbortSignal.timeout(15_000) });
    if (!r.ok) throw new Error(`the agent answered ${r.status} to ${path.split('?')[0]}`);
    return r.text();
  };
  const from = now - rangeMs;
  const to = now;
  const range = `from=${from}&to=${to}`;
  const panels = JSON.parse(await get('api/panels')) as { panels: { id: string }[] };
  const answers: Record<string, unknown> = { panels };
  const jobs: [string, string][] = [
    ['annotations', `api/annotations?${range}`],
    ['live', 'api/live'],
    ['statements', `api/statements?${range}`],
    ...panels.panels.map((p): [string, string] => [`series/${p.id}`, `api/series?panel=${encodeURIComponent(p.id)}&${range}`]),
  ];
  // A few at a time: the agent's store pool is small on purpose.
  for (let i = 0; i < jobs.length; i += 4) {
    await Promise.all(jobs.slice(i, i + 4).map(async ([key, path]) => (answers[key] = JSON.parse(await get(path)))));
  }
  const [page, appJs, appCss, uplotJs, uplotCss] = (await Promise.all(['', 'static/app.js', 'static/app.css', 'static/uPlot.iife.min.js', 'static/uPlot.min.css'].map(get))) as [string, string, string, string, string];
  // Inline text must not close its own element early.
  const script = (text: string) => `<script>${text.replace(/<\/(script)/gi, '<\\/$1')}</script>`;
  const style = (text: string) => `<style>${text.replace(/<\/(style)/gi, '<\\/$1')}</style>`;
  const data = JSON.stringify({ from, to, answers }).replace(/</g, '\\u003c');
  return page
    .replace('<link rel="stylesheet" href="static/uPlot.min.css">', () => style(uplotCss))
    .replace('<link rel="stylesheet" href="static/app.css">', () => style(appCss))
    .replace('<script src="static/uPlot.iife.min.js"></script>', () => script(uplotJs))
    .replace('<script src="static/app.js"></script>', () => `${script(`window.PRODHOME_SNAPSHOT = ${data};`)}\n${script(appJs)}`);
}
