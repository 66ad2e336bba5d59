/**
 * A pass-through HTTP proxy in front of the server whose paths can be refused or cut at will:
 * a corporate proxy that refuses WebSocket upgrades (403) or buffers streams, or a network
 * that drops every connection.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export class SwitchableProxy {
  /** Refuse WebSocket upgrades with 403, as a proxy without WebSocket support does. */
  refuseUpgrades = false;
  /** Paths (without the query) answered 403. */
  readonly refusedPaths = new Set<string>();
  /** Hold every answer until it is complete, as a buffering proxy does: an SSE stream never gets through. */
  bufferAnswers = false;
  /** Every connection refused (reset) while true: the network is down. */
  down = false;
  upgradesRefused = 0;
  readonly #open = new Set<Duplex>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly upstreamPort: number,
  ) {}

  static async start(upstreamPort: number, port = 0): Promise<SwitchableProxy> {
    let proxy!: SwitchableProxy;
    const server = createServer((request, response) => proxy.#forward(request, response));
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => proxy.#tunnel(request, socket, head));
    server.on('connection', (socket: Socket) => {
      if (proxy.down) socket.destroy();
      else proxy.#track(socket);
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    proxy = new SwitchableProxy(server, (server.address() as { port: number }).port, upstreamPort);
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Drops every connection open through the proxy now (and refuses new ones while `down`). */
  cutAll(): void {
    for (const socket of this.#open) socket.destroy();
  }

  async stop(): Promise<void> {
    this.cutAll();
    await new Promise((resolve) => this.server.close(resolve));
  }

  #track(socket: Duplex): void {
    this.#open.add(socket);
    socket.once('close', () => this.#open.delete(socket));
  }

  #forward(request: IncomingMessage, response: ServerResponse): void {
    const path = (request.url ?? '/').split('?', 1)[0]!;
    if (this.refusedPaths.has(path)) {
      response.writeHead(403, { 'content-type': 'text/plain' }).end('refused by the proxy\n');
      return;
    }
    const upstream = httpRequest({ host: '127.0.0.1', port: this.upstreamPort, method: request.method, path: request.url, headers: request.headers }, (answer) => {
      if (!this.bufferAnswers) {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
        return;
      }
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        const { 'transfer-encoding': _chunked, ...headers } = answer.headers;
        response.writeHead(answer.statusCode ?? 502, headers).end(Buffer.concat(chunks));
      });
    });
    upstream.on('socket', (socket) => this.#track(socket));
    upstream.on('error', () => {
      if (!response.headersSent) response.writeHead(502).end();
      else response.destroy();
    });
    request.pipe(upstream);
  }

  #tunnel(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.refuseUpgrades) {
      this.upgradesRefused++;
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const upstream = connect(this.upstreamPort, '127.0.0.1', () => {
      const headers = Object.entries(request.headers).flatMap(([name, value]) => (Array.isArray(value) ? value : [value]).map((v) => `${name}: ${v}\r\n`));
      upstream.write(`${request.method} ${request.url} HTTP/1.1\r\n${headers.join('')}\r\n`);
      upstream.write(head);
      upstream.pipe(socket).pipe(upstream);
    });
    this.#track(upstream);
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  }
}
