import { connect, type Sql } from '../pg/index.js';
import { HEARTBEAT_BEAT_SQL } from '../replication/index.js';
import type { CollectorNode } from './collector.js';

/**
 * The writing half of end-to-end replication latency, kept apart from the collector's read-only
 * scrape: each sample it stamps the heartbeat row of every publication on its publisher (one
 * statement per publisher), and the subscribers' trigger records when the row arrived, which the
 * collector then reads. A publisher that does not answer is tried again next sample on a new
 * connection; one that refuses the statement (no table, no rights) stops being beaten, with
 * one warning.
 */
export class HeartbeatWriter {
  private readonly targets: { node: CollectorNode; publications: string[]; sql?: Sql; disabled?: boolean }[];

  constructor(
    nodes: readonly CollectorNode[],
    beats: ReadonlyMap<string, string[]>,
    private readonly options: { warn?: (line: string) => void; timeoutMs?: number } = {},
  ) {
    this.targets = nodes.flatMap((node) => {
      const publications = beats.get(node.name);
      return publications?.length ? [{ node, publications }] : [];
    });
  }

  /** Beats every publisher once, in parallel; bounded by the timeout, never throws. */
  async beat(): Promise<void> {
    const timeoutMs = this.options.timeoutMs ?? 2000;
    await Promise.all(
      this.targets
        .filter((t) => !t.disabled)
        .map(async (t) => {
          t.sql ??= connect(t.node.connection, { max: 1, connectTimeoutSeconds: 2, applicationName: 'prodhome-heartbeat', statementTimeoutMs: timeoutMs });
          let timer: NodeJS.Timeout | undefined;
          try {
            await Promise.race([
              t.sql.unsafe(HEARTBEAT_BEAT_SQL, [t.publications], { prepare: true }), // parsed once per connection
              new Promise((_, reject) => (timer = setTimeout(() => reject(Object.assign(new Error('no answer'), { code: 'TIMEOUT' })), timeoutMs + 2000))),
            ]);
          } catch (e) {
            const sqlstate = (e as { code?: string; severity?: string }).severity ? (e as { code: string }).code : undefined;
            if (sqlstate) {
              t.disabled = true;
              this.options.warn?.(`${t.node.name}: heartbeat disabled on this node: ${(e as Error).message}`);
            }
            // Away (or hung): a fresh connection next sample.
            void t.sql?.end({ timeout: 0 }).catch(() => {});
            t.sql = undefined;
          } finally {
            clearTimeout(timer);
          }
        }),
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.targets.map((t) => t.sql?.end({ timeout: 1 })));
  }
}
