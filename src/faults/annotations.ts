import { connect, type ConnectionInfo } from '../pg/index.js';

/**
 * Every fault and every clear is a row in the metrics store's `metrics.annotations`, the table
 * load runs and the dashboard share (the same idempotent DDL everywhere), so it shows on every
 * time panel. A fault starts a row; its clear sets "end". A lab without a store writes nothing;
 * a store that is away costs a warning, never the fault.
 */

export const ANNOTATIONS_DDL =
  `CREATE TABLE IF NOT EXISTS metrics.annotations (id bigserial PRIMARY KEY, time timestamptz NOT NULL, "end" timestamptz, kind text NOT NULL, node text, text text NOT NULL, tags jsonb NOT NULL DEFAULT '{}')`;

export interface Annotation {
  time: Date;
  end?: Date;
  kind: string;
  node?: string;
  text: string;
  tags: Record<string, string>;
}

/** Inserts an annotation; returns its id, or undefined (with a warning) when the store is away. */
export async function annotate(store: ConnectionInfo | undefined, a: Annotation, warn: (line: string) => void): Promise<number | undefined> {
  if (!store) return undefined;
  return onStore(store, warn, async (sql) => {
    const [row] = await sql<{ id: string }[]>`
      insert into metrics.annotations (time, "end", kind, node, text, tags)
      values (${a.time}, ${a.end ?? null}, ${a.kind}, ${a.node ?? null}, ${a.text}, ${sql.json(a.tags)}) returning id`;
    return Number(row!.id);
  });
}

/** Sets an annotation's end (once: a second call leaves the first end). */
export async function endAnnotation(store: ConnectionInfo | undefined, id: number | undefined, end: Date, warn: (line: string) => void): Promise<void> {
  if (!store || id === undefined) return;
  await onStore(store, warn, (sql) => sql`update metrics.annotations set "end" = ${end} where id = ${id} and "end" is null`);
}

async function onStore<T>(store: ConnectionInfo, warn: (line: string) => void, fn: (sql: ReturnType<typeof connect>) => Promise<T>): Promise<T | undefined> {
  const sql = connect(store, { connectTimeoutSeconds: 3, statementTimeoutMs: 5000, applicationName: 'prodhome-annotations' });
  let timer: NodeJS.Timeout | undefined;
  try {
    const work = (async () => {
      await sql.unsafe('CREATE SCHEMA IF NOT EXISTS metrics');
      await sql.unsafe(ANNOTATIONS_DDL);
      return fn(sql);
    })();
    // The driver can wait for ever on a server that stopped answering (a frozen store).
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('no answer within 8 s')), 8000)));
    return await Promise.race([work, timeout]);
  } catch (e) {
    warn(`annotation not written to the metrics store (${store.host}:${store.port}): ${(e as Error).message}`);
    return undefined;
  } finally {
    clearTimeout(timer);
    void sql.end({ timeout: 1 }).catch(() => {});
  }
}
