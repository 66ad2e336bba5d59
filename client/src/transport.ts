import type { Clock } from './clock.js';
import type { Position } from './events.js';

/**
 * The seam between the client and a wire. The client owns subscriptions, tokens, positions
 * and reconnecting; a transport only opens one connection, carries subscriptions to the
 * server and the server's messages back, and reports how the connection ended. WebSocket,
 * Server-Sent Events and long polling are the three the server offers.
 */
export interface Transport {
  /**
   * True when this connection reports inbound pings (onActivity), so that silence means a
   * dead peer. Browsers answer WebSocket pings without telling scripts: there, false.
   */
  readonly reportsActivity: boolean;
  /**
   * False: subscriptions are sent once onOpen came (a WebSocket). True: the transport needs
   * the libraries to make its request at all (SSE, long polling), so they are given at once,
   * and onOpen means the server answered.
   */
  readonly subscribesBeforeOpen: boolean;
  /** Subscribes (or re-subscribes with a new token) one library; see subscribesBeforeOpen for when. */
  subscribe(entry: SubscribeEntry): void;
  unsubscribe(repoId: string): void;
  /** Ends the connection; onClose is not called afterwards. */
  close(code?: number, reason?: string): void;
}

export interface SubscribeEntry {
  repoId: string;
  token: string;
  /** Resume after this position (the server replays what was missed). */
  since?: Position;
}

export interface TransportHandlers {
  onOpen(): void;
  onMessage(text: string): void;
  /** The connection ended or could not be opened. Called at most once. */
  onClose(info: CloseInfo): void;
  /**
   * Inbound traffic that carries no message (a WebSocket ping, an SSE keep-alive), for a
   * transport that can see it: proves the connection is alive.
   */
  onActivity(): void;
  /** The last position the client holds for a library, for transports that reopen by themselves. */
  positionOf(repoId: string): Position | undefined;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

export interface TransportFactory {
  /** A short name for logs and errors ("websocket", "sse", "long-poll"). */
  readonly name: string;
  /** `baseUrl` is the server's URL as configured (`https://host/notification`); `clock` the client's. */
  open(baseUrl: string, handlers: TransportHandlers, clock: Clock): Transport;
}

/** `https://host/notification` + `sse` → `https://host/notification/sse`; ws(s) becomes http(s). */
export function endpointUrl(baseUrl: string, path: string, scheme: 'http' | 'ws'): URL {
  const url = new URL(baseUrl);
  const secure = url.protocol === 'https:' || url.protocol === 'wss:';
  url.protocol = scheme === 'http' ? (secure ? 'https:' : 'http:') : secure ? 'wss:' : 'ws:';
  if (path !== '') url.pathname = `${url.pathname.replace(/\/+$/, '')}/${path}`;
  return url;
}

/** The cursor the SSE and long-poll endpoints take: `<repo_id>@<epoch>:<offset>` joined by commas, each part URI-encoded. */
export function encodeCursor(repoIds: Iterable<string>, positionOf: (repoId: string) => Position | undefined): string {
  const parts: string[] = [];
  for (const repoId of repoIds) {
    const position = positionOf(repoId);
    if (position !== undefined) parts.push(`${encodeURIComponent(repoId)}@${encodeURIComponent(position.epoch)}:${position.offset}`);
  }
  return parts.join(',');
}
