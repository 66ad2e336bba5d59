import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

/**
 * A hand-driven WebSocket client over a plain TCP socket, for peers the `ws` client cannot
 * imitate: one that stops reading, one that never answers pings.
 */
export class RawWebSocket {
  readonly closed: Promise<void>;
  received = 0;

  private constructor(readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static async connect(port: number, path = '/'): Promise<RawWebSocket> {
    const socket = connect(port, '127.0.0.1');
    const client = new RawWebSocket(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
      });
      let head = '';
      const onData = (chunk: Buffer) => {
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        socket.off('data', onData);
        if (head.startsWith('HTTP/1.1 101')) resolve();
        else reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
      };
      socket.on('data', onData);
    });
    socket.on('data', (chunk: Buffer) => (client.received += chunk.length));
    return client;
  }

  /** Sends one masked frame (opcode 1 text, 9 ping). */
  sendFrame(opcode: number, payload: Buffer | string): void {
    const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
    const mask = randomBytes(4);
    let header: Buffer;
    if (data.length < 126) {
      header = Buffer.from([0x80 | opcode, 0x80 | data.length]);
    } else {
      header = Buffer.alloc(4);
      header[0] = 0x80 | opcode;
      header[1] = 0x80 | 126;
      header.writeUInt16BE(data.length, 2);
    }
    const masked = Buffer.from(data);
    for (let i = 0; i < masked.length; i++) masked[i]! ^= mask[i % 4]!;
    this.socket.write(Buffer.concat([header, mask, masked]));
  }

  /** Stops reading: the kernel buffers fill and the server's writes back up. */
  stall(): void {
    this.socket.pause();
  }

  destroy(): void {
    this.socket.destroy();
  }
}
