import { encodeSubscribe, encodeUnsubscribe } from './client-messages.js';
import { endpointUrl, type CloseInfo, type SubscribeEntry, type Transport, type TransportFactory, type TransportHandlers } from './transport.js';

type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

/**
 * What the client needs of a WebSocket: the browser's, Node 22's global one and the `ws`
 * package's all fit. Handlers are declared bivariantly so that each implementation's own
 * event types are accepted.
 */
export interface WebSocketLike {
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: its ping events, which browsers keep from scripts. */
  on?(event: 'ping', listener: () => void): unknown;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** The subprotocol that asks the server for positions (replay after a reconnect). */
export const POSITIONS_SUBPROTOCOL = 'notification.positions.v1';

/**
 * The WebSocket transport over the given constructor (the global WebSocket by default). With
 * `positions` it offers the positions subprotocol; the `ws` package refuses a server that does
 * not echo it (the stock server), browsers do not.
 */
export function webSocketTransport(WebSocketClass: WebSocketConstructor, options: { positions?: boolean } = {}): TransportFactory {
  const protocols = options.positions === false ? undefined : [POSITIONS_SUBPROTOCOL];
  return {
    name: 'websocket',
    open: (baseUrl, handlers) => {
      const url = endpointUrl(baseUrl, '', 'ws').href;
      return new WebSocketTransport(protocols === undefined ? new WebSocketClass(url) : new WebSocketClass(url, protocols), handlers);
    },
  };
}

/** The global WebSocket of a browser (or Node 22+), if there is one. */
export function globalWebSocket(): WebSocketConstructor | undefined {
  return (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
}

class WebSocketTransport implements Transport {
  readonly reportsActivity: boolean;
  readonly subscribesBeforeOpen = false;
  #done = false;

  constructor(
    private readonly socket: WebSocketLike,
    handlers: TransportHandlers,
  ) {
    this.reportsActivity = typeof socket.on === 'function';
    socket.on?.('ping', () => {
      if (!this.#done) handlers.onActivity();
    });
    socket.onopen = () => {
      if (!this.#done) handlers.onOpen();
    };
    socket.onmessage = (event) => {
      // The server sends text frames only; anything else is not a message of the protocol.
      if (!this.#done && typeof event.data === 'string') handlers.onMessage(event.data);
    };
    // A failed handshake fires error then close; close alone carries what happened.
    socket.onerror = () => {};
    socket.onclose = (event) => {
      if (this.#done) return;
      this.#done = true;
      const info: CloseInfo = { code: event.code, reason: event.reason };
      handlers.onClose(info);
    };
  }

  subscribe(entry: SubscribeEntry): void {
    this.socket.send(encodeSubscribe(entry.repoId, entry.token, entry.since));
  }

  unsubscribe(repoId: string): void {
    this.socket.send(encodeUnsubscribe(repoId));
  }

  close(code = 1000, reason = ''): void {
    if (this.#done) return;
    this.#done = true;
    try {
      this.socket.close(code, reason);
    } catch {
      // Closing a socket that is still connecting throws in some implementations; it is abandoned either way.
    }
  }
}
