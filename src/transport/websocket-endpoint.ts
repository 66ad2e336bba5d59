import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { Hub } from '../hub/hub.js';
import type { Logger } from '../log.js';
import { NO_METRICS, type Metrics } from '../metrics/metrics.js';
import { CloseCode } from './close-codes.js';
import { WebSocketConnection } from './websocket-connection.js';

/** The subprotocol the Seafile desktop client and SeaDrive offer. */
export const SEAFILE_SUBPROTOCOL = 'notification.seafile.com';

export interface EndpointOptions {
  hub: Hub;
  key: Buffer;
  logger: Logger;
  /** Where connections opened and closed (by reason) and refused subscribes are counted. */
  metrics?: Metrics;
  maxFrameBytes: number;
  sendQueueBytes: number;
  pingIntervalMs: number;
  deadPeerMs: number;
  now?: () => number;
}

/**
 * Accepts subscriber WebSockets and keeps them alive: one shared timer pings the connections
 * that have been silent and drops those silent past the dead-peer timeout.
 */
export class WebSocketEndpoint {
  readonly connections = new Set<WebSocketConnection>();
  readonly #metrics: Metrics;
  readonly #server: WebSocketServer;
  readonly #liveness: NodeJS.Timeout;
  readonly #now: () => number;

  constructor(private readonly options: EndpointOptions) {
    this.#now = options.now ?? Date.now;
    this.#metrics = options.metrics ?? NO_METRICS;
    this.#server = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.maxFrameBytes,
      // Echo the desktop client's subprotocol; a browser that offered none gets none back.
      handleProtocols: (offered) => (offered.has(SEAFILE_SUBPROTOCOL) ? SEAFILE_SUBPROTOCOL : false),
    });
    this.#liveness = setInterval(() => this.#checkLiveness(), options.pingIntervalMs);
    this.#liveness.unref();
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#server.handleUpgrade(request, socket, head, (ws) => {
      const { options } = this;
      const connection = new WebSocketConnection(ws, request.socket.remoteAddress ?? 'unknown', {
        hub: options.hub,
        key: options.key,
        logger: options.logger,
        metrics: this.#metrics,
        sendQueueBytes: options.sendQueueBytes,
        now: this.#now,
        onClose: (closed, reason) => {
          this.connections.delete(closed);
          this.#metrics.connectionClosed(reason);
        },
      });
      this.connections.add(connection);
      this.#metrics.connectionOpened();
      options.logger.debug(
        { connection: connection.id, remote: connection.remote, protocol: ws.protocol, userAgent: request.headers['user-agent'] },
        'websocket connected',
      );
    });
  }

  #checkLiveness(): void {
    const now = this.#now();
    const { pingIntervalMs, deadPeerMs } = this.options;
    for (const connection of this.connections) {
      const silentFor = now - connection.lastSeen;
      if (silentFor >= deadPeerMs) {
        this.options.logger.debug({ connection: connection.id, silentFor }, 'dead peer: no traffic, dropping');
        connection.terminate('dead-peer');
      } else if (silentFor >= pingIntervalMs / 2 && connection.isOpen) {
        connection.socket.ping();
      }
    }
  }

  /**
   * Closes every connection with 1001, spread evenly over `windowMs` (the i-th of n at
   * i/n of the window) so that clients do not all come back in the same second, then waits
   * (bounded) for them to go.
   */
  async drain(windowMs: number): Promise<void> {
    clearInterval(this.#liveness);
    const pending = [...this.connections];
    const total = pending.length;
    if (total > 0) {
      const tickMs = 20;
      const started = this.#now();
      let closed = 0;
      await new Promise<void>((resolve) => {
        const closeDue = () => {
          const elapsed = this.#now() - started;
          const due = windowMs <= 0 ? total : Math.min(total, Math.floor((elapsed * total) / windowMs) + 1);
          while (closed < due) pending[closed++]!.close(CloseCode.GoingAway, 'server shutting down', 1000);
          if (closed === total) {
            clearInterval(timer);
            resolve();
          }
        };
        const timer = setInterval(closeDue, tickMs);
        closeDue();
      });
    }
    const deadline = this.#now() + 2000;
    while (this.connections.size > 0 && this.#now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const connection of this.connections) connection.terminate('going-away');
    this.#server.close();
  }
}
