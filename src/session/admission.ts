/**
 * Who may open a session, decided once for a WebSocket upgrade, an SSE stream and a long poll.
 * A request's address may have run out of refused tokens; a connection's own allowance is
 * checked as it subscribes.
 */
import type { IncomingMessage } from 'node:http';
import type { RequestRefusal } from '../metrics/metrics.js';
import type { ClientAddress } from '../transport/client-address.js';
import { OriginPolicy } from '../transport/origin-policy.js';
import type { SessionKind, Sessions } from './client-session.js';
import { ConnectionsPerAddress, RETRY_AFTER_SECONDS } from './connection-caps.js';

/** Why a session is not opened: each transport answers it with this HTTP status and message. */
export interface Refusal {
  why: RequestRefusal;
  status: 400 | 403 | 429 | 503;
  /** One sentence for whoever reads it (a browser's console, a proxy's log, an admin with curl). */
  message: string;
  retryAfterSeconds?: number;
}

/** An admitted client, counted as one connection until `release` (later calls do nothing). */
export interface Admitted {
  client: ClientAddress;
  release: () => void;
}

export interface AdmissionOptions {
  sessions: Sessions;
  /** Browser origins admitted; null: every origin (the stock behaviour). */
  allowedOrigins: readonly string[] | null;
  /** Peers whose X-Forwarded-For / X-Real-IP name the client address. */
  trustedProxies: readonly string[];
}

export class Admission {
  readonly origins: OriginPolicy | null;
  readonly #sessions: Sessions;
  readonly #addresses: ConnectionsPerAddress;
  #draining = false;
  #capWarnedAt = -Infinity;

  constructor({ sessions, allowedOrigins, trustedProxies }: AdmissionOptions) {
    this.#sessions = sessions;
    this.origins = allowedOrigins === null ? null : new OriginPolicy(allowedOrigins);
    const { logger, now, live } = sessions;
    this.#addresses = new ConnectionsPerAddress({ logger, now, live, trustedProxies });
  }

  /** From now on every session is refused (503): the server is shutting down. */
  drain(): void {
    this.#draining = true;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Counted in requests_refused_total{reason}; the caller answers it. */
  refused(refusal: Refusal, request: IncomingMessage): Refusal {
    this.#sessions.metrics.requestRefused(refusal.why);
    this.#sessions.logger.debug({ remote: request.socket.remoteAddress, origin: request.headers.origin, why: refusal.why }, `${request.url?.split('?', 1)[0]} refused: ${refusal.message}`);
    return refusal;
  }

  admit(request: IncomingMessage, kind: SessionKind): Admitted | Refusal {
    const { logger, live, failures } = this.#sessions;
    const { maxConnections } = live.limits;
    const retry = RETRY_AFTER_SECONDS;
    if (this.origins !== null && !this.origins.admits(request.headers.origin, request.headers.host)) {
      return this.refused({ why: 'origin', status: 403, message: 'this Origin is not allowed to connect (allowed_origins)' }, request);
    }
    if (this.#draining) return this.refused({ why: 'draining', status: 503, message: 'the server is shutting down', retryAfterSeconds: 1 }, request);
    const open = this.#addresses.total;
    if (open >= maxConnections) {
      const now = this.#sessions.now();
      if (now - this.#capWarnedAt >= 60_000) {
        this.#capWarnedAt = now;
        logger.warn({ connections: open, maxConnections }, 'connection cap reached: refusing new connections with 503 (max_connections)');
      }
      const message = `the server holds as many connections as it allows (max_connections); try again in ${retry} s`;
      return this.refused({ why: 'connection-cap', status: 503, message, retryAfterSeconds: retry }, request);
    }
    const client = this.#addresses.clientOf(request);
    const crowded = this.#addresses.refusal(client, request.socket.remoteAddress);
    if (crowded !== null) return this.refused({ why: 'address-cap', status: 429, message: crowded, retryAfterSeconds: retry }, request);
    const failing = kind === 'request' ? failures.refusal(client) : null;
    if (failing !== null) return this.refused({ why: 'failed-subscribes', status: 429, ...failing }, request);
    return { client, release: this.#addresses.count(client) };
  }
}
