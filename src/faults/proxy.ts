import net from 'node:net';
import type { ConnectionInfo, Sql } from '../pg/index.js';
import { connect } from '../pg/index.js';
import { sleep } from '../runtime/index.js';
import { endAnnotation } from './annotations.js';
import { readStdin, type HolderReady } from './holder.js';

/**
 * The network fault's TCP proxy (a detached `prodhome fault-proxy`, loopback only). It points
 * the subscription at itself (ALTER SUBSCRIPTION … CONNECTION, which restarts its worker, so the
 * link's connection goes through the proxy at once) and forwards to the publisher with the
 * toxics asked for: latency (+ jitter) or a bandwidth cap.
 *
 * A partition is cut into a link that is already streaming, as a real one is: the proxy first
 * passes everything until the publisher shows the link's walsender streaming through it, then
 * passes nothing either way. Connections stay open and no end is told anything (no RST, no
 * FIN): the walsender and the apply worker only find out by wal_sender_timeout and
 * wal_receiver_timeout. A new connection made during the partition is held unanswered. Bytes
 * sent meanwhile are kept (as TCP keeps retransmitting them), up to a cap per direction, then
 * the sender meets a full window. When the partition ends by its time, everything passes
 * again in place — held bytes, closes and held connections included — and the link recovers by
 * itself; once it streams again the proxy points the subscription back at the publisher and
 * exits. Cleared (SIGTERM), it points it back at once.
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
  /** The subscriber node's name, for messages. */
  node: string;
  subscriber: ConnectionInfo;
  subscription: string;
  /** partition: where to see the link's walsender streaming through the proxy. */
  publisher?: ConnectionInfo;
  annotation?: { store: ConnectionInfo; id: number };
}

export interface ProxyReady extends HolderReady {
  port?: number;
  /** partition: the link was streaming through the proxy when the partition began. */
  streaming?: boolean;
  /** partition: when it began (its --for counts from here). */
  partitionedAt?: string;
  /** partition: the ends' timeouts in ms (0: disabled). */
  walSenderTimeoutMs?: number;
  walReceiverTimeoutMs?: number;
}

/** How long a partition waits for the link to stream through the proxy before it cuts anyway. */
const ESTABLISH_MS = 40_000;
/** How many bytes a partitioned connection keeps per direction before the sender meets a full window. */
const HELD_BYTES = 16 * 1024 * 1024;

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

/** One direction of a connection: `from`'s bytes to `to`, through the toxics; held while partitioned. */
class Direction {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private ended = false;
  /** ms into the partition at which `from` closed, if it did while partitioned */
  endedAfterMs?: number;
  private last = 0;

  constructor(
    private readonly from: net.Socket,
    private readonly to: () => net.Socket | undefined,
    private readonly t: Toxics,
    private readonly cut: () => number | undefined,
  ) {
    from.on('data', (buf: Buffer) => this.data(buf));
    from.on('end', () => {
      this.ended = true;
      const since = this.cut();
      if (since !== undefined) this.endedAfterMs = Date.now() - since;
      else this.flush();
    });
  }

  private data(buf: Buffer): void {
    const to = this.to();
    if (this.cut() !== undefined || !to) {
      // Partitioned (or not connected upstream yet): kept, as the sender's TCP keeps it.
      this.held.push(buf);
      this.heldBytes += buf.length;
      if (this.heldBytes >= HELD_BYTES) this.from.pause(); // a full window
      return;
    }
    this.send(to, buf);
  }

  private send(to: net.Socket, buf: Buffer): void {
    const t = this.t;
    if (!t.latencyMs && !t.jitterMs && !t.bytesPerSecond) {
      if (!to.write(buf)) {
        this.from.pause();
        to.once('drain', () => this.from.resume());
      }
      return;
    }
    const now = Date.now();
    let at = now + (t.latencyMs ?? 0) + (t.jitterMs ? (Math.random() * 2 - 1) * t.jitterMs : 0);
    // A bandwidth cap: this chunk leaves no sooner than the previous one plus its transfer time.
    if (t.bytesPerSecond) at = Math.max(at, this.last + (buf.length / t.bytesPerSecond) * 1000);
    at = Math.max(at, this.last); // jitter never reorders a stream
    this.last = at;
    setTimeout(() => to.writable && to.write(buf), Math.max(0, at - now));
  }

