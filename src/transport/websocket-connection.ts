import type { Socket } from 'node:net';
import type { WebSocket, RawData } from 'ws';
import type { VerificationKeys } from '../auth/key-ring.js';
import { SubscribeRefused, verifySubscriberToken, type SubscriberGrant } from '../auth/subscriber-token.js';
import type { Hub } from '../hub/hub.js';
import type { Subscriber } from '../hub/subscriber.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { parseClientMessage, ProtocolError, type ClientMessage } from '../protocol/client-message.js';
import { encodeError, encodeJwtExpired } from '../protocol/event.js';
import type { Outgoing } from '../protocol/outgoing.js';
import { POSITIONS_SUBPROTOCOL } from '../protocol/position-frames.js';
import { CloseCode, closeReasonOf, closeReasonOfFrameError, type CloseReason } from './close-codes.js';
import { userCapRefusal } from './connection-caps.js';
import { FailureAllowance } from './failure-allowance.js';
import type { FrameWriter } from './frame-writer.js';

/** Per-connection limits (config `Limits`); absent: none. */
export interface ConnectionLimits {
  maxLibraries: number;
  /** 0: no deadline. */
  subscribeTimeoutMs: number;
  /** 0: no limit. */
  maxFailedSubscribesPerMinute: number;
  /** Connections that may hold subscriptions under one user name at once; 0 or absent: no limit. */
  maxConnectionsPerUser?: number;
}

export interface ConnectionContext {
  hub: Hub;
  /** A KeyRing follows key rotations (SIGHUP) for connections already open. */
  key: VerificationKeys;
  logger: Logger;
  metrics: Metrics;
  sendQueueBytes: number;
  now: () => number;
  /** Called once, when the socket has closed, with the first reason either side gave. */
  onClose: (connection: WebSocketConnection, reason: CloseReason) => void;
  limits?: ConnectionLimits;
  /** The `User-Agent` of the upgrade request, if any (desktop clients from 9.0.16 send `Seafile/<version> (<os>)`). */
  userAgent?: string;
}

const SEND_OPTIONS = { binary: false, compress: false } as const;
const WS_OPEN = 1;

let nextId = 1;

/**
 * ws emits with the WebSocket as `this`; one set of listeners shared by every connection
 * finds its connection through this property, so a connection costs no closures.
 */
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

/** One subscriber's WebSocket: reads its messages, queues its events, tracks its liveness. */
export class WebSocketConnection implements Subscriber {
  readonly id = nextId++;
  /** Opened with the positions subprotocol: positioned frames, `subscribed`, `resync`, and `since`. */
  readonly positioned: boolean;

  get userAgent(): string | undefined {
    return this.context.userAgent;
  }
  /** Last inbound traffic of any kind (message, ping, pong), Unix milliseconds. */
  lastSeen: number;
  #open = true;
  /** Set by whichever side starts the close first; null while nobody has. */
  #closeReason: CloseReason | null = null;
  /** Closes a connection that has not subscribed anything in time; cleared by its first subscription. */
  #subscribeDeadline: NodeJS.Timeout | undefined;
  readonly #failures: FailureAllowance;

  /**
   * @param tcp the TCP socket under the WebSocket and the process's frame writer: events are
   * written to the socket directly as pre-built frames, batched under a burst (frame-writer.ts). Without it
   * (unit tests with a fake WebSocket) events go through `socket.send`.
   */
  constructor(
    readonly socket: WebSocket,
    readonly remote: string,
    private readonly context: ConnectionContext,
    private readonly tcp: { socket: Socket; frames: FrameWriter } | null = null,
  ) {
    this.lastSeen = context.now();
    this.positioned = socket.protocol === POSITIONS_SUBPROTOCOL;
    (socket as Tagged)[CONNECTION] = this;
    socket.on('message', onMessage);
    socket.on('ping', onPingOrPong);
    socket.on('pong', onPingOrPong);
    socket.on('close', onClose);
    socket.on('error', onError);
    this.#failures = new FailureAllowance(context.limits?.maxFailedSubscribesPerMinute ?? 0, this.lastSeen);
    const timeoutMs = context.limits?.subscribeTimeoutMs ?? 0;
    if (timeoutMs > 0) {
      this.#subscribeDeadline = setTimeout(() => this.#noSubscription(timeoutMs), timeoutMs);
      this.#subscribeDeadline.unref();
    }
  }

  get isOpen(): boolean {
    return this.#open;
  }

