/**
 * A subscription's real errors, read from the subscriber's log. Most of its workers' ERROR
 * lines do not name the subscription (a duplicate key says only the constraint), so lines are
 * matched by the worker's pid: each worker logs "logical replication apply worker for
 * subscription "X" has started" (or "table synchronization worker …") when it starts, and an
 * apply failure's CONTEXT names the subscription's replication origin (pg_<oid>).
 */

export interface WorkerError {
  /** The log line's time, as Postgres wrote it. */
  at: string;
  pid: number;
  level: 'ERROR' | 'FATAL';
  text: string;
  detail?: string;
}

const LINE = /^(\S+ \S+ \S+) \[(\d+)\] ([A-Z]+):\s+(.*)$/;
const STARTED = /^logical replication (?:apply|table synchronization|parallel apply) worker for subscription "((?:[^"]|"")+)"/;
// Stopping a worker on purpose (DISABLE, DROP, a restart) is not a failure of the subscription.
const ADMINISTRATIVE = /terminating (?:logical replication worker|connection) due to administrator command|the database system is shutting down/;

/** The subscription's workers' errors in `logText`, newest first, at most `limit`. */
export function workerErrors(logText: string, subscription: string, oid: number | null, limit = 3): WorkerError[] {
  const owner = new Map<number, string>();
  const found: WorkerError[] = [];
  const open = new Map<number, WorkerError>();
  const origin = oid === null ? null : `replication origin "pg_${oid}"`;
  for (const line of logText.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const at = m[1]!;
    const pid = Number(m[2]);
    const level = m[3]!;
    const text = m[4]!;
    const started = level === 'LOG' ? STARTED.exec(text) : null;
    if (started) {
      owner.set(pid, started[1]!.replace(/""/g, '"'));
      continue;
    }
    if (level === 'ERROR' || level === 'FATAL') {
      open.delete(pid);
      if (ADMINISTRATIVE.test(text)) continue;
      const error: WorkerError = { at, pid, level, text };
      open.set(pid, error);
      if (owner.get(pid) === subscription || text.includes(`subscription "${subscription}"`)) found.push(error);
      continue;
    }
    const last = open.get(pid);
    if (!last) continue;
    if (level === 'DETAIL') last.detail = text;
    // A worker of a subscription whose start was before the log's tail: its CONTEXT names the origin.
    else if (level === 'CONTEXT' && origin && text.includes(origin) && !found.includes(last)) found.push(last);
    else if (level !== 'CONTEXT' && level !== 'HINT' && level !== 'STATEMENT') open.delete(pid);
  }
  return found.reverse().slice(0, limit);
}
