import { quoteIdent, type Sql } from '../pg/index.js';
import { KEEP_DEFAULTS, TIER_SECONDS, columnsOf, isTextId, lit, tierName, tierTable, type Tier } from './store-layout.js';

/**
 * Reading the store back, downsampled in SQL: the one query builder behind the dashboard's API,
 * reports and the Grafana export. It reads the tier that fits the bucket (raw under a minute,
 * 1-minute rollups up to ten minutes, 10-minute ones above), plus the raw rows newer than that
 * tier's watermark, so a chart reaches now. Counters' rates are derived in the query (`lag()`
 * over each series), as the store does not keep them.
 */

export interface DownsampleQuery {
  measurement: string;
  /** Tags that make a series; the first is the node. */
  by: readonly string[];
  /** Fields to read: stored ones, or `F_rate` for a stored counter F. */
  fields: readonly string[];
  /** How rows of one series key at one time are combined (several databases of one node). */
  combine: 'sum' | 'avg' | 'max';
  /** The raw table's columns (name → type), when known; unknown: every `F_rate` is derived. */
  stored?: ReadonlyMap<string, string>;
  schema?: string;
  /**
   * Only the `top` series with the largest measure over the range (a gauge's max, a counter's
   * increase, summed over the fields): "busiest tables" panels read ten tables, not all of them.
   */
  top?: number;
}

/** How a requested field is read: stored as is, or derived as the rate of its counter. */
export function fieldSource(field: string, stored?: ReadonlyMap<string, string>): { column: string; rate: boolean } | undefined {
  if (stored?.has(field) && !isTextId(stored.get(field)!)) return { column: field, rate: false };
  if (field.endsWith('_rate')) {
    const counter = field.slice(0, -'_rate'.length);
    if (!stored || (stored.has(counter) && !isTextId(stored.get(counter)!))) return { column: counter, rate: true };
  }
  return stored ? undefined : { column: field, rate: false };
}

/** Which tier a range is read from: by its bucket, and never one already dropped for its start. */
export function chooseTier(stepSeconds: number, fromMs: number, nowMs: number, keep = KEEP_DEFAULTS): Tier {
  let tier: Tier = stepSeconds >= 600 ? '10m' : stepSeconds >= 60 ? '1m' : 'raw';
  if (tier === 'raw' && fromMs < nowMs - keep.rawMs) tier = '1m';
  if (tier === '1m' && fromMs < nowMs - keep.oneMinuteMs) tier = '10m';
  return tier;
}

interface Dialect {
  from: string;
  to: string;
  nodes: (column: string) => string;
  /** the bucket of `time` */
  bucket: string;
  /** how the bucket column is named in the answer */
  timeAlias: string;
  /** The condition under which a tier is read (SQL), or a constant decided now. */
  uses: (tier: Tier) => string | boolean;
  /** The tier the top series are ranked from (the cheapest that covers the range); none: no ranking. */
  rankTier?: Exclude<Tier, 'raw'>;
}

/**
 * The downsampling query for the dashboard: $1 from, $2 to (timestamptz), $3 the bucket
 * (interval), $4 the node names (text[], or null for all). Columns: t (epoch ms), the `by` tags,
 * one float8 per field (the bucket's average). `fields` that cannot be read are left out.
 */
export function downsampleSql(q: DownsampleQuery, tier: Tier): string {
  return build(q, {
    from: '$1::timestamptz',
    to: '$2::timestamptz',
    nodes: (c) => `($4::text[] is null or ${c} = any($4::text[]))`,
    bucket: `(extract(epoch from date_bin($3::interval, time, timestamptz '1970-01-01 00:00:00+00')) * 1000)::float8`,
    timeAlias: 't',
    uses: (t) => t === tier,
    rankTier: tier === '10m' ? '10m' : '1m',
  });
}

/**
 * The same query with Grafana's Postgres macros: the range, `$__interval` buckets and the `$node`
 * variable; the tier is picked in SQL from `$__interval_ms` (a branch not taken costs nothing).
 */
