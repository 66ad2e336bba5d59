/**
 * A TCP relay between one node and Redis that a test can cut and restore, so that one node
 * loses Redis while the others keep it (a network partition, not a Redis crash).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export class CuttableLink {
  readonly #sockets = new Set<Socket>();
  #cut = false;

  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {}

  static async open(targetPort: number, targetHost = '127.0.0.1'): Promise<CuttableLink> {
    let link: CuttableLink | null = null;
    const server = createServer((client) => {
      if (link === null || link.#cut) {
        client.destroy();
        return;
      }
      const upstream = connect(targetPort, targetHost);
      for (const socket of [client, upstream]) {
        link.#sockets.add(socket);
        socket.on('close', () => link!.#sockets.delete(socket));
        socket.on('error', () => {});
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    link = new CuttableLink(server, (server.address() as { port: number }).port);
    return link;
  }

  /** Resets every relayed connection and refuses new ones until `restore`. */
  cut(): void {
    this.#cut = true;
    for (const socket of this.#sockets) socket.destroy();
  }

  restore(): void {
    this.#cut = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
