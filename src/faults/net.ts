import type { SubscriptionSpec } from '../config/index.js';
import { ProdhomeError } from '../errors.js';
import { onNode } from './common.js';
import { spawnDetached, stopHolder, holderAlive } from './holder.js';
import { pointSubscription, subscriptionPort, type ProxyReady, type ProxySpec } from './proxy.js';
import type { FaultArgs, FaultEnv, Fault, Injected } from './types.js';

/**
 * Network faults on a replication link: the subscription is pointed at a TCP proxy of its own
 * (loopback only) that adds latency and jitter, or caps bandwidth; clear (or --for running out)
 * points it back at the publisher. A partition is cut into the link once it streams through the
 * proxy, its connection held open and silent, so the ends meet it by their own timeouts; --for
 * running out heals it in place (see proxy.ts). `--reset-connections` alone ends the link's
 * walsender on the publisher: the subscriber reconnects, as after a network blip.
 */
export const netFault: Fault = {
  name: 'net',
  summary: 'latency, jitter, a bandwidth cap or a partition on a replication link (through a TCP proxy); --reset-connections',
  targets: 'link',
  instant: (args) => !!args.net?.reset && !hasToxics(args),
  async plan(args, env) {
    const sub = link(args.target, env);
    check(args);
    const steps: string[] = [];
    if (hasToxics(args)) {
      steps.push(
        `start a TCP proxy on 127.0.0.1 (a free port) forwarding to ${sub.publisher} (${env.node(sub.publisher).connection.host}:${env.node(sub.publisher).connection.port}) with ${describeToxics(args)}`,
        `${sub.node}: ALTER SUBSCRIPTION ${sub.name} CONNECTION '… host=127.0.0.1 port=PROXY …' (the rest of its connection string, password included, kept as it is; its worker reconnects through the proxy)`,
        ...(args.net?.partition
          ? [`wait (up to 40 s) until ${sub.publisher}'s pg_stat_replication shows ${sub.name}'s walsender streaming through the proxy, then pass nothing either way, the connections held open (the ends notice by wal_sender_timeout / wal_receiver_timeout)`]
          : []),
        args.net?.partition && args.forMs
          ? `after ${args.forMs / 1000} s the partition ends in place (everything passes again, the link recovers by itself); once it streams, ALTER SUBSCRIPTION ${sub.name} CONNECTION back to ${sub.publisher}'s port and end the proxy (fault clear does that at once)`
          : `undo: ALTER SUBSCRIPTION ${sub.name} CONNECTION back to ${sub.publisher}'s port, then end the proxy (fault clear${args.forMs ? `, or after ${args.forMs / 1000} s by itself` : ''})`,
      );
    }
    if (args.net?.reset && !hasToxics(args)) steps.push(`${sub.publisher}: SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = '${sub.name}' -- the link's walsender; the subscriber reconnects`);
    return steps;
  },
  async inject(args, env): Promise<Injected> {
    const sub = link(args.target, env);
    const subscriber = env.node(sub.node);
    const publisher = env.node(sub.publisher);
    if (!hasToxics(args)) {
      const n = await onNode(publisher.connection, `${sub.publisher}: resetting ${sub.name}'s connection`, async (sql) =>
        (await sql`select pg_terminate_backend(pid) from pg_stat_replication where application_name = ${sub.name}`).length,
      );
      return { summary: `${n} walsender connection${n === 1 ? '' : 's'} of ${sub.name} reset`, data: { subscription: sub.name } };
    }
    const spec: ProxySpec = {
      upstream: { host: publisher.connection.host, port: publisher.connection.port },
      toxics: { latencyMs: args.net?.latencyMs, jitterMs: args.net?.jitterMs, bytesPerSecond: args.net?.bytesPerSecond, partition: args.net?.partition },
      forMs: args.forMs,
      node: sub.node,
      subscriber: subscriber.connection,
      subscription: sub.name,
      ...(args.net?.partition ? { publisher: publisher.connection } : {}),
      annotation: env.annotation,
    };
    // The proxy points the subscription at itself (and, for a partition, cuts in once the link
    // streams through it) before it answers.
    let started: Awaited<ReturnType<typeof spawnDetached<ProxyReady>>>;
    try {
      started = await spawnDetached<ProxyReady>('fault-proxy', spec, env.holderLog);
    } catch (e) {
      // A proxy that failed half-way must not leave the link pointed at nothing.
      await onNode(subscriber.connection, `${sub.node}: pointing ${sub.name} back at its publisher`, async (sql) => {
        if ((await subscriptionPort(sql, sub.name)) !== publisher.connection.port) await pointSubscription(sql, sub.name, publisher.connection.host, publisher.connection.port);
      }).catch(() => {});
      throw e;
    }
    const { ref, ready } = started;
    const from = ready.partitionedAt ? Date.parse(ready.partitionedAt) : Date.now();
    return {
      summary: `${sub.name} goes through a proxy on 127.0.0.1:${ready.port}: ${describeToxics(args)}${args.net?.partition ? partitionNote(ready, args.forMs, sub) : ''}`,
      data: { subscription: sub.name, proxyPort: ready.port!, publisherHost: publisher.connection.host, publisherPort: publisher.connection.port },
      holder: ref,
      ...(args.forMs ? { until: new Date(from + args.forMs).toISOString() } : {}),
    };
  },
  async heal(record, env) {
    if (!record.holder) return [];
    const steps: string[] = [];
    const sub = String(record.data.subscription);
    const subscriber = env.node(record.node);
    // Back to the publisher first (the proxy does it too as it ends; either way once).
    const pointed = await onNode(subscriber.connection, `${record.node}: pointing ${sub} back at its publisher`, async (sql) => {
      if ((await subscriptionPort(sql, sub)) !== record.data.proxyPort) return false;
      await pointSubscription(sql, sub, String(record.data.publisherHost), Number(record.data.publisherPort));
      return true;
    });
    if (pointed) steps.push(`${record.node}: ALTER SUBSCRIPTION ${sub} CONNECTION back to port ${record.data.publisherPort}`);
    if (await stopHolder(record.holder)) steps.push(`proxy process ${record.holder.pid} ended`);
    return steps;
  },
  active(record) {
    return !!record.holder && holderAlive(record.holder);
  },
};

