import type { IncomingMessage } from 'node:http';
import type { LiveSettings } from '../config/settings.js';
import type { Logger } from '../log.js';
import { TrustedProxies, type ClientAddress } from '../transport/client-address.js';

/** What a client refused at a connection cap is told to wait; the desktop client's own rhythm. */
export const RETRY_AFTER_SECONDS = 60;

export interface AddressCapOptions {
  logger: Logger;
  now: () => number;
  /** max_connections_per_address: open connections at once from one client address; 0: no cap. */
  live: Pick<LiveSettings, 'limits'>;
  /** Peers whose X-Forwarded-For / X-Real-IP name the client address. */
  trustedProxies: readonly string[];
}

/**
 * Open connections for max_connections and max_connections_per_address: a WebSocket, an SSE stream
 * and a waiting long poll each count from admission on; unattributed ones count only in all.
 */
export class ConnectionsPerAddress {
  readonly #proxies: TrustedProxies;
  readonly #open = new Map<string, number>();
  #total = 0;
  #warnedAt = -Infinity;
  #warnedUnattributed = false;

  constructor(private readonly options: AddressCapOptions) {
    this.#proxies = new TrustedProxies(options.trustedProxies);
  }

  /** The client behind the request (trusted_proxies); says once in the log when a trusted proxy names nobody. */
  clientOf(request: IncomingMessage): ClientAddress {
    const client = this.#proxies.clientOf(request.socket.remoteAddress, request.headers);
    if (client.unattributed && !this.#warnedUnattributed) {
      this.#warnedUnattributed = true;
      this.options.logger.warn(
        { peer: client.address },
        'a connection came through a trusted proxy that sent no X-Forwarded-For or X-Real-IP: such connections are not counted ' +
          'per client address (max_connections_per_address); have the proxy send X-Forwarded-For (see docs/deploy)',
      );
    }
    return client;
  }

  get total(): number {
    return this.#total;
  }

  connectionsFrom(address: string): number {
    return this.#open.get(address) ?? 0;
  }

  /** Null when the client may open one more connection; else the refusal's message (answered 429 with Retry-After). */
  refusal(client: ClientAddress, peer: string | undefined): string | null {
    const { logger } = this.options;
    const max = this.options.live.limits.maxConnectionsPerAddress;
    if (max === 0 || client.unattributed) return null;
    const open = this.connectionsFrom(client.address);
    if (open < max) return null;
    const now = this.options.now();
    if (now - this.#warnedAt >= 60_000) {
      this.#warnedAt = now;
      logger.warn(
        { remote: client.address, peer, connections: open, maxConnectionsPerAddress: max },
        'connection cap per address reached: refusing new connections from this address with 429 (max_connections_per_address; ' +
          'if this address is a proxy or load balancer, list it in trusted_proxies and have it send X-Forwarded-For)',
      );
    }
    return `too many connections from your address (max_connections_per_address is ${max}); try again in ${RETRY_AFTER_SECONDS} s`;
  }

  /**
   * Counts one connection of the client until the returned function is called (later calls do
   * nothing). From admission on, so that a burst from one address cannot overshoot the cap.
   */
  count(client: ClientAddress): () => void {
    const { address, unattributed } = client;
    this.#total++;
    if (!unattributed) this.#open.set(address, this.connectionsFrom(address) + 1);
    let counted = true;
    return () => {
      if (!counted) return;
      counted = false;
      this.#total--;
      if (unattributed) return;
      const left = this.connectionsFrom(address) - 1;
      if (left > 0) this.#open.set(address, left);
      else this.#open.delete(address);
    };
  }
}
