import type { AddressInfo, Server } from 'node:net';
import type { Duplex } from 'node:stream';

/** Listens on a free port of 127.0.0.1 and resolves that port. */
export async function listenOnLoopback(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

/** Sockets a test server holds open, so stop() can destroy them rather than wait for keep-alive. */
export class OpenSockets {
  private readonly sockets = new Set<Duplex>();
  add(s: Duplex): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
  }
  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
  }
}
