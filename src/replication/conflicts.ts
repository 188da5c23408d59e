import { quoteIdent, type Sql } from '../pg/index.js';

/**
 * An apply conflict: the subscriber's apply worker fails on a change (a unique key already
 * there, a check that fails) and retries for ever, so the subscription stalls. Postgres says
 * which change in the subscriber's log — the relation, the key, and the failed transaction's
 * finish LSN, which is what ALTER SUBSCRIPTION … SKIP needs — and only there
 * (pg_stat_subscription_stats just counts errors).
 */

export interface ApplyConflict {
  subscription: string;
  /** When the worker last failed (the log's timestamp). */
  at: string;
  error: string;
  detail?: string;
  relation?: string;
  messageType?: string;
  xid?: string;
  /** The failed transaction's finish LSN (absent for a streamed transaction in progress). */
  finishLsn?: string;
  /** From "Key (id)=(6) already exists." */
  key?: { columns: string[]; values: string[] };
  /** The statements each way out runs, when it is possible. */
  skipSql?: string;
  deleteLocalSql?: string;
}

const LINE = /^(\S+ \S+ \S+) \[(\d+)\] ([A-Z]+):\s+(.*)$/;
const CONTEXT = /replication origin "([^"]+)" during message type "(\w+)"(?: for replication target relation "([^"]+)")?(?: column "[^"]+")? in transaction (\d+)(?:, finished at ([0-9A-F]+\/[0-9A-F]+))?/;
const KEY = /^Key \((.+)\)=\((.*)\) already exists\.$/;

/** The newest failure of the apply worker of replication origin `origin` in a log's text. */
export function lastApplyError(logText: string, origin: string, subscription: string): ApplyConflict | undefined {
  const open = new Map<string, ApplyConflict & { origin?: string }>();
  let found: ApplyConflict | undefined;
  for (const line of logText.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, at, pid, level, text] = m as unknown as [string, string, string, string, string];
    if (level === 'ERROR') {
      open.set(pid, { subscription, at, error: text });
      continue;
    }
    const block = open.get(pid);
    if (!block) continue;
    if (level === 'DETAIL') {
      block.detail = text;
      const k = KEY.exec(text);
      if (k) {
        const columns = k[1]!.split(', ');
        const values = k[2]!.split(', ');
        if (columns.length === values.length) block.key = { columns, values };
      }
    } else if (level === 'CONTEXT') {
      const c = CONTEXT.exec(text);
      if (c && c[1] === origin) {
        Object.assign(block, { messageType: c[2], relation: c[3], xid: c[4], finishLsn: c[5] });
        found = block;
      }
      open.delete(pid);
    } else if (level !== 'HINT' && level !== 'STATEMENT') open.delete(pid);
  }
  return found;
}

/** The conflict a subscription is stalled on now (the log's newest, not yet applied or skipped), with its ways out. */
export async function currentConflict(subSql: Sql, subscription: string, logText: string | null): Promise<ApplyConflict | undefined> {
  if (!logText) return undefined;
  const [sub] = await subSql<{ oid: string; enabled: boolean }[]>`select oid::text, subenabled as enabled from pg_subscription where subname = ${subscription}`;
  if (!sub) return undefined;
  const conflict = lastApplyError(logText, `pg_${sub.oid}`, subscription);
  if (!conflict) return undefined;
  if (conflict.finishLsn) {
    // Applied (resolved) already when the origin's progress has reached the transaction's end.
    const [p] = await subSql<{ done: boolean | null }[]>`
      select pg_replication_origin_progress(${`pg_${sub.oid}`}, false) >= ${conflict.finishLsn}::pg_lsn as done`;
    if (p?.done) return undefined;
  } else if (Date.now() - Date.parse(conflict.at) > 60_000) return undefined;
  return withWaysOut(conflict);
}

function withWaysOut(c: ApplyConflict): ApplyConflict {
  if (c.finishLsn) c.skipSql = `ALTER SUBSCRIPTION ${quoteIdent(c.subscription)} SKIP (lsn = '${c.finishLsn}')`;
  if (c.key && c.relation) {
    const dot = c.relation.indexOf('.');
    const table = dot > 0 ? `${quoteIdent(c.relation.slice(0, dot))}.${quoteIdent(c.relation.slice(dot + 1))}` : quoteIdent(c.relation);
    const where = c.key.columns.map((col, i) => `${col.startsWith('"') ? col : quoteIdent(col)} = '${c.key!.values[i]!.replace(/'/g, "''")}'`).join(' AND ');
    c.deleteLocalSql = `DELETE FROM ${table} WHERE ${where}`;
  }
  return c;
}
