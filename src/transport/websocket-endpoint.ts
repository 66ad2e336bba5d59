import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { VerificationKeys } from '../auth/key-ring.js';
import type { Hub } from '../hub/hub.js';
import type { Logger } from '../log.js';
import { NO_METRICS, type Metrics } from '../metrics/metrics.js';
import { POSITIONS_SUBPROTOCOL } from '../protocol/position-frames.js';
import { CloseCode } from './close-codes.js';
import { OriginPolicy } from './origin-policy.js';
import { WebSocketConnection, type ConnectionLimits } from './websocket-connection.js';

/** The subprotocol the Seafile desktop client and SeaDrive offer. */
export const SEAFILE_SUBPROTOCOL = 'notification.seafile.com';

export interface EndpointOptions {
  hub: Hub;
  key: VerificationKeys;
  logger: Logger;
  /** Where connections opened and closed (by reason) and refused subscribes are counted. */
  metrics?: Metrics;
  maxFrameBytes: number;
  sendQueueBytes: number;
  pingIntervalMs: number;
  deadPeerMs: number;
  now?: () => number;
  /** Per-connection limits; absent: none. */
  connectionLimits?: ConnectionLimits;
  /** Open WebSockets at once; past it upgrades are refused with 503. Absent: no cap. */
  maxConnections?: number;
  /** Connections of other transports (SSE streams, waiting polls) that count against maxConnections. */
  otherConnections?: () => number;
  /** Browser origins admitted; null or absent: every origin (the stock behaviour). */
  allowedOrigins?: readonly string[] | null;
}

/** What a reload (SIGHUP) may change: the cap at once, the rest for connections opened after it. */
export type LiveEndpointSettings = Pick<EndpointOptions, 'sendQueueBytes' | 'connectionLimits' | 'maxConnections'>;

/** Why an upgrade is answered with an HTTP error instead of a WebSocket. */
export interface UpgradeRefusal {
  why: 'origin' | 'connection-cap';
  status: 403 | 503;
  reason: string;
  headers: Record<string, string>;
}

/** What a client refused at the connection cap is told to wait; the desktop client's own rhythm. */
export const RETRY_AFTER_SECONDS = 60;

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
  readonly #origins: OriginPolicy | null;
  #capWarnedAt = -Infinity;

  constructor(private options: EndpointOptions) {
    this.#now = options.now ?? Date.now;
    this.#metrics = options.metrics ?? NO_METRICS;
    this.#origins = options.allowedOrigins == null ? null : new OriginPolicy(options.allowedOrigins);
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
    this.#liveness = setInterval(() => this.#checkLiveness(), options.pingIntervalMs);
    this.#liveness.unref();
  }

  reconfigure(settings: LiveEndpointSettings): void {
    this.options = { ...this.options, ...settings };
  }

  /** Null when the upgrade may proceed; else the HTTP answer it gets (origin policy, connection cap). */
  refusal(request: IncomingMessage): UpgradeRefusal | null {
    const { logger, maxConnections } = this.options;
    const origin = request.headers.origin;
    if (this.#origins !== null && !this.#origins.admits(origin, request.headers.host)) {
      logger.debug({ remote: request.socket.remoteAddress, origin }, 'websocket refused: origin not allowed');
      return { why: 'origin', status: 403, reason: 'Forbidden', headers: {} };
    }
    if (maxConnections !== undefined && this.connections.size + (this.options.otherConnections?.() ?? 0) >= maxConnections) {
      const now = this.#now();
      if (now - this.#capWarnedAt >= 60_000) {
        this.#capWarnedAt = now;
        logger.warn({ connections: this.connections.size, maxConnections }, 'connection cap reached: refusing new WebSockets with 503 (max_connections)');
      }
      return { why: 'connection-cap', status: 503, reason: 'Service Unavailable', headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) } };
    }
    return null;
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
        limits: options.connectionLimits,
        userAgent: request.headers['user-agent'],
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
