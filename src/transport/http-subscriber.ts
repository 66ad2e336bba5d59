import type { IncomingMessage, ServerResponse } from 'node:http';
import type { VerificationKeys } from '../auth/key-ring.js';
import { SubscribeRefused, verifySubscriberToken, type SubscriberGrant } from '../auth/subscriber-token.js';
import type { Hub } from '../hub/hub.js';
import type { Subscriber } from '../hub/subscriber.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Position } from '../history/position.js';
import { encodeError, encodeJwtExpired } from '../protocol/event.js';
import type { Outgoing } from '../protocol/outgoing.js';
import type { ClientAddress } from './client-address.js';
import { RETRY_AFTER_SECONDS, userCapRefusal } from './connection-caps.js';
import { formatCursor, type Cursor } from './cursor.js';
import { tooMany, type FallbackAdmission } from './fallback-admission.js';
import type { FallbackRequest } from './fallback-request.js';

export interface HttpSubscriberContext {
  hub: Hub;
  key: VerificationKeys;
  logger: Logger;
  metrics: Metrics;
  now: () => number;
  admission: FallbackAdmission;
}

/** One library of a request: subscribed with its grant, or answered with a message (`jwt-expired`, `error`). */
type Outcome = { grant: SubscriberGrant; since: Position | undefined } | { answer: Outgoing };

/** What a request's tokens come to, decided before anything is answered. */
export type SubscribePlan = readonly Outcome[];

/**
 * Checks every token of the request, and max_connections_per_user, before the answer starts,
 * so that a request that can follow nothing gets an HTTP status instead of a stream or a poll
 * answer its client would come straight back from: 429 when every library with a valid token
 * is refused for the user cap, or when the client's address has run out of refused tokens
 * (max_failed_subscribes_per_minute; checking stops there). Null: answered here.
 */
export function planOrRefuse(
  request: IncomingMessage,
  response: ServerResponse,
  context: HttpSubscriberContext,
  parsed: FallbackRequest,
  client: ClientAddress,
): SubscribePlan | null {
  const { hub, key, logger, metrics, admission } = context;
  const now = context.now();
  const plan: Outcome[] = [];
  let userCapped = 0;
  for (const { repoId, token } of parsed.entries) {
    let grant: SubscriberGrant;
    try {
      grant = verifySubscriberToken(token, repoId, key, now);
    } catch (err) {
      if (!(err instanceof SubscribeRefused)) throw err;
      metrics.subscribeRefused(err.reason);
      logger.debug({ remote: client.address, repoId, reason: err.reason }, `subscribe refused: ${err.message}`);
      const overdrawn = admission.failures.take(client) ? null : admission.failures.refusal(client);
      if (overdrawn !== null) return tooMany(request, response, admission, 'failed-subscribes', overdrawn);
      plan.push({ answer: encodeJwtExpired(repoId) });
      continue;
    }
    // Nothing is subscribed while planning: every library of one user gets the same answer.
    const refusal = userCapRefusal({ index: hub.index, metrics, logger }, grant.username, false, admission.maxConnectionsPerUser(), { remote: client.address, repoId });
    if (refusal === null) plan.push({ grant, since: parsed.cursor.get(repoId) });
    else {
      userCapped++;
      plan.push({ answer: encodeError(refusal, repoId) });
    }
  }
  if (userCapped > 0 && !plan.some((outcome) => 'grant' in outcome)) {
    const max = admission.maxConnectionsPerUser();
    return tooMany(request, response, admission, 'user-cap', {
      message: `too many connections for this user (max_connections_per_user is ${max}); close one, or try again in ${RETRY_AFTER_SECONDS} s`,
      retryAfterSeconds: RETRY_AFTER_SECONDS,
    });
  }
  return plan;
}

let nextId = 1;

/**
 * What an SSE stream and a long poll have in common as subscribers: they subscribe the
 * libraries of one request at once, resuming each from the request's cursor through the
 * hub's replay, and keep the cursor up to date with every positioned message they pass on.
 * Ids are negative so that they never meet a WebSocket connection's in the logs.
 */
export abstract class HttpSubscriber implements Subscriber {
  readonly id = -nextId++;
  /** SSE and long polling always carry positions: they exist to resume. */
  readonly positioned = true;
  readonly cursor: Cursor;
  readonly remote: string;

  constructor(
    protected readonly context: HttpSubscriberContext,
    client: ClientAddress,
    request: FallbackRequest,
  ) {
    this.remote = client.address;
    // Only the request's libraries: a cursor naming others must not grow every id: line.
    const named = new Set(request.entries.map((entry) => entry.repoId));
    this.cursor = new Map([...request.cursor].filter(([repoId]) => named.has(repoId)));
  }

  /** Subscribes the libraries of the plan and answers the others (`jwt-expired`, `error`), as on a WebSocket. */
  protected subscribeAll(plan: SubscribePlan): void {
    for (const outcome of plan) {
      if ('grant' in outcome) this.context.hub.subscribe(this, outcome.grant, outcome.since);
      else this.send(outcome.answer);
    }
  }

  /** Libraries still subscribed: none left means the client has to come back with new tokens. */
  protected get subscribed(): number {
    return this.context.hub.index.countOf(this);
  }

  protected get cursorText(): string {
    return formatCursor(this.cursor);
  }

  send(message: Outgoing): void {
    if (message.repoId !== undefined && message.position !== undefined) this.cursor.set(message.repoId, message.position);
    this.deliver(message);
  }

  /** One complete message for this client, the cursor already moved past it. */
  protected abstract deliver(message: Outgoing): void;

  /** Leaves the hub: every subscription of this request ends. */
  protected leave(): void {
    this.context.hub.removeSubscriber(this);
  }
}