export function grafanaDownsampleSql(q: DownsampleQuery): string {
  return build(q, {
    from: '$__timeFrom()::timestamptz',
    to: '$__timeTo()::timestamptz',
    nodes: (c) => `${c} in ($node)`,
    bucket: '$__timeGroup(time, $__interval)',
    timeAlias: '"time"',
    uses: (t) => (t === '10m' ? '$__interval_ms >= 600000' : t === '1m' ? '$__interval_ms >= 60000 and $__interval_ms < 600000' : '$__interval_ms < 60000'),
  });
}

function build(q: DownsampleQuery, d: Dialect): string {
  const schema = q.schema ?? 'metrics';
  const s = quoteIdent(schema);
  const reads = q.fields.map((f) => ({ field: f, src: fieldSource(f, q.stored) })).filter((r): r is { field: string; src: { column: string; rate: boolean } } => r.src !== undefined);
  const anyRate = reads.some((r) => r.src.rate);
  const by = q.by.map(quoteIdent);
  const id = quoteIdent;
  const watermark = (tier: Tier) => `(select done_until from ${s}._rollup where measurement = ${lit(q.measurement)} and tier = ${lit(tier)})`;
  const lookback = (tier: Tier) => (anyRate ? ` - interval '${Math.max(60, TIER_SECONDS[tier] * 2)} seconds'` : '');

  // Each source row: its bucket time, the time its counter value belongs to (a rollup's end), the
  // series and the values under their raw names (a rollup's average, or its max for a counter).
  const select = (tier: Tier) =>
    reads
      .map((r) => {
        if (tier === 'raw') return r.src.rate ? `${id(r.src.column)} as ${id(`${r.field}__c`)}` : `${id(r.src.column)} as ${id(r.field)}`;
        return r.src.rate ? `${id(`${r.src.column}_max`)} as ${id(`${r.field}__c`)}` : `${id(`${r.src.column}_avg`)} as ${id(r.field)}`;
      })
      .map((c) => `, ${c}`)
      .join('');
  // With top: only the chosen series' rows are read, windowed and bucketed.
  const only = q.top && d.rankTier && reads.length ? ' and sid in (select id from s)' : '';
  const branches: string[] = [];
  const rawStarts: [string, string][] = [];
  for (const tier of ['10m', '1m'] as const) {
    const uses = d.uses(tier);
    if (uses === false) continue;
    const cond = uses === true ? '' : ` and ${uses}`;
    branches.push(
      `  select time, time + interval '${TIER_SECONDS[tier]} seconds' as rt, sid${select(tier)} from ${tierTable(schema, q.measurement, tier)}\n` +
        `  where time >= ${d.from}${lookback(tier)} and time < ${watermark(tier)}${cond}${only}`,
    );
    rawStarts.push([uses === true ? 'true' : uses, `greatest(coalesce(${watermark(tier)}, '-infinity'), ${d.from}${lookback(tier)})`]);
  }
  const rawUses = d.uses('raw');
  const rawStart =
    rawStarts.length === 0 || rawUses === true
      ? `${d.from}${lookback('raw')}`
      : rawStarts.length === 1 && rawStarts[0]![0] === 'true'
        ? rawStarts[0]![1]
        : `case ${rawStarts.map(([c, e]) => `when ${c} then ${e}`).join(' ')} else ${d.from}${lookback('raw')} end`;
  branches.push(`  select time, time as rt, sid${select('raw')} from ${tierTable(schema, q.measurement, 'raw')}\n  where time >= ${rawStart} and time < ${d.to}${only}`);

  const values = reads
    .map((r) => {
      if (!r.src.rate) return id(r.field);
      const c = id(`${r.field}__c`);
      // A counter that went down was reset: no rate for that step (as the collector does).
      return `case when ${c} >= lag(${c}) over w then (${c} - lag(${c}) over w)::float8 / nullif(extract(epoch from rt - lag(rt) over w)::float8, 0) end as ${id(r.field)}`;
    })
    .map((v) => `, ${v}`)
    .join('');
  const tagCols = q.by.map((b) => `tags->>${lit(b)} as ${id(b)}`).join(', ');
  const byCols = q.by.map((b) => `s.${id(b)}`).join(', ');
  // Each series is averaged per bucket first (one hash aggregate over the rows read), then the
  // series that share the panel's `by` values are combined (several databases of one node). The
  // rows of nodes not asked for are dropped at the join with s.
  return [
    `with ${q.top && d.rankTier && reads.length ? 's_all' : 's'} as (`,
    `  select id, ${tagCols} from ${s}._series`,
    `  where measurement = ${lit(q.measurement)} and ${d.nodes(`tags->>'node'`)}`,
    ...topSeries(q, d, reads, watermark),
    `), src as (`,
    branches.join('\n  union all\n'),
    `), v as (`,
    `  select time, sid${values} from src${anyRate ? ' window w as (partition by sid order by rt)' : ''}`,
    `), b as (`,
    `  select ${d.bucket} as t, sid${reads.map((r) => `, avg(${id(r.field)}) as ${id(r.field)}`).join('')}`,
    `  from v where time >= ${d.from} group by 1, 2`,
    `)`,
    `select b.t as ${d.timeAlias}, ${byCols}${reads.map((r) => `, ${q.combine}(b.${id(r.field)})::float8 as ${id(r.field)}`).join('')}`,
    `from b join s on s.id = b.sid group by b.t, ${byCols} order by 1`,
  ].join('\n');
}

