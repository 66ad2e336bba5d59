/**
 * The seam between the client and a wire. The client owns subscriptions, tokens and
 * reconnecting; a transport only opens one connection, carries text frames and reports how
 * the connection ended. WebSocket is the only transport the server offers today; SSE and
 * long polling plug in here once the server has endpoints for them.
 */
export interface Transport {
  /**
   * True when this connection reports inbound pings (onActivity), so that silence means a
   * dead peer. Browsers answer WebSocket pings without telling scripts: there, false.
   */
  readonly reportsActivity: boolean;
  /** Sends one text frame; only called between onOpen and onClose. */
  send(text: string): void;
  /** Ends the connection; onClose is not called afterwards. */
  close(code?: number, reason?: string): void;
}

export interface TransportHandlers {
  onOpen(): void;
  onMessage(text: string): void;
  /** The connection ended or could not be opened. Called at most once. */
  onClose(info: CloseInfo): void;
  /**
   * Inbound traffic that carries no message (a WebSocket ping), for a transport that can see
   * it: proves the connection is alive.
   */
  onActivity(): void;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

export interface TransportFactory {
  /** A short name for logs and errors ("websocket"). */
  readonly name: string;
  open(url: string, handlers: TransportHandlers): Transport;
}
