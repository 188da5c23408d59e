import { connect, type ConnectionInfo } from '../pg/index.js';
import { endAnnotation as endAnnotationRow, writeAnnotation, type Annotation } from '../sinks/index.js';

/**
 * Every fault and every clear is a row in the metrics store's `metrics.annotations`, the table
 * load runs and the dashboard share (the same idempotent DDL everywhere), so it shows on every
 * time panel. A fault starts a row; its clear sets "end". A lab without a store writes nothing;
 * a store that is away costs a warning, never the fault.
 */


/** Inserts an annotation; returns its id, or undefined (with a warning) when the store is away. */
export async function annotate(store: ConnectionInfo | undefined, a: Annotation, warn: (line: string) => void): Promise<number | undefined> {
  if (!store) return undefined;
  return onStore(store, warn, (sql) => writeAnnotation(sql, a));
}

/** Sets an annotation's end (once: a second call leaves the first end). */
export async function endAnnotation(store: ConnectionInfo | undefined, id: number | undefined, end: Date, warn: (line: string) => void): Promise<void> {
  if (!store || id === undefined) return;
  await onStore(store, warn, (sql) => endAnnotationRow(sql, id, end));
}

async function onStore<T>(store: ConnectionInfo, warn: (line: string) => void, fn: (sql: ReturnType<typeof connect>) => Promise<T>): Promise<T | undefined> {
  const sql = connect(store, { connectTimeoutSeconds: 3, statementTimeoutMs: 5000, applicationName: 'prodhome-annotations' });
  let timer: NodeJS.Timeout | undefined;
  try {
    const work = fn(sql);
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
