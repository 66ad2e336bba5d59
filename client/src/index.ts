export {
  NotificationClient,
  NotificationClientError,
  type ConnectionState,
  type NotificationClientErrorKind,
  type NotificationClientEventName,
  type NotificationClientEvents,
  type NotificationClientOptions,
} from './notification-client.js';
export type { CommentUpdate, FileLockChanged, FolderPermChanged, LibraryEventName, LibraryEvents, Position, RepoUpdate, Resync, ServerMessage } from './events.js';
export { Backoff, type BackoffOptions } from './backoff.js';
export type { Clock, TimerHandle } from './clock.js';
export { tokenExpiry } from './token-expiry.js';
export type { CloseInfo, SubscribeEntry, Transport, TransportFactory, TransportHandlers } from './transport.js';
export { POSITIONS_SUBPROTOCOL, webSocketTransport, type WebSocketConstructor, type WebSocketLike } from './websocket-transport.js';
export { sseTransport, SseParser } from './sse-transport.js';
export { longPollTransport } from './long-poll-transport.js';
export type { FetchFunction } from './http-subscription-transport.js';
