import type { Point } from './point.js';

/**
 * The latest sample, as a page of current values shows it (/metrics, the dashboard's overview):
 * the last sample, plus the last points of the families sampled less often than every sample
 * (`every:` in the metric catalog, such as pg_settings) on nodes that are still up, so those
 * series do not blink out between their samples. A node is up while the sample carries its
 * `pg_up` point with up=1 (the collector's convention). Updating costs one pass over the
 * sample; the merge happens only when the points are read.
 */
export class LatestPoints {
  private sample: readonly Point[] = [];
  private fresh = new Set<string>();
  /** measurement|node → the last points of a slow family on that node. */
  private readonly slow = new Map<string, Point[]>();

  constructor(private readonly sampledLessOften: (measurement: string) => boolean) {}

  update(sample: readonly Point[]): void {
    this.sample = sample;
    const groups = new Map<string, Point[]>();
    for (const p of sample) {
      if (!this.sampledLessOften(p.measurement)) continue;
      const key = `${p.measurement}|${p.tags.node ?? ''}`;
      const group = groups.get(key);
      if (group) group.push(p);
      else groups.set(key, [p]);
    }
    for (const [key, points] of groups) this.slow.set(key, points);
    this.fresh = new Set(groups.keys());
    // up is 1 as the collector makes it, 1n once typed for the stores
    const up = new Set(sample.filter((p) => p.measurement === 'pg_up' && Number(p.fields.up) === 1).map((p) => p.tags.node ?? ''));
    for (const [key, points] of this.slow) if (!up.has(points[0]?.tags.node ?? '')) this.slow.delete(key);
  }

  points(): Point[] {
    const out = [...this.sample];
    for (const [key, points] of this.slow) if (!this.fresh.has(key)) out.push(...points);
    return out;
  }
}
