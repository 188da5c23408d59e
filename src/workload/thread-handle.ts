import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ProdhomeError, type ErrorCode } from '../errors.js';
import { LoadThread, type IntervalData, type ThreadJob } from './thread.js';
import { ConnectionLost } from './wire.js';

/** The runner's view of a thread, the same whether it runs in this thread (-j 1) or a worker. */
export interface ThreadHandle {
  connect(): Promise<void>;
  /** Resolves with the time it ended and whether it stopped for --max-errors. */
  run(startEpochMs: number): Promise<{ end: number; exceeded: boolean }>;
  stop(): void;
  dispose(): Promise<void>;
}

export function inProcessThread(job: ThreadJob, onInterval: (d: IntervalData) => void): ThreadHandle {
  const thread = new LoadThread(job, onInterval);
  return {
    connect: () => thread.connect(),
    run: async (start) => ({ end: await thread.run(start), exceeded: thread.exceeded }),
    stop: () => thread.stop(),
    dispose: async () => undefined,
  };
}

type FromWorker =
  | { type: 'connected' }
  | { type: 'interval'; data: IntervalData }
  | { type: 'done'; end: number; exceeded: boolean }
  | { type: 'failed'; error: ErrorData };

export function workerThread(job: ThreadJob, onInterval: (d: IntervalData) => void): ThreadHandle {
  const worker = new Worker(workerFile(), { workerData: job });
  let connected: { resolve: () => void; reject: (e: Error) => void } | undefined;
  let finished: { resolve: (r: { end: number; exceeded: boolean }) => void; reject: (e: Error) => void } | undefined;
  let failure: Error | undefined;
  const fail = (e: Error) => {
    failure ??= e;
    connected?.reject(e);
    finished?.reject(e);
  };
  worker.on('message', (m: FromWorker) => {
    if (m.type === 'connected') connected?.resolve();
    else if (m.type === 'interval') onInterval(m.data);
    else if (m.type === 'done') finished?.resolve({ end: m.end, exceeded: m.exceeded });
    else fail(errorFromData(m.error));
  });
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`load worker thread exited (code ${code}) before finishing`)));
  return {
    connect: () =>
      failure ? Promise.reject(failure) : new Promise((resolve, reject) => (connected = { resolve, reject })),
    run: (start) => {
      if (failure) return Promise.reject(failure);
      const p = new Promise<{ end: number; exceeded: boolean }>((resolve, reject) => (finished = { resolve, reject }));
      worker.postMessage({ run: start });
      return p;
    },
    stop: () => worker.postMessage({ stop: true }),
    dispose: async () => {
      await worker.terminate();
    },
  };
}

/** The compiled worker; from the TypeScript sources (tests), the built one in dist/. */
function workerFile(): URL {
  const here = fileURLToPath(import.meta.url);
  if (!here.endsWith('.ts')) return new URL('./worker.js', import.meta.url);
  const built = path.resolve(path.dirname(here), '../../dist/workload/worker.js');
  if (!fs.existsSync(built)) throw new Error(`worker threads need the built ${built}; run npm run build`);
  return new URL(`file://${built}`);
}

/** Errors cross threads as data; these keep what the CLI needs (code, message, hint). */
export interface ErrorData {
  kind: 'prodhome' | 'connection' | 'other';
  code?: string;
  message: string;
  hint?: string;
  stack?: string;
}

export function errorToData(e: unknown): ErrorData {
  if (e instanceof ProdhomeError) return { kind: 'prodhome', code: e.code, message: e.message, hint: e.hint };
  if (e instanceof ConnectionLost) return { kind: 'connection', code: e.code, message: e.message };
  const err = e instanceof Error ? e : new Error(String(e));
  return { kind: 'other', message: err.message, stack: err.stack };
}

function errorFromData(d: ErrorData): Error {
  if (d.kind === 'prodhome') return new ProdhomeError(d.code as ErrorCode, d.message, { hint: d.hint });
  if (d.kind === 'connection') return new ConnectionLost(d.code ?? '08006', d.message);
  const e = new Error(d.message);
  e.stack = d.stack;
  return e;
}
