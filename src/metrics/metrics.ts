import type { PublisherAuthFailure, PublisherKind } from '../auth/publisher-auth.js';
import type { SubscribeFailure } from '../auth/subscriber-token.js';
import type { ResyncReason } from '../history/event-history.js';
import type { LibraryEvent } from '../protocol/event.js';
import type { CloseReason } from '../transport/close-codes.js';

/** Why `/events` refused a request other than for its credentials. */
export type EventRejection = 'method' | 'too-large' | 'invalid';

/**
 * Why a request was turned away before it became a WebSocket, an SSE stream or a poll
 * (user-cap and failed-subscribes: SSE and long polling only).
 */
export type RequestRefusal = 'origin' | 'connection-cap' | 'address-cap' | 'draining' | 'bad-request' | 'timeout' | 'user-cap' | 'failed-subscribes';

/** Why a subscribe entry with a valid token was refused: a per-connection or per-user limit. */
export type SubscribeLimit = 'library-cap' | 'user-cap';

/** The transports for clients without a WebSocket (src/transport/sse-endpoint.ts, long-poll-endpoint.ts). */
export type FallbackTransport = 'sse' | 'long-poll';

/** Why a group-targeted event reached nobody. */
export type UndeliveredReason = 'no-database' | 'lookup-failed';

/**
 * What the data path reports, one call per fact, without knowing how the counts are kept.
 * Called at most once per event or connection change, never per subscriber; levels are not
 * reported but read from their owners when asked for.
 */
export interface Metrics {
  connectionOpened(): void;
  connectionClosed(reason: CloseReason): void;
  /** One library of a subscribe message was refused (the client is sent `jwt-expired`). */
  subscribeRefused(reason: SubscribeFailure): void;
  /** One library of a subscribe message, with a valid token, was refused by a limit (the client is sent `error`). */
  subscribeLimited(reason: SubscribeLimit): void;
  subscriptionExpired(): void;
  publisherRefused(reason: PublisherAuthFailure): void;
  eventRejected(reason: EventRejection): void;
  eventAccepted(type: string, source: PublisherKind): void;
  /** Every accepted event, once its frame was handed to all its `recipients` (maybe none). */
  eventDelivered(event: LibraryEvent, recipients: number, latencySeconds: number): void;
  groupEventUndelivered(reason: UndeliveredReason): void;
  requestRefused(reason: RequestRefusal): void;
  /** An SSE stream was opened or a long poll accepted (after its admission checks). */
  fallbackRequest(transport: FallbackTransport): void;
  /** A positioned subscription recovered: `replayed` missed events went before its `subscribed`. */
  recovered(replayed: number): void;
  /** A positioned subscription was told to `resync`. */
  resynced(reason: ResyncReason): void;
}

/** Reports every fact to both. */
export function bothMetrics(first: Metrics, second: Metrics): Metrics {
  const both: Partial<Record<keyof Metrics, unknown>> = {};
  for (const fact of Object.keys(NO_METRICS) as Array<keyof Metrics>) {
    both[fact] = (...args: unknown[]) => {
      Reflect.apply(first[fact], first, args);
      Reflect.apply(second[fact], second, args);
    };
  }
  return both as Metrics;
}

/** Counts nothing: for tests and tools that run a hub without exporting metrics. */
export const NO_METRICS: Metrics = {
  connectionOpened() {},
  connectionClosed() {},
  subscribeRefused() {},
  subscribeLimited() {},
  subscriptionExpired() {},
  publisherRefused() {},
  eventRejected() {},
  eventAccepted() {},
  eventDelivered() {},
  groupEventUndelivered() {},
  requestRefused() {},
  fallbackRequest() {},
  recovered() {},
  resynced() {},
};
