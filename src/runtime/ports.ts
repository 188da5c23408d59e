import net from 'node:net';

/** Whether 127.0.0.1:port can be bound right now. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * The first free port in [from, to] not in `taken`, scanning from `startAt` and wrapping around,
 * or undefined. Free now is not free later: the caller binds, and picks again if that fails.
 */
export async function pickFreePort(from: number, to: number, taken: Set<number>, startAt = from): Promise<number | undefined> {
  const size = to - from + 1;
  for (let i = 0; i < size; i++) {
    const port = from + ((startAt - from + i) % size);
    if (taken.has(port)) continue;
    if (await portFree(port)) return port;
  }
  return undefined;
}

/** A port for a retry after a lost bind race: scanning from a random place, so two racing labs part ways. */
export function pickAnotherPort(from: number, to: number, taken: Set<number>): Promise<number | undefined> {
  return pickFreePort(from, to, taken, from + Math.floor(Math.random() * (to - from + 1)));
}