/** What a partition cut into, and whether the link's ends will notice it by their timeouts. */
function partitionNote(ready: ProxyReady, forMs: number | undefined, sub: SubscriptionSpec): string {
  const cut = ready.streaming ? ', cut into the streaming link (its connection held open, nothing passes)' : ', cut before the link streamed through it (its connections are held unanswered)';
  const sec = (ms: number) => `${ms / 1000} s`;
  const ends = [
    ready.walSenderTimeoutMs !== undefined ? `${sub.publisher}'s wal_sender_timeout ${ready.walSenderTimeoutMs ? sec(ready.walSenderTimeoutMs) : 'off'}` : '',
    ready.walReceiverTimeoutMs !== undefined ? `${sub.node}'s wal_receiver_timeout ${ready.walReceiverTimeoutMs ? sec(ready.walReceiverTimeoutMs) : 'off'}` : '',
  ].filter(Boolean);
  const longest = Math.max(ready.walSenderTimeoutMs || Infinity, ready.walReceiverTimeoutMs || Infinity);
  const outcome =
    forMs === undefined ? 'the ends notice by these timeouts' : forMs > longest ? `longer than both: the ends time out and reconnect by themselves` : `--for ${sec(forMs)} is not longer than both: an end may not time out`;
  return `${cut}; ${ends.join(', ')}: ${outcome}`;
}

function hasToxics(args: FaultArgs): boolean {
  const n = args.net ?? {};
  return !!(n.latencyMs || n.jitterMs || n.bytesPerSecond || n.partition);
}

function check(args: FaultArgs): void {
  const n = args.net ?? {};
  if (!hasToxics(args) && !n.reset) {
    throw new ProdhomeError('USAGE', `fault net ${args.target}: say what to do to the link: --latency 200ms [--jitter 50ms], --bandwidth 1mbit, --partition, or --reset-connections`);
  }
  if (n.partition && (n.latencyMs || n.bytesPerSecond)) throw new ProdhomeError('USAGE', `fault net ${args.target}: --partition passes nothing, so it takes no --latency or --bandwidth`);
  if (n.jitterMs && !n.latencyMs) throw new ProdhomeError('USAGE', `fault net ${args.target}: --jitter varies a --latency; give one`);
}

function describeToxics(args: FaultArgs): string {
  const n = args.net ?? {};
  if (n.partition) return 'a partition (nothing passes either way)';
  return [n.latencyMs ? `latency ${n.latencyMs} ms${n.jitterMs ? ` ± ${n.jitterMs} ms` : ''}` : '', n.bytesPerSecond ? `bandwidth ${Math.round((n.bytesPerSecond * 8) / 1000)} kbit/s` : '']
    .filter(Boolean)
    .join(', ');
}

/** A link: a subscription by name, or the one subscription a subscriber node runs. */
function link(name: string, env: FaultEnv): SubscriptionSpec {
  const byName = env.replication.subscriptions.find((s) => s.name === name);
  if (byName) return byName;
  const onNode = env.replication.subscriptions.filter((s) => s.node === name);
  if (onNode.length === 1) return onNode[0]!;
  if (onNode.length > 1) throw new ProdhomeError('USAGE', `fault net ${name}: ${name} runs ${onNode.length} subscriptions (${onNode.map((s) => s.name).join(', ')}); name one`);
  const links = env.replication.subscriptions.map((s) => `${s.name} (${s.node})`);
  throw new ProdhomeError('USAGE', `fault net: there is no link "${name}" in this lab${links.length ? ` (links: ${links.join(', ')})` : ' (it has no subscriptions)'}`, {
    hint: 'Name a subscription, or the subscriber node it runs on.',
  });
}
