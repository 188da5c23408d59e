import { parentPort, workerData } from 'node:worker_threads';
import { errorToData } from './thread-handle.js';
import { LoadThread, type ThreadJob } from './thread.js';

/**
 * A worker thread (-j N > 1): runs one LoadThread and talks to the runner in messages —
 * in: { run: startEpochMs } | { stop: true }; out: connected, interval, done, failed.
 */
const port = parentPort!;
const thread = new LoadThread(workerData as ThreadJob, (data) => port.postMessage({ type: 'interval', data }));
port.on('message', (m: { run?: number; stop?: boolean }) => {
  if (m.stop) thread.stop();
  if (m.run !== undefined) {
    thread.run(m.run).then(
      (end) => port.postMessage({ type: 'done', end, exceeded: thread.exceeded }),
      (e: unknown) => port.postMessage({ type: 'failed', error: errorToData(e) }),
    );
  }
});
thread.connect().then(
  () => port.postMessage({ type: 'connected' }),
  (e: unknown) => port.postMessage({ type: 'failed', error: errorToData(e) }),
);
