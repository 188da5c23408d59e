import net from 'node:net';

/** Whether 127.0.0.1:port can be bound right now. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** The first free port in [from, to] not in `taken`, or undefined. */
export async function pickFreePort(from: number, to: number, taken: Set<number>): Promise<number | undefined> {
  for (let port = from; port <= to; port++) {
    if (taken.has(port)) continue;
    if (await portFree(port)) return port;
  }
  return undefined;
}