/**
 * With `q.top`: keeps in `s` only the top series by the measure over the range, ranked before
 * anything is downsampled, from the coarsest rows that cover the range (10-minute rollups, then
 * 1-minute ones past their watermark, then raw rows; only the measure's columns) — a few thousand rows, where the panel would read every
 * series' rows. Ties go to the older series.
 */
function topSeries(q: DownsampleQuery, d: Dialect, reads: { field: string; src: { column: string; rate: boolean } }[], watermark: (tier: Tier) => string): string[] {
  if (!q.top || !d.rankTier || !reads.length) return [];
  const schema = q.schema ?? 'metrics';
  const id = quoteIdent;
  const cols = (suffix: string) => reads.map((r, i) => `${id(`${r.src.column}${suffix}`)} as m${i}`).join(', ');
  // A counter's increase (max − min, resets ignored: a ranking, not a figure), a gauge's max.
  const measure = reads.map((r, i) => `coalesce(${r.src.rate ? `max(m${i}) - min(m${i})` : `max(m${i})`}, 0)`).join(' + ');
  const wm = (tier: Tier) => `coalesce(${watermark(tier)}, '-infinity')`;
  // The coarsest rows first: 10-minute rollups, then 1-minute ones past them, then raw rows.
  const parts = [
    `    select sid, ${cols('_max')} from ${tierTable(schema, q.measurement, '10m')} where time >= ${d.from} and time < least(${wm('10m')}, ${d.to})`,
    `    select sid, ${cols('_max')} from ${tierTable(schema, q.measurement, '1m')} where time >= greatest(${wm('10m')}, ${d.from}) and time < least(${wm('1m')}, ${d.to})`,
    `    select sid, ${cols('')} from ${tierTable(schema, q.measurement, 'raw')} where time >= greatest(${wm('10m')}, ${wm('1m')}, ${d.from}) and time < ${d.to}`,
  ];
  return [
    `), top as (`,
    `  select sid from (`,
    parts.join('\n    union all\n'),
    `  ) r where sid in (select id from s_all) group by sid order by ${measure} desc, sid limit ${Math.trunc(q.top)}`,
    `), s as (select * from s_all where id in (select sid from top)`,
  ];
}

/** The fields of `q` that the store can read (stored, or a derivable rate). */
export function readableFields(fields: readonly string[], stored: ReadonlyMap<string, string>): string[] {
  return fields.filter((f) => fieldSource(f, stored) !== undefined);
}

/** The field columns a measurement's raw table has (name → type); empty when it has none yet. */
export function storedColumns(sql: Sql, measurement: string, schema = 'metrics'): Promise<Map<string, string>> {
  return columnsOf(sql, schema, tierName(measurement, 'raw'));
}
