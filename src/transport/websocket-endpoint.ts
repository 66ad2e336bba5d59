import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { answerRaw } from '../http/router.js';
import { POSITIONS_SUBPROTOCOL } from '../protocol/position-frames.js';
import type { Admission } from '../session/admission.js';
import type { Sessions } from '../session/client-session.js';
import { CloseCode, type CloseReason } from './close-codes.js';
import { FrameWriter } from './frame-writer.js';
import { WebSocketConnection } from './websocket-connection.js';

/** The subprotocol the Seafile desktop client and SeaDrive offer. */
export const SEAFILE_SUBPROTOCOL = 'notification.seafile.com';

export interface EndpointOptions {
  sessions: Sessions;
  admission: Admission;
  maxFrameBytes: number;
  pingIntervalMs: number;
  deadPeerMs: number;
}

/**
 * Ticks of the liveness timer per ping interval, each pinging one slice of the connections (by
 * id): 100k pongs at once would hold the cores for seconds and delay events by as much.
 */
const PING_SLICES = 20;

/** Accepts subscriber WebSockets; one shared timer pings the silent ones and drops dead peers. */
export class WebSocketEndpoint {
  readonly connections = new Set<WebSocketConnection>();
  readonly #server: WebSocketServer;
  readonly #liveness: NodeJS.Timeout;
  /** Frames go straight to the TCP sockets under ws (frame-writer.ts: which relies on perMessageDeflate being off). */
  readonly #frames = new FrameWriter();
  #tick = 0;

  constructor(private readonly options: EndpointOptions) {
    this.#server = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.maxFrameBytes,
      // Echo the desktop client's subprotocol; a browser that offered none gets none back. A
      // client that offers the positions extension (docs/recovery.md) opts in to it.
      handleProtocols: (offered) =>
        offered.has(POSITIONS_SUBPROTOCOL) ? POSITIONS_SUBPROTOCOL : offered.has(SEAFILE_SUBPROTOCOL) ? SEAFILE_SUBPROTOCOL : false,
    });
    this.#liveness = setInterval(() => this.#checkLiveness(), Math.max(1, Math.floor(options.pingIntervalMs / PING_SLICES)));
    this.#liveness.unref();
  }

  /** Opens a connection, or answers the upgrade with an HTTP error when admission refuses it. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { sessions, admission } = this.options;
    const admitted = admission.admit(request, 'connection');
    if ('why' in admitted) {
      answerRaw(socket, admitted.status, admitted.message, admitted.retryAfterSeconds);
      return;
    }
    const { client, release } = admitted;
    let accepted = false;
    socket.once('close', () => {
      // The handshake failed (bad headers, the client went away): no connection will release it.
      if (!accepted) release();
    });
    this.#server.handleUpgrade(request, socket, head, (ws) => {
      accepted = true;
      const userAgent = request.headers['user-agent'];
      const onClose = (closed: WebSocketConnection, reason: CloseReason): void => {
        release();
        this.connections.delete(closed);
        sessions.metrics.connectionClosed(reason);
      };
      const tcp = { socket: socket as Socket, frames: this.#frames };
      const connection = new WebSocketConnection(ws, client, { sessions, sendQueueBytes: sessions.live.limits.sendQueueBytes, onClose }, tcp);
      this.connections.add(connection);
      sessions.metrics.connectionOpened();
      sessions.logger.debug({ connection: connection.id, remote: connection.remote, protocol: ws.protocol, userAgent }, 'websocket connected');
    });
  }

  #checkLiveness(): void {
    const now = this.options.sessions.now();
    const { pingIntervalMs, deadPeerMs } = this.options;
    const slice = this.#tick++ % PING_SLICES;
    for (const connection of this.connections) {
      const silentFor = now - connection.lastSeen;
      if (silentFor >= deadPeerMs) {
        this.options.sessions.logger.debug({ connection: connection.id, silentFor }, 'dead peer: no traffic, dropping');
        connection.terminate('dead-peer');
      } else if (connection.id % PING_SLICES === slice && silentFor >= pingIntervalMs / 2 && connection.isOpen) {
        connection.socket.ping();
      }
    }
  }

  /**
   * Closes the connections with `code`, the i-th of n at i/n of `windowMs`, so that their clients
   * do not all come back in the same second. Resolves once the last one was closed.
   */
  closeSpread(connections: readonly WebSocketConnection[], windowMs: number, code: number, reason: string): Promise<void> {
    const { now } = this.options.sessions;
    const total = connections.length;
    const started = now();
    let closed = 0;
    return new Promise<void>((resolve) => {
      const closeDue = (): void => {
        const due = windowMs <= 0 ? total : Math.min(total, Math.floor(((now() - started) * total) / windowMs) + 1);
        while (closed < due) {
          const connection = connections[closed++]!;
          if (connection.isOpen) connection.close(code, reason, 1000);
        }
        if (closed === total) {
          clearInterval(timer);
          resolve();
        }
      };
      const timer = setInterval(closeDue, 20);
      timer.unref();
      closeDue();
    });
  }

  /** Closes every connection with 1001 spread over `windowMs`, then waits (bounded) for them to go. */
  async drain(windowMs: number): Promise<void> {
    clearInterval(this.#liveness);
    const { now } = this.options.sessions;
    await this.closeSpread([...this.connections], windowMs, CloseCode.GoingAway, 'server shutting down');
    const deadline = now() + 2000;
    while (this.connections.size > 0 && now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const connection of this.connections) connection.terminate('going-away');
    this.#server.close();
  }
}