  /** Passes on what was held (and a close that came meanwhile): the partition is over. */
  flush(): void {
    const to = this.to();
    if (!to) return;
    for (const buf of this.held.splice(0)) this.send(to, buf);
    this.heldBytes = 0;
    if (this.ended) to.end();
    else this.from.resume();
  }
}

/** A client's connection and its connection to the publisher. */
class Pair {
  upstream?: net.Socket;
  readonly up: Direction;
  down?: Direction;
  readonly openedAt = Date.now();

  constructor(
    readonly id: number,
    readonly client: net.Socket,
    private readonly spec: ProxySpec,
    private readonly cut: () => number | undefined,
    private readonly sockets: Set<net.Socket>,
    private readonly gone: (p: Pair) => void,
  ) {
    client.setNoDelay(true);
    this.up = new Direction(client, () => this.upstream, spec.toxics, cut);
    client.on('error', () => this.destroy());
    client.on('close', () => this.cut() === undefined && this.destroy());
    if (cut() === undefined) this.connect();
  }

  /** Connects to the publisher (at once, or when a partition that held this connection ends). */
  connect(): void {
    if (this.upstream) return;
    const upstream = net.connect({ host: this.spec.upstream.host, port: this.spec.upstream.port, noDelay: true });
    this.upstream = upstream;
    this.sockets.add(upstream);
    this.down = new Direction(upstream, () => this.client, this.spec.toxics, this.cut);
    upstream.on('error', () => this.destroy());
    upstream.on('close', () => {
      this.sockets.delete(upstream);
      if (this.cut() === undefined) this.destroy();
    });
    this.up.flush(); // what a held connection sent goes first (written once it connects)
  }

  /** The partition is over: held bytes and closes pass, a held connection connects. */
  heal(): void {
    if (!this.upstream) this.connect();
    else {
      this.up.flush();
      this.down?.flush();
      if (this.client.destroyed && this.upstream.destroyed) this.destroy();
    }
  }

  destroy(): void {
    this.client.destroy();
    this.upstream?.destroy();
    this.gone(this);
  }
}

/** The ports the proxy's connections to the publisher come from (what pg_stat_replication calls client_port). */
function upstreamPorts(pairs: Set<Pair>): number[] {
  return [...pairs].map((p) => p.upstream?.localPort).filter((p): p is number => typeof p === 'number');
}

/** Whether the publisher shows the link's walsender streaming to one of `ports`. */
async function streamingThrough(publisher: Sql, subscription: string, ports: number[]): Promise<boolean> {
  if (!ports.length) return false;
  const rows = await publisher<{ n: number }[]>`select count(*)::int as n from pg_stat_replication
    where application_name = ${subscription} and state in ('streaming', 'catchup') and client_port = any(${ports}::int[])`;
  return (rows[0]?.n ?? 0) > 0;
}

async function settingMs(sql: Sql, name: string): Promise<number | undefined> {
  const [row] = await sql<{ ms: number }[]>`select setting::int as ms from pg_settings where name = ${name}`;
  return row?.ms;
}

