/**
 * A subscriber connection as lean as a load generator can hold: a plain TCP socket, the
 * RFC 6455 client handshake, masked frames out, and frames in parsed straight from one read
 * buffer shared by every connection of the process (Node's `onread`), with no stream, no
 * event per message and no allocation per read. With `ws` clients the load processes of
 * `scale` used about as much CPU per message as the server whose cores they share.
 *
 * Enough of the protocol for the bench: text frames to `onText`, pings answered, a close
 * started or answered; the server sends neither fragments nor masked frames, so either is an
 * error.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const HEADER_END = Buffer.from('\r\n\r\n');
const OPCODE_TEXT = 0x1;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;

/** One buffer for every read of the process: frames are handled before the next read. */
const readBuffer = Buffer.allocUnsafe(256 * 1024);

/** A masked client frame (RFC 6455 §5.3), final, of `opcode`; payloads under 64 KiB. */
export function clientFrame(opcode: number, payload: Buffer): Buffer {
  const header = payload.length < 126 ? 2 : 4;
  const frame = Buffer.allocUnsafe(header + 4 + payload.length);
  frame[0] = 0x80 | opcode;
  if (header === 2) {
    frame[1] = 0x80 | payload.length;
  } else {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(payload.length, 2);
  }
  const mask = randomBytes(4);
  mask.copy(frame, header);
  for (let i = 0; i < payload.length; i++) frame[header + 4 + i] = payload[i]! ^ mask[i & 3]!;
  return frame;
}

export class LeanSubscriber {
  readonly closed: Promise<void>;
  #socket: Socket;
  #upgraded = false;
  /** Bytes of an incomplete frame (or of the handshake answer) kept for the next read. */
  #carry: Buffer | null = null;
  #onText: (payload: Buffer) => void;
  #onPong: (() => void) | null = null;
  #failed: ((error: Error) => void) | null = null;

  private constructor(socket: Socket, onText: (payload: Buffer) => void) {
    this.#socket = socket;
    this.#onText = onText;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  get isOpen(): boolean {
    return this.#upgraded && !this.#socket.destroyed;
  }

  /**
   * Connects to `url` (ws://host:port/path) from `localAddress`, sends `subscribe` as a text
   * frame, then a ping; resolves at the pong, which the server handles after the subscribe
   * (or, without `confirm`, once the subscribe is sent).
   */
  static open(
    url: string,
    localAddress: string | undefined,
    subscribe: string,
    onText: (payload: Buffer) => void,
    timeoutMs: number,
    confirm = true,
  ): Promise<LeanSubscriber> {
    const target = new URL(url);
    const key = randomBytes(16).toString('base64');
    const expectedAccept = createHash('sha1').update(key + ACCEPT_GUID).digest('base64');
    let subscriber: LeanSubscriber | null = null;
    const socket = connect({
      host: target.hostname,
      port: Number(target.port),
      localAddress,
      onread: {
        buffer: readBuffer,
        callback: (bytes: number) => {
          subscriber!.#read(readBuffer.subarray(0, bytes), expectedAccept);
          return true; // false would pause the socket
        },
      },
    });
    subscriber = new LeanSubscriber(socket, onText);
    const self = subscriber;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => self.#fail(new Error(`no answer to the handshake within ${timeoutMs} ms`)), timeoutMs);
      self.#failed = (error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      };
      socket.once('error', (error) => self.#fail(error));
      socket.once('close', () => self.#fail(new Error('connection closed before the subscription was confirmed')));
      socket.once('connect', () => {
        socket.setNoDelay(true);
        socket.write(
          `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
      });
      const opened = (): void => {
        clearTimeout(timer);
        self.#failed = null;
        self.#onPong = null;
        resolve(self);
      };
      self.#onPong = opened;
      self.#afterUpgrade = () => {
        socket.write(clientFrame(OPCODE_TEXT, Buffer.from(subscribe)));
        if (confirm) socket.write(clientFrame(OPCODE_PING, Buffer.alloc(0)));
        else opened();
      };
    });
  }

  #afterUpgrade: () => void = () => undefined;

  terminate(): void {
    this.#socket.destroy();
  }

  /** Starts the close handshake (1000); resolves when the server has closed the connection. */
  close(): Promise<void> {
    if (!this.#closing && !this.#socket.destroyed) {
      this.#closing = true;
      const normal = Buffer.alloc(2);
      normal.writeUInt16BE(1000);
      this.#socket.write(clientFrame(OPCODE_CLOSE, normal));
    }
    return this.closed;
  }

  #closing = false;

  #fail(error: Error): void {
    const failed = this.#failed;
    this.#failed = null;
    if (failed !== null) failed(error);
    else this.#socket.destroy();
  }

  #read(chunk: Buffer, expectedAccept: string): void {
    let data = this.#carry === null ? chunk : Buffer.concat([this.#carry, chunk]);
    this.#carry = null;
    if (!this.#upgraded) {
      const end = data.indexOf(HEADER_END);
      if (end < 0) {
        this.#carry = Buffer.from(data);
        return;
      }
      const head = data.subarray(0, end).toString('latin1');
      const accept = /\r\nsec-websocket-accept: *([^\r]+)/i.exec(head)?.[1];
      if (!head.startsWith('HTTP/1.1 101') || accept !== expectedAccept) {
        this.#fail(new Error(`handshake refused: ${head.split('\r\n')[0]}`));
        return;
      }
      this.#upgraded = true;
      this.#afterUpgrade();
      data = data.subarray(end + HEADER_END.length);
    }
    const at = this.#frames(data);
    // A partial frame is copied: the shared buffer is overwritten by the next read.
    if (at < data.length) this.#carry = Buffer.from(data.subarray(at));
  }

  /** Handles every complete frame in `data`; returns where the first incomplete one starts. */
  #frames(data: Buffer): number {
    let at = 0;
    while (data.length - at >= 2) {
      const first = data[at]!;
      const second = data[at + 1]!;
      if ((first & 0x80) === 0 || (second & 0x80) !== 0) {
        this.#fail(new Error('the server sent a fragmented or masked frame'));
        return data.length;
      }
      let length = second & 0x7f;
      let header = 2;
      if (length === 126) {
        if (data.length - at < 4) break;
        length = data.readUInt16BE(at + 2);
        header = 4;
      } else if (length === 127) {
        if (data.length - at < 10) break;
        length = data.readUInt32BE(at + 2) * 2 ** 32 + data.readUInt32BE(at + 6);
        header = 10;
      }
      if (data.length - at < header + length) break;
      const payload = data.subarray(at + header, at + header + length);
      at += header + length;
      switch (first & 0x0f) {
        case OPCODE_TEXT:
          this.#onText(payload);
          break;
        case OPCODE_PING:
          this.#socket.write(clientFrame(OPCODE_PONG, Buffer.from(payload)));
          break;
        case OPCODE_PONG:
          this.#onPong?.();
          break;
        case OPCODE_CLOSE:
          // The server's answer to our close, or its own close: answer that one, then end.
          if (this.#closing) this.#socket.end();
          else this.#socket.end(clientFrame(OPCODE_CLOSE, Buffer.from(payload.subarray(0, 2))));
          this.#closing = true;
          return data.length;
        default:
          break;
      }
    }
    return at;
  }
}
