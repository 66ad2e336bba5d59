import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { VerificationKeys } from '../auth/key-ring.js';
import type { Hub } from '../hub/hub.js';
import type { Logger } from '../log.js';
import { NO_METRICS, type Metrics } from '../metrics/metrics.js';
import { POSITIONS_SUBPROTOCOL } from '../protocol/position-frames.js';
import { ConnectionsPerAddress, RETRY_AFTER_SECONDS } from './connection-caps.js';
import { CloseCode } from './close-codes.js';
import { OriginPolicy } from './origin-policy.js';
import { WebSocketConnection, type ConnectionLimits } from './websocket-connection.js';
import { FrameWriter } from './frame-writer.js';

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
  /** Connections per client address, shared with the fallbacks; past the cap upgrades are refused with 429. Absent: no cap, no proxy trusted. */
  addresses?: ConnectionsPerAddress;
  /** Connections of other transports (SSE streams, waiting polls) that count against maxConnections. */
  otherConnections?: () => number;
  /** Browser origins admitted; null or absent: every origin (the stock behaviour). */
  allowedOrigins?: readonly string[] | null;
}

/** What a reload (SIGHUP) may change: the cap at once, the rest for connections opened after it. */
export type LiveEndpointSettings = Pick<EndpointOptions, 'sendQueueBytes' | 'connectionLimits' | 'maxConnections'>;

/** Why an upgrade is answered with an HTTP error instead of a WebSocket. */
export interface UpgradeRefusal {
  why: 'origin' | 'connection-cap' | 'address-cap';
  status: 403 | 429 | 503;
  reason: string;
  /** The body: one sentence for whoever reads it (a browser's console, a proxy's log, an admin with curl). */
  message: string;
  headers: Record<string, string>;
}

/**
 * The liveness timer ticks this many times per ping interval and pings one slice of the
 * connections at each tick (by id), so that 100k connections are not all pinged in the same
 * millisecond: their pongs, all at once, would hold the cores for seconds every ping interval
 * and delay events by as much.
 */
const PING_SLICES = 20;

/**
 * Accepts subscriber WebSockets and keeps them alive: one shared timer pings the connections
 * that have been silent (a slice of them at each tick) and drops those silent past the
 * dead-peer timeout.
 */
export class WebSocketEndpoint {
  readonly connections = new Set<WebSocketConnection>();
  readonly #metrics: Metrics;
  readonly #server: WebSocketServer;
  readonly #liveness: NodeJS.Timeout;
  readonly #now: () => number;
  readonly #origins: OriginPolicy | null;
  readonly #addresses: ConnectionsPerAddress;
  /** Frames go straight to the TCP sockets under ws (frame-writer.ts: which relies on perMessageDeflate being off). */
  readonly #frames = new FrameWriter();
  #capWarnedAt = -Infinity;
  #tick = 0;

  constructor(private options: EndpointOptions) {
    this.#now = options.now ?? Date.now;
    this.#metrics = options.metrics ?? NO_METRICS;
    this.#origins = options.allowedOrigins == null ? null : new OriginPolicy(options.allowedOrigins);
    this.#addresses = options.addresses ?? new ConnectionsPerAddress({ logger: options.logger, now: this.#now, max: 0, trustedProxies: [] });
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

  reconfigure(settings: LiveEndpointSettings): void {
    this.options = { ...this.options, ...settings };
  }

  /** Null when the upgrade may proceed; else the HTTP answer it gets (origin policy, connection caps). */
  refusal(request: IncomingMessage): UpgradeRefusal | null {
    const { logger, maxConnections } = this.options;
    const origin = request.headers.origin;
    const retryAfter = { 'Retry-After': String(RETRY_AFTER_SECONDS) };
    if (this.#origins !== null && !this.#origins.admits(origin, request.headers.host)) {
      logger.debug({ remote: request.socket.remoteAddress, origin }, 'websocket refused: origin not allowed');
      return { why: 'origin', status: 403, reason: 'Forbidden', message: 'this Origin is not allowed to connect (allowed_origins)', headers: {} };
    }
    if (maxConnections !== undefined && this.connections.size + (this.options.otherConnections?.() ?? 0) >= maxConnections) {
      const now = this.#now();
      if (now - this.#capWarnedAt >= 60_000) {
        this.#capWarnedAt = now;
        logger.warn({ connections: this.connections.size, maxConnections }, 'connection cap reached: refusing new WebSockets with 503 (max_connections)');
      }
      return {
        why: 'connection-cap',
        status: 503,
        reason: 'Service Unavailable',
        message: `the server holds as many connections as it allows (max_connections); try again in ${RETRY_AFTER_SECONDS} s`,
        headers: retryAfter,
      };
    }
    const addressRefusal = this.#addresses.refusal(this.#addresses.clientOf(request), request.socket.remoteAddress);
    if (addressRefusal !== null) {
      return { why: 'address-cap', status: 429, reason: 'Too Many Requests', message: addressRefusal, headers: retryAfter };
    }
    return null;
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const client = this.#addresses.clientOf(request);
    // Counted from the upgrade on, so that a burst of upgrades from one address cannot overshoot the cap.
    const uncount = this.#addresses.count(client);
    let accepted = false;
    socket.once('close', () => {
      // The handshake failed (bad headers, the client went away): no connection will uncount it.
      if (!accepted) uncount();
    });
    this.#server.handleUpgrade(request, socket, head, (ws) => {
      accepted = true;
      const { options } = this;
      const connection = new WebSocketConnection(ws, client.address, {
        hub: options.hub,
        key: options.key,
        logger: options.logger,
        metrics: this.#metrics,
        sendQueueBytes: options.sendQueueBytes,
        now: this.#now,
        onClose: (closed, reason) => {
          uncount();
          this.connections.delete(closed);
          this.#metrics.connectionClosed(reason);
        },
        limits: options.connectionLimits,
        userAgent: request.headers['user-agent'],
      }, { socket: socket as Socket, frames: this.#frames });
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
    // Each connection's slice comes round once per ping interval, as a single sweep did.
    const slice = this.#tick++ % PING_SLICES;
    for (const connection of this.connections) {
      const silentFor = now - connection.lastSeen;
      if (silentFor >= deadPeerMs) {
        this.options.logger.debug({ connection: connection.id, silentFor }, 'dead peer: no traffic, dropping');
        connection.terminate('dead-peer');
      } else if (connection.id % PING_SLICES === slice && silentFor >= pingIntervalMs / 2 && connection.isOpen) {
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
