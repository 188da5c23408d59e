import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { ProdhomeError } from '../errors.js';
import type { ConnectionInfo } from '../pg/index.js';
import { processAlive, sleep } from '../runtime/index.js';
import { endAnnotation } from './annotations.js';
import { startTimeOf } from './process-tree.js';
import type { HolderRef } from './types.js';

/**
 * Faults that hold sessions open (connections, lock, idle-tx) need a process that outlives the
 * command: a detached `prodhome fault-holder`, one per fault. It reads what to hold (with the
 * node's password) from its stdin — never from argv or a file — answers one JSON line on
 * stdout once it holds it, then keeps it until SIGTERM (`fault clear`), until `--for` runs
 * out, or until the server drops its sessions. Its pid and start time go into faults.json, and
 * clear signals it only after checking both.
 */

export interface HolderSpec {
  kind: 'connections' | 'lock' | 'idle-tx';
  connection: ConnectionInfo;
  /** connections: how many (undefined: as many as the server gives) */
  hold?: number;
  /** lock: the quoted, qualified table */
  table?: string;
  forMs?: number;
  /** set on expiry, so the annotation ends when the fault does */
  annotation?: { store: ConnectionInfo; id: number };
}

export interface HolderReady {
  ok: boolean;
  held?: number;
  /** connections: the server refused more (53300) */
  full?: boolean;
  error?: string;
  code?: string;
}

const CLI_ENTRY = fileURLToPath(new URL('../../bin/prodhome.js', import.meta.url));
export const HOLDER_APP = 'prodhome-fault';

/** Starts a holder and waits (bounded) until it holds what it was asked to. */
export async function spawnHolder(spec: HolderSpec, logFile: string): Promise<{ ref: HolderRef; ready: HolderReady }> {
  return spawnDetached('fault-holder', spec, logFile);
}

/** Starts a detached `prodhome <command>` handed `spec` on stdin; waits for its one-line JSON answer. */
export async function spawnDetached<Ready extends HolderReady>(command: 'fault-holder' | 'fault-proxy', spec: object, logFile: string): Promise<{ ref: HolderRef; ready: Ready }> {
  const logFd = fs.openSync(logFile, 'a', 0o600);
  const child = spawn(process.execPath, [CLI_ENTRY, command], { detached: true, stdio: ['pipe', 'pipe', logFd] });
  fs.closeSync(logFd);
  child.stdin!.end(JSON.stringify(spec));
  const ready = await new Promise<Ready>((resolve) => {
    let text = '';
    const fail = (error: string) => resolve({ ok: false, error } as Ready);
    const timer = setTimeout(() => fail(`${command} did not answer within 60 s`), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\n')) {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(text.slice(0, text.indexOf('\n'))) as Ready);
        } catch {
          fail(`${command} answered: ${text.trim()}`);
        }
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(`${command} exited (code ${code}) before it was ready; see ${logFile}`);
    });
  });
  child.stdout!.destroy();
  child.removeAllListeners('exit');
  child.unref();
  const pid = child.pid!;
  if (!ready.ok) {
    if (processAlive(pid)) process.kill(pid, 'SIGKILL');
    throw new ProdhomeError('FAULT_FAILED', ready.error ?? 'the holder failed', { hint: `Its log: ${logFile}` });
  }
  return { ref: { pid, startTime: startTimeOf(pid) ?? '' }, ready };
}

