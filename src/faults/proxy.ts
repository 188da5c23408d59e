import net from 'node:net';
import type { ConnectionInfo, Sql } from '../pg/index.js';
import { connect } from '../pg/index.js';
import { endAnnotation } from './annotations.js';
import { readStdin, type HolderReady } from './holder.js';

/**
 * The network fault's TCP proxy (a detached `prodhome fault-proxy`, loopback only): the
 * subscription is pointed at it (ALTER SUBSCRIPTION … CONNECTION, which also restarts its
 * worker, so the link's connection goes through the proxy at once) and it forwards to the
 * publisher with the toxics asked for — latency (+ jitter), a bandwidth cap, or a partition
 * (bytes are swallowed both ways, connections stay open: the ends only notice by their
 * timeouts, as with a real partition). When its time runs out or it is ended, it points the
 * subscription back at the publisher first.
 */

export interface Toxics {
  latencyMs?: number;
  jitterMs?: number;
  /** bytes per second, each direction */
  bytesPerSecond?: number;
  partition?: boolean;
}

export interface ProxySpec {
  upstream: { host: string; port: number };
  toxics: Toxics;
  forMs?: number;
  subscriber: ConnectionInfo;
  subscription: string;
  annotation?: { store: ConnectionInfo; id: number };
}

export interface ProxyReady extends HolderReady {
  port?: number;
}

const lit = (v: string) => `'${v.replace(/'/g, "''")}'`;

/**
 * Points a subscription at host:port, keeping the rest of its connection string (the
 * replication password included) inside the server: it never passes through prodhome.
 */
export async function pointSubscription(sql: Sql, subscription: string, host: string, port: number): Promise<void> {
  if (!Number.isInteger(port) || !/^[\w.:-]+$/.test(host)) throw new Error(`bad address ${host}:${port}`);
  await sql.unsafe(`do $$ begin
    execute format('ALTER SUBSCRIPTION %I CONNECTION %L', ${lit(subscription)}::text,
      (select regexp_replace(regexp_replace(subconninfo, 'port=\\d+', 'port=${port}'), 'host=(''[^'']*''|\\S+)', 'host=''${host}''')
       from pg_subscription where subname = ${lit(subscription)}));
  end $$`);
}

/** The port a subscription connects to now. */
export async function subscriptionPort(sql: Sql, subscription: string): Promise<number | undefined> {
  const [row] = await sql<{ p: string | null }[]>`select substring(subconninfo from 'port=(\\d+)') as p from pg_subscription where subname = ${subscription}`;
  return row?.p ? Number(row.p) : undefined;
}

/** Forwards `from` to `to` through the toxics, in order. */
function forward(from: net.Socket, to: net.Socket, t: Toxics): void {
  if (t.partition) {
    from.on('data', () => {}); // swallowed
    return;
  }
  if (!t.latencyMs && !t.jitterMs && !t.bytesPerSecond) {
    from.pipe(to);
    return;
  }
  let last = 0;
  from.on('data', (buf: Buffer) => {
    const now = Date.now();
    let at = now + (t.latencyMs ?? 0) + (t.jitterMs ? (Math.random() * 2 - 1) * t.jitterMs : 0);
    // A bandwidth cap: this chunk leaves no sooner than the previous one plus its transfer time.
    if (t.bytesPerSecond) at = Math.max(at, last + (buf.length / t.bytesPerSecond) * 1000);
    at = Math.max(at, last); // jitter never reorders a stream
    last = at;
    setTimeout(() => to.writable && to.write(buf), Math.max(0, at - now));
  });
}

/** The `prodhome fault-proxy` process (hidden subcommand). */
export async function runProxy(spec: ProxySpec): Promise<void> {
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} fault-proxy ${process.pid} (${spec.subscription}): ${line}\n`);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    if (spec.toxics.partition) {
      forward(client, client, spec.toxics); // accepted, then nothing: a partition
      return;
    }
    const upstream = net.connect({ host: spec.upstream.host, port: spec.upstream.port, noDelay: true });
    client.setNoDelay(true);
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    forward(client, upstream, spec.toxics);
    forward(upstream, client, spec.toxics);
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
  process.stdout.write(`${JSON.stringify({ ok: true, port } satisfies ProxyReady)}\n`);
  log(`listening on 127.0.0.1:${port} → ${spec.upstream.host}:${spec.upstream.port} with ${JSON.stringify(spec.toxics)}`);

  let done: (why: string) => void = () => {};
  const finished = new Promise<string>((resolve) => (done = resolve));
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => done(`${signal}: cleared`));
  const timer = spec.forMs ? setTimeout(() => done('its time ran out'), spec.forMs) : undefined;
  const why = await finished;
  clearTimeout(timer);
  log(`ending: ${why}; pointing ${spec.subscription} back at ${spec.upstream.host}:${spec.upstream.port}`);
  const sql = connect(spec.subscriber, { connectTimeoutSeconds: 5, statementTimeoutMs: 10_000, applicationName: 'prodhome-fault' });
  try {
    if ((await subscriptionPort(sql, spec.subscription)) === port) await pointSubscription(sql, spec.subscription, spec.upstream.host, spec.upstream.port);
  } catch (e) {
    log(`could not point ${spec.subscription} back: ${(e as Error).message} (fault clear or up does it)`);
  } finally {
    await sql.end({ timeout: 2 }).catch(() => {});
  }
  server.close();
  for (const s of sockets) s.destroy();
  if (spec.annotation && !why.includes('cleared')) await endAnnotation(spec.annotation.store, spec.annotation.id, new Date(), log);
  process.exit(0);
}

/** Entry of `prodhome fault-proxy`: what to proxy comes on stdin (it carries a password). */
export async function runProxyProcess(): Promise<void> {
  await runProxy(JSON.parse(await readStdin()) as ProxySpec);
}
