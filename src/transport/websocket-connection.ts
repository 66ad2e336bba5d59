import type { Socket } from 'node:net';
import type { WebSocket, RawData } from 'ws';
import { parseClientMessage, ProtocolError, type ClientMessage } from '../protocol/client-message.js';
import { encodeError } from '../protocol/event.js';
import type { Outgoing } from '../protocol/outgoing.js';
import { POSITIONS_SUBPROTOCOL } from '../protocol/position-frames.js';
import { ClientSession, type SessionEnd, type Sessions } from '../session/client-session.js';
import type { ClientAddress } from './client-address.js';
import { CloseCode, closeReasonOf, closeReasonOfFrameError, type CloseReason } from './close-codes.js';
import type { FrameWriter } from './frame-writer.js';

export interface ConnectionContext {
  sessions: Sessions;
  sendQueueBytes: number;
  /** Called once, when the socket has closed, with the first reason either side gave. */
  onClose: (connection: WebSocketConnection, reason: CloseReason) => void;
}

const SEND_OPTIONS = { binary: false, compress: false } as const;
const WS_OPEN = 1;

/** How a WebSocket tells its client which rule ended its session. */
const CLOSE_FOR: Record<SessionEnd, [code: number, reason: string]> = {
  'failed-subscribes': [CloseCode.TooManyFailedSubscribes, 'too many failed subscribes'],
  'user-cap': [CloseCode.TooManyConnectionsForUser, 'too many connections for this user'],
  'subscribe-timeout': [CloseCode.SubscribeTimeout, 'no subscription'],
};

/** ws calls listeners with the WebSocket as `this`: shared ones find their connection here, with no closures. */
const CONNECTION = Symbol('connection');
type Tagged = WebSocket & { [CONNECTION]: WebSocketConnection };

function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  (this as Tagged)[CONNECTION].handleMessage(data, isBinary);
}
function onPingOrPong(this: WebSocket): void {
  (this as Tagged)[CONNECTION].seen();
}
function onClose(this: WebSocket, code: number): void {
  (this as Tagged)[CONNECTION].handleClose(code);
}
function onError(this: WebSocket, err: Error & { code?: string }): void {
  (this as Tagged)[CONNECTION].handleError(err);
}

/** A client session over a WebSocket: reads its messages, writes its frames, tracks its liveness. */
export class WebSocketConnection extends ClientSession {
  /** Last inbound traffic of any kind (message, ping, pong), Unix milliseconds. */
  lastSeen: number;
  #open = true;
  /** Set by whichever side starts the close first; null while nobody has. */
  #closeReason: CloseReason | null = null;

  /** @param tcp the socket under ws and the frame writer (frame-writer.ts); null: `socket.send` (unit tests). */
  constructor(
    readonly socket: WebSocket,
    client: ClientAddress,
    private readonly context: ConnectionContext,
    private readonly tcp: { socket: Socket; frames: FrameWriter } | null = null,
  ) {
    super(context.sessions, client, 'connection', socket.protocol === POSITIONS_SUBPROTOCOL);
    this.lastSeen = context.sessions.now();
    (socket as Tagged)[CONNECTION] = this;
    socket.on('message', onMessage);
    socket.on('ping', onPingOrPong);
    socket.on('pong', onPingOrPong);
    socket.on('close', onClose);
    socket.on('error', onError);
  }

  get isOpen(): boolean {
    return this.#open;
  }

  protected write({ frame }: Outgoing): void {
    if (!this.#open) return;
    const { socket, tcp } = this;
    // bufferedAmount counts what ws and we queued on the TCP socket, corked bytes included.
    if (socket.bufferedAmount + frame.length > this.context.sendQueueBytes) {
      this.sessions.logger.warn(
        { connection: this.id, remote: this.remote, queuedBytes: socket.bufferedAmount },
        'client is not reading its messages: send queue overflowed, closing the connection',
      );
      this.close(CloseCode.SendQueueOverflow, 'send queue overflow', 1000);
    } else if (tcp === null) {
      socket.send(frame, SEND_OPTIONS);
    } else if (socket.readyState === WS_OPEN && tcp.socket.writable) {
      // Not after ws sent a close frame (CLOSING): nothing may follow it on the wire.
      tcp.frames.write(tcp.socket, tcp.frames.frameOf(frame));
    }
  }

  protected end(why: SessionEnd): void {
    this.close(...CLOSE_FOR[why]);
  }

  /** Closes with a code the client sees; a peer that does not answer is cut off after `graceMs`. */
  close(code: number, reason: string, graceMs = 2000): void {
    this.#closeReason ??= closeReasonOf(code);
    this.#stop();
    this.socket.close(code, reason);
    setTimeout(() => this.socket.terminate(), graceMs).unref();
  }

  /** Drops the TCP connection without a close handshake. */
  terminate(reason: CloseReason): void {
    this.#closeReason ??= reason;
    this.#stop();
    this.socket.terminate();
  }

  seen(): void {
    this.lastSeen = this.sessions.now();
  }

  /** ws reports a client frame that breaks a rule here, then closes with the matching code. */
  handleError(err: Error & { code?: string }): void {
    this.#closeReason ??= closeReasonOfFrameError(err.code);
    this.sessions.logger.debug({ err, connection: this.id }, 'websocket error');
  }

  handleClose(code: number): void {
    this.#stop();
    // Nobody on our side started it: the client sent a close frame, or just went away (1006).
    this.context.onClose(this, this.#closeReason ?? (code === 1006 ? 'abnormal' : 'normal'));
  }

  handleMessage(data: RawData, isBinary: boolean): void {
    this.seen();
    if (!this.#open) return;
    const { logger } = this.sessions;
    if (isBinary) {
      logger.debug({ connection: this.id }, 'binary message from client: closing');
      this.close(CloseCode.UnsupportedData, 'binary messages are not supported');
      return;
    }
    let message: ClientMessage;
    try {
      message = parseClientMessage(data.toString());
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      logger.debug({ connection: this.id, remote: this.remote, reason: err.message }, 'bad message from client');
      if (err.failure === 'unknown-type') this.send(encodeError(err.message));
      else this.close(CloseCode.InvalidPayload, err.message.slice(0, 120));
      return;
    }
    if (message.ignored > 0) {
      logger.debug({ connection: this.id, ignored: message.ignored }, `${message.type} entries without a valid id ignored`);
    }
    if (message.type === 'subscribe') this.subscribe(message.entries);
    else this.unsubscribe(message.repoIds);
  }

  #stop(): void {
    if (!this.#open) return;
    this.#open = false;
    this.leave();
  }
}
