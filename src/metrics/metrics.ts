import type { PublisherAuthFailure, PublisherKind } from '../auth/publisher-auth.js';
import type { SubscribeFailure } from '../auth/subscriber-token.js';
import type { ResyncReason } from '../history/event-history.js';
import type { LibraryEvent } from '../protocol/event.js';
import type { CloseReason } from '../transport/close-codes.js';

/** Why `/events` refused a request other than for its credentials. */
export type EventRejection = 'method' | 'too-large' | 'invalid';

/**
 * Why the HTTP server turned a request away before it became a WebSocket, an SSE stream or a
 * poll: origin (403), connection-cap (503), address-cap (429), draining (503), bad-request (400:
 * an unparsable request), timeout (408: headers or body not complete in time, a slowloris), and
 * for SSE and long polling only: user-cap (429: every library's user at max_connections_per_user)
 * and failed-subscribes (429: the address out of refused tokens, max_failed_subscribes_per_minute).
 */
export type RequestRefusal = 'origin' | 'connection-cap' | 'address-cap' | 'draining' | 'bad-request' | 'timeout' | 'user-cap' | 'failed-subscribes';

/** Why a subscribe entry with a valid token was refused: a per-connection or per-user limit. */
export type SubscribeLimit = 'library-cap' | 'user-cap';

/** The transports for clients without a WebSocket (src/transport/sse-endpoint.ts, long-poll-endpoint.ts). */
export type FallbackTransport = 'sse' | 'long-poll';

/** Why a group-targeted event reached nobody. */
export type UndeliveredReason = 'no-database' | 'lookup-failed';

/**
 * What the data path reports, one call per fact, so that the hub and the transports count
 * without knowing how the counts are kept or exported (see prometheus-metrics.ts). Levels
 * (connections open, subscriptions) are not reported: they are read from their owners when
 * asked for. Every method is cheap and called at most once per event or per connection
 * change, never once per subscriber.
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
  /**
   * Every event the hub accepted, once its frame was handed to the sockets of all its
   * `recipients` (maybe none), `latencySeconds` after the hub accepted it.
   */
  eventDelivered(event: LibraryEvent, recipients: number, latencySeconds: number): void;
  groupEventUndelivered(reason: UndeliveredReason): void;
  requestRefused(reason: RequestRefusal): void;
  /** An SSE stream was opened or a long poll accepted (after its admission checks). */
  fallbackRequest(transport: FallbackTransport): void;
  /**
   * A positioned subscription recovered from a position (a subscribe with `since`, or a
   * catch-up after a gap): `replayed` missed events were sent before its `subscribed`.
   */
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