/** The `prodhome fault-proxy` process (hidden subcommand). */
export async function runProxy(spec: ProxySpec): Promise<void> {
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} fault-proxy ${process.pid} (${spec.subscription}): ${line}\n`);
  const answer = (r: ProxyReady) => process.stdout.write(`${JSON.stringify(r)}\n`);
  const sockets = new Set<net.Socket>();
  const pairs = new Set<Pair>();
  /** When the partition began; undefined while bytes pass. */
  let cutAt: number | undefined;
  const cut = () => cutAt;
  let ids = 0;
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    const pair = new Pair(++ids, client, spec, cut, sockets, (p) => pairs.delete(p));
    pairs.add(pair);
    if (cutAt !== undefined) log(`connection #${pair.id} arrived ${((Date.now() - cutAt) / 1000).toFixed(1)} s into the partition: held, unanswered`);
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
  log(`listening on 127.0.0.1:${port} → ${spec.upstream.host}:${spec.upstream.port} with ${JSON.stringify(spec.toxics)}`);

  const subscriber = connect(spec.subscriber, { connectTimeoutSeconds: 5, statementTimeoutMs: 10_000, applicationName: 'prodhome-fault' });
  const publisher = spec.toxics.partition && spec.publisher ? connect(spec.publisher, { connectTimeoutSeconds: 5, statementTimeoutMs: 10_000, applicationName: 'prodhome-fault' }) : undefined;
  const pointBack = async () => {
    try {
      if ((await subscriptionPort(subscriber, spec.subscription)) === port) {
        await pointSubscription(subscriber, spec.subscription, spec.upstream.host, spec.upstream.port);
        log(`${spec.subscription} pointed back at ${spec.upstream.host}:${spec.upstream.port}`);
      }
    } catch (e) {
      log(`could not point ${spec.subscription} back: ${(e as Error).message} (fault clear or up does it)`);
    }
  };
  const stop = async (code: number) => {
    server.close();
    for (const s of sockets) s.destroy();
    await Promise.all([subscriber.end({ timeout: 2 }), publisher?.end({ timeout: 2 })].map((p) => p?.catch(() => {})));
    process.exit(code);
  };

  let done: (why: string) => void = () => {};
  const finished = new Promise<string>((resolve) => (done = resolve));
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => done(`${signal}: cleared`));

  const ready: ProxyReady = { ok: true, port };
  try {
    await pointSubscription(subscriber, spec.subscription, '127.0.0.1', port);
    if (spec.toxics.partition) {
      // Cut into a live link: wait (bounded) until its walsender streams through the proxy.
      const deadline = Date.now() + ESTABLISH_MS;
      let streaming = false;
      while (!streaming && Date.now() < deadline) {
        streaming = publisher ? await streamingThrough(publisher, spec.subscription, upstreamPorts(pairs)).catch(() => false) : pairs.size > 0;
        if (!streaming) await sleep(200);
      }
      cutAt = Date.now();
      Object.assign(ready, {
        streaming,
        partitionedAt: new Date(cutAt).toISOString(),
        walSenderTimeoutMs: publisher ? await settingMs(publisher, 'wal_sender_timeout').catch(() => undefined) : undefined,
        walReceiverTimeoutMs: await settingMs(subscriber, 'wal_receiver_timeout').catch(() => undefined),
      });
      log(`partition: ${pairs.size} connection${pairs.size === 1 ? '' : 's'} held open, passing nothing either way${streaming ? ' (the link was streaming through the proxy)' : ` (the link was not streaming through the proxy after ${ESTABLISH_MS / 1000} s; new connections are held too)`}`);
    }
  } catch (e) {
    await pointBack();
    answer({ ok: false, error: `${spec.node}: pointing ${spec.subscription} at the proxy: ${(e as Error).message}` });
    await stop(1);
    return;
  }
  answer(ready);

  const timer = spec.forMs ? setTimeout(() => done('its time ran out'), spec.forMs) : undefined;
  const why = await finished;
  clearTimeout(timer);
  if (cutAt !== undefined && !why.includes('cleared')) {
    // The partition ends as a real one does: everything passes again in place, and the link
    // comes back by itself. What happened to each connection meanwhile goes to the log.
    const lasted = Date.now() - cutAt;
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    for (const p of pairs) {
      const events = [
        p.down?.endedAfterMs !== undefined ? `the publisher's end closed it ${s(p.down.endedAfterMs)} into the partition (its walsender timed out)` : '',
        p.up.endedAfterMs !== undefined ? `the subscriber's end closed it ${s(p.up.endedAfterMs)} into the partition (its worker timed out)` : '',
        !p.upstream ? 'held unanswered; it connects now' : '',
      ].filter(Boolean);
      log(`connection #${p.id}: ${events.length ? events.join('; ') : 'open at both ends'}`);
    }
    cutAt = undefined;
    log(`partition over after ${s(lasted)} (${why}): everything passes again`);
    for (const p of pairs) p.heal();
    const healed = Date.now();
    let back = false;
    while (!back && Date.now() - healed < 60_000 && publisher) {
      await sleep(250);
      back = await streamingThrough(publisher, spec.subscription, upstreamPorts(pairs)).catch(() => false);
    }
    log(back ? `the link streams again through the proxy, ${s(Date.now() - healed)} after the partition ended` : 'the link did not stream again through the proxy within 60 s');
  }
  log(`ending: ${why}; pointing ${spec.subscription} back at ${spec.upstream.host}:${spec.upstream.port}`);
  await pointBack();
  if (spec.annotation && !why.includes('cleared')) await endAnnotation(spec.annotation.store, spec.annotation.id, new Date(), log);
  await stop(0);
}

/** Entry of `prodhome fault-proxy`: what to proxy comes on stdin (it carries a password). */
export async function runProxyProcess(): Promise<void> {
  await runProxy(JSON.parse(await readStdin()) as ProxySpec);
}
