import fs from 'node:fs';
import type { LabConfig } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { currentConflict, pgMessage, type OperationReport, type SubscriptionStatus } from '../replication/index.js';
import type { Sql } from '../pg/index.js';
import type { NodeState } from '../runtime/index.js';

/**
 * `replication resolve SUB --skip | --delete-local`, and the conflict `replication status`
 * shows: read from a local subscriber's log (the only place Postgres names the failed
 * transaction's finish LSN and key).
 */

/** The last 256 KiB of a local node's log; null for an external server. */
export function logTail(node: NodeState | undefined): string | null {
  if (node?.runtime !== 'local') return null;
  try {
    // The server user's directory: no link followed, no FIFO waited on, plain files only.
    const fd = fs.openSync(node.logFile, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) return null;
      const size = st.size;
      const len = Math.min(size, 256 * 1024);
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, size - len);
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null;
  }
}

/** Adds each stalled subscription's conflict (and its ways out) to status rows. */
export async function withConflicts(rows: SubscriptionStatus[], sql: (node: string) => Sql, nodes: Record<string, NodeState>): Promise<SubscriptionStatus[]> {
  for (const row of rows) {
    if (!row.exists) continue;
    try {
      row.conflict = await currentConflict(sql(row.subscriber), row.subscription, logTail(nodes[row.subscriber]));
    } catch {
      // status shows what it can
    }
  }
  return rows;
}

export type ResolveMode = 'skip' | 'delete-local';

/** Resolves the conflict a subscription is stalled on; returns the SQL it ran. */
export async function resolveConflict(config: LabConfig, subName: string, mode: ResolveMode, sql: (node: string) => Sql, nodes: Record<string, NodeState>, lsn?: string): Promise<OperationReport> {
  const sub = config.replication.subscriptions.find((s) => s.name === subName)!;
  const subSql = sql(sub.node);
  const report: OperationReport = { ran: [], notes: [] };
  const log = logTail(nodes[sub.node]);
  const conflict = await currentConflict(subSql, sub.name, log);
  if (!conflict && !(mode === 'skip' && lsn)) {
    throw new ProdhomeError('USAGE', `${sub.name} has no apply conflict to resolve${log === null ? ` that prodhome can see (${sub.node} is external: its log is not readable here)` : ' (its apply worker is not failing on a change)'}`, {
      hint: log === null ? `Read the finish LSN from ${sub.node}'s log ("finished at …") and run: prodhome replication resolve ${sub.name} --skip --lsn LSN` : '`prodhome replication status` shows each subscription\'s state.',
    });
  }
  let text: string | undefined;
  if (mode === 'skip') {
    text = lsn ? `ALTER SUBSCRIPTION "${sub.name.replace(/"/g, '""')}" SKIP (lsn = '${lsn}')` : conflict!.skipSql;
    if (!text) throw new ProdhomeError('USAGE', `${sub.name}: the failed transaction's finish LSN is not in ${sub.node}'s log (a streamed transaction?)`, { hint: `Use --delete-local, or give --lsn.` });
    report.notes.push(`the skipped transaction${conflict?.xid ? ` (xid ${conflict.xid} on ${sub.publisher})` : ''} is not applied on ${sub.node}: its rows are missing there (verify names them); \`prodhome replication resync ${sub.name}\` copies them afresh`);
  } else {
    text = conflict!.deleteLocalSql;
    if (!text) throw new ProdhomeError('USAGE', `${sub.name}: the failure is not a duplicate key (${conflict!.error}); there are no local rows to delete`, { hint: `Fix it on ${sub.node} by hand, or skip the transaction: prodhome replication resolve ${sub.name} --skip` });
    report.notes.push(`${sub.node}'s apply worker retries within wal_retrieve_retry_interval (5 s by default) and applies the publisher's row`);
  }
  try {
    await subSql.unsafe(text);
  } catch (e) {
    throw new ProdhomeError('REPLICATION_FAILED', `${sub.node}: ${text} failed: ${pgMessage(e)}`);
  }
  report.ran.unshift({ node: sub.node, sql: `${text};` });
  return report;
}