/** Whether `ref` is still the holder we started (same pid, same start time, our command). */
export function holderAlive(ref: HolderRef): boolean {
  if (!processAlive(ref.pid)) return false;
  if (startTimeOf(ref.pid) !== ref.startTime) return false;
  try {
    const argv = fs.readFileSync(`/proc/${ref.pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('fault-holder') || argv.includes('fault-proxy');
  } catch {
    return false;
  }
}

/** Ends a holder (SIGTERM, then SIGKILL after 5 s) — only after checking it is ours. */
export async function stopHolder(ref: HolderRef): Promise<boolean> {
  if (!holderAlive(ref)) return false;
  process.kill(ref.pid, 'SIGTERM');
  const deadline = Date.now() + 5000;
  while (holderAlive(ref)) {
    if (Date.now() > deadline) {
      process.kill(ref.pid, 'SIGKILL');
      break;
    }
    await sleep(20);
  }
  return true;
}

/** The `prodhome fault-holder` process (hidden subcommand). */
export async function runHolder(): Promise<void> {
  const spec = JSON.parse(await readStdin()) as HolderSpec;
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} fault-holder ${process.pid} (${spec.kind}): ${line}\n`);
  const clients: postgres.Sql[] = [];
  /** Sessions still open; when the last one closes, nothing is held any more. */
  const live = new Set<postgres.Sql>();
  let done: (why: string) => void = () => {};
  const finished = new Promise<string>((resolve) => (done = resolve));
  const open = () => {
    const sql: postgres.Sql = postgres({
      host: spec.connection.host,
      port: spec.connection.port,
      user: spec.connection.user,
      password: spec.connection.password,
      database: spec.connection.database,
      max: 1,
      idle_timeout: 0,
      max_lifetime: 0,
      connect_timeout: 10,
      fetch_types: false,
      onnotice: () => {},
      connection: { application_name: HOLDER_APP },
      socket: () =>
        new Promise<net.Socket>((resolve, reject) => {
          const socket = net.connect({ host: spec.connection.host, port: spec.connection.port, noDelay: true });
          socket.once('error', reject);
          socket.once('connect', () => {
            socket.off('error', reject);
            // A session the server ends (restart, kill) holds nothing any more.
            socket.once('close', () => {
              if (live.delete(sql) && live.size === 0) done('the server closed its sessions');
            });
            resolve(socket);
          });
        }),
    } as postgres.Options<Record<string, never>>);
    clients.push(sql);
    live.add(sql);
    return sql;
  };
  const answer = (r: HolderReady) => process.stdout.write(`${JSON.stringify(r)}\n`);
  let held = 0;
  try {
    if (spec.kind === 'connections') {
      const want = spec.hold ?? Infinity;
      let full = false;
      while (held < want) {
        const sql = open();
        try {
          await sql`select 1`;
          held++;
        } catch (e) {
          clients.pop();
          live.delete(sql);
          void sql.end({ timeout: 0 }).catch(() => {});
          if ((e as { code?: string }).code === '53300' || /too many clients|remaining connection slots/.test((e as Error).message)) {
            full = true;
            break;
          }
          throw e;
        }
      }
      if (held === 0) throw Object.assign(new Error('the server had no connection slot left to take'), { code: '53300' });
      answer({ ok: true, held, full });
    } else {
      const sql = open();
      if (spec.kind === 'lock') {
        await sql.unsafe('begin');
        await sql.unsafe("set local lock_timeout = '10s'");
        await sql.unsafe(`lock table ${spec.table!} in access exclusive mode`);
      } else {
        // An xid and a snapshot held open: vacuum cannot remove what died after it.
        await sql.unsafe('begin isolation level repeatable read');
        await sql.unsafe('select txid_current()');
      }
      held = 1;
      answer({ ok: true, held });
    }
  } catch (e) {
    answer({ ok: false, error: (e as Error).message, code: (e as { code?: string }).code });
    await Promise.all(clients.map((c) => c.end({ timeout: 0 }).catch(() => {})));
    process.exit(1);
  }
  log(`holding ${held} session${held === 1 ? '' : 's'}${spec.forMs ? ` for ${spec.forMs / 1000} s` : ''}`);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => done(`${signal}: cleared`));
  const timer = spec.forMs ? setTimeout(() => done('its time ran out'), spec.forMs) : undefined;
  const keepAlive = setInterval(() => {}, 60_000);
  const why = await finished;
  clearTimeout(timer);
  clearInterval(keepAlive);
  log(`releasing: ${why}`);
  await Promise.all(clients.map((c) => c.end({ timeout: 2 }).catch(() => {})));
  if (spec.annotation && !why.includes('cleared')) await endAnnotation(spec.annotation.store, spec.annotation.id, new Date(), log);
  process.exit(0);
}

export function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => (text += d));
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}
