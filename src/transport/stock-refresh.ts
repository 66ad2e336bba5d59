/**
 * Stock desktop clients (desktop client and SeaDrive: the `notification.seafile.com` subprotocol)
 * cannot ask for what they missed. After a known gap, those following an affected library are
 * closed with 1000, spread over a window, so that they come back 60 s later and re-read their
 * lock and folder-permission state. docs/cluster.md says why browsers and positioned clients are
 * left alone, and why the User-Agent cannot tell.
 */
import type { LiveSettings } from '../config/settings.js';
import type { Hub } from '../hub/hub.js';
import type { Logger } from '../log.js';
import { CloseCode } from './close-codes.js';
import { WebSocketConnection } from './websocket-connection.js';
import { SEAFILE_SUBPROTOCOL, type WebSocketEndpoint } from './websocket-endpoint.js';

export interface StockRefreshOptions {
  hub: Hub;
  websockets: WebSocketEndpoint;
  logger: Logger;
  /** gap_refresh_window: closes are spread over this window; 0 turns the refresh off. */
  live: { readonly config: Pick<LiveSettings['config'], 'gapRefreshWindowMs'> };
}

/** A desktop client or SeaDrive that re-reads its lock and permission state when it reconnects. */
function isStockDesktopClient(subscriber: unknown): subscriber is WebSocketConnection {
  return subscriber instanceof WebSocketConnection && !subscriber.positioned && subscriber.socket.protocol === SEAFILE_SUBPROTOCOL;
}

export class StockClientRefresh {
  constructor(private readonly options: StockRefreshOptions) {}

  /** Closes the stock desktop clients that follow any of `libraries` (or all of them), spread over the window. */
  refresh(libraries: ReadonlySet<string> | 'all', why: string): void {
    const { hub, websockets, logger } = this.options;
    const windowMs = this.options.live.config.gapRefreshWindowMs;
    const picked = new Set<WebSocketConnection>();
    if (windowMs > 0 && libraries === 'all') {
      for (const connection of websockets.connections) if (isStockDesktopClient(connection) && connection.libraries > 0) picked.add(connection);
    } else if (windowMs > 0) {
      for (const repoId of libraries) for (const subscriber of hub.followersOf(repoId)) if (isStockDesktopClient(subscriber)) picked.add(subscriber);
    }
    if (picked.size === 0) return;
    logger.info(
      { clients: picked.size, windowMs, libraries: libraries === 'all' ? 'all' : libraries.size },
      `${why}: closing ${picked.size} desktop client(s) over ${(windowMs / 1000).toFixed(1)} s so that they reconnect and re-read lock and permission state`,
    );
    void websockets.closeSpread([...picked], windowMs, CloseCode.Normal, 'missed events: reconnect to refresh');
  }
}