  send({ frame }: Outgoing): void {
    if (!this.#open) return;
    const { socket, tcp } = this;
    // bufferedAmount counts what ws and we queued on the TCP socket, corked bytes included.
    if (socket.bufferedAmount + frame.length > this.context.sendQueueBytes) {
      this.#overflow();
      return;
    }
    if (tcp === null) {
      socket.send(frame, SEND_OPTIONS);
    } else if (socket.readyState === WS_OPEN && tcp.socket.writable) {
      // Not after ws sent a close frame (CLOSING): nothing may follow it on the wire.
      tcp.frames.write(tcp.socket, tcp.frames.frameOf(frame));
    }
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

  /** Inbound traffic of any kind. */
  seen(): void {
    this.lastSeen = this.context.now();
  }

  /** ws reports a client frame that breaks a rule here, then closes with the matching code. */
  handleError(err: Error & { code?: string }): void {
    this.#closeReason ??= closeReasonOfFrameError(err.code);
    this.context.logger.debug({ err, connection: this.id }, 'websocket error');
  }

  #stop(): void {
    if (!this.#open) return;
    this.#open = false;
    clearTimeout(this.#subscribeDeadline);
    this.context.hub.removeSubscriber(this);
  }

  handleClose(code: number): void {
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

  handleMessage(data: RawData, isBinary: boolean): void {
    this.seen();
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
      let refusedForUser = false;
      for (const entry of message.entries) {
        if (this.#overLibraryLimit(entry.repoId)) continue;
        let grant: SubscriberGrant;
        try {
          grant = verifySubscriberToken(entry.token ?? '', entry.repoId, this.context.key, now);
        } catch (err) {
          if (!(err instanceof SubscribeRefused)) throw err;
          this.context.metrics.subscribeRefused(err.reason);
          logger.debug({ connection: this.id, repoId: entry.repoId, reason: err.reason }, `subscribe refused: ${err.message}`);
          if (!this.#allowFailure(now)) return;
          this.send(encodeJwtExpired(entry.repoId));
          continue;
        }
        if (this.#overUserLimit(grant)) {
          refusedForUser = true;
          continue;
        }
        this.context.hub.subscribe(this, grant, this.positioned ? entry.since : undefined);
        clearTimeout(this.#subscribeDeadline);
      }
      // Kept open, it would hold nothing but a socket until subscribe_timeout; the code tells why.
      if (refusedForUser && this.context.hub.index.countOf(this) === 0) {
        this.close(CloseCode.TooManyConnectionsForUser, 'too many connections for this user');
      }
    } else {
      for (const repoId of message.repoIds) this.context.hub.unsubscribe(this, repoId);
    }
  }

  /**
   * A connection becomes one of its user's when it first holds a subscription under that user
   * name; one more than `maxConnectionsPerUser` is refused with an `error` message.
   */
  #overUserLimit(grant: SubscriberGrant): boolean {
    const { hub, metrics, logger } = this.context;
    const refusal = userCapRefusal({ index: hub.index, metrics, logger }, grant.username, hub.index.holdsUser(this, grant.username), this.context.limits?.maxConnectionsPerUser ?? 0, {
      connection: this.id,
      remote: this.remote,
      repoId: grant.repoId,
    });
    if (refusal === null) return false;
    this.send(encodeError(refusal, grant.repoId));
    return true;
  }

  /** A new library past the per-connection limit is refused with an `error` message; the connection stays. */
  #overLibraryLimit(repoId: string): boolean {
    const max = this.context.limits?.maxLibraries;
    const { index } = this.context.hub;
    if (max === undefined || index.get(this, repoId) !== undefined || index.countOf(this) < max) return false;
    this.context.metrics.subscribeLimited('library-cap');
    this.context.logger.debug({ connection: this.id, repoId, max }, 'subscribe refused: library limit reached');
    this.send(encodeError(`subscribe refused: this connection already follows ${max} libraries, the server's limit; unsubscribe one first`, repoId));
    return true;
  }

  /**
   * Takes one refused subscribe from the bucket; when it is empty the connection is closed.
   * Closing, not slowing down: a client that keeps presenting bad tokens is misconfigured or
   * probing, and the stock clients come back only after 60 s, which damps the loop for free.
   */
  #allowFailure(now: number): boolean {
    const perMinute = this.context.limits?.maxFailedSubscribesPerMinute ?? 0;
    if (perMinute === 0) return true;
    if (this.#failures.take(now, perMinute)) return true;
    this.context.logger.warn(
      { connection: this.id, remote: this.remote, perMinute },
      'too many refused subscribes (bad or expired tokens): closing the connection',
    );
    this.close(CloseCode.TooManyFailedSubscribes, 'too many failed subscribes');
    return false;
  }

  #noSubscription(timeoutMs: number): void {
    if (!this.#open || this.context.hub.index.countOf(this) > 0) return;
    this.context.logger.debug({ connection: this.id, remote: this.remote, timeoutMs }, 'no subscription in time: closing');
    this.close(CloseCode.SubscribeTimeout, 'no subscription');
  }
}
