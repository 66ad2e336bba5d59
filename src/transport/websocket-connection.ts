import type { WebSocket, RawData } from 'ws';
import { SubscribeRefused, verifySubscriberToken } from '../auth/subscriber-token.js';
import type { Hub } from '../hub/hub.js';
import type { Subscriber } from '../hub/subscriber.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { parseClientMessage, ProtocolError, type ClientMessage } from '../protocol/client-message.js';
import { encodeError, encodeJwtExpired } from '../protocol/event.js';
import { CloseCode, closeReasonOf, closeReasonOfFrameError, type CloseReason } from './close-codes.js';

export interface ConnectionContext {
  hub: Hub;
  key: Buffer;
  logger: Logger;
  metrics: Metrics;
  sendQueueBytes: number;
  now: () => number;
  /** Called once, when the socket has closed, with the first reason either side gave. */
  onClose: (connection: WebSocketConnection, reason: CloseReason) => void;
}

const SEND_OPTIONS = { binary: false, compress: false } as const;

let nextId = 1;

/** One subscriber's WebSocket: reads its messages, queues its events, tracks its liveness. */
export class WebSocketConnection implements Subscriber {
  readonly id = nextId++;
  /** Last inbound traffic of any kind (message, ping, pong), Unix milliseconds. */
  lastSeen: number;
  #open = true;
  /** Set by whichever side starts the close first; null while nobody has. */
  #closeReason: CloseReason | null = null;

  constructor(
    readonly socket: WebSocket,
    readonly remote: string,
    private readonly context: ConnectionContext,
  ) {
    this.lastSeen = context.now();
    socket.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    socket.on('ping', () => this.#seen());
    socket.on('pong', () => this.#seen());
    socket.on('close', (code) => this.#onClose(code));
    socket.on('error', (err: Error & { code?: string }) => {
      // ws reports a client frame that breaks a rule here, then closes with the matching code.
      this.#closeReason ??= closeReasonOfFrameError(err.code);
      context.logger.debug({ err, connection: this.id }, 'websocket error');
    });
  }

  get isOpen(): boolean {
    return this.#open;
  }

  send(frame: Buffer): void {
    if (!this.#open) return;
    if (this.socket.bufferedAmount + frame.length > this.context.sendQueueBytes) {
      this.#overflow();
      return;
    }
    this.socket.send(frame, SEND_OPTIONS);
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

  #seen(): void {
    this.lastSeen = this.context.now();
  }

  #stop(): void {
    if (!this.#open) return;
    this.#open = false;
    this.context.hub.removeSubscriber(this);
  }

  #onClose(code: number): void {
    this.#stop();
    // Nobody on our side started it: the client sent a close frame, or just went away (1006).
    this.context.onClose(this, this.#closeReason ?? (code === 1006 ? 'abnormal' : 'normal'));
  }

  #overflow(): void {
    this.context.logger.warn(
      { connection: this.id, remote: this.remote, queuedBytes: this.socket.bufferedAmount },
      'client is not reading its messages: send queue overflowed, closing the connection',
    );
    this.close(CloseCode.SendQueueOverflow, 'send queue overflow', 1000);
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    this.#seen();
    if (!this.#open) return;
    const { logger } = this.context;
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
    if (message.type === 'subscribe') {
      const now = this.context.now();
      for (const entry of message.entries) {
        try {
          this.context.hub.subscribe(this, verifySubscriberToken(entry.token ?? '', entry.repoId, this.context.key, now));
        } catch (err) {
          if (!(err instanceof SubscribeRefused)) throw err;
          this.context.metrics.subscribeRefused(err.reason);
          logger.debug({ connection: this.id, repoId: entry.repoId, reason: err.reason }, `subscribe refused: ${err.message}`);
          this.send(encodeJwtExpired(entry.repoId));
        }
      }
    } else {
      for (const repoId of message.repoIds) this.context.hub.unsubscribe(this, repoId);
    }
  }
}
