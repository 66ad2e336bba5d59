import type { VerificationKeys } from '../auth/key-ring.js';
import { SubscribeRefused, verifySubscriberToken } from '../auth/subscriber-token.js';
import type { Hub } from '../hub/hub.js';
import type { Subscriber } from '../hub/subscriber.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { parsePosition, type Position } from '../history/position.js';
import { encodeJwtExpired } from '../protocol/event.js';
import { formatCursor, type Cursor } from './cursor.js';
import type { FallbackRequest } from './fallback-request.js';

export interface HttpSubscriberContext {
  hub: Hub;
  key: VerificationKeys;
  logger: Logger;
  metrics: Metrics;
  now: () => number;
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

  constructor(
    protected readonly context: HttpSubscriberContext,
    readonly remote: string,
    request: FallbackRequest,
  ) {
    // Only the request's libraries: a cursor naming others must not grow every id: line.
    const named = new Set(request.entries.map((entry) => entry.repoId));
    this.cursor = new Map([...request.cursor].filter(([repoId]) => named.has(repoId)));
  }

  /** Subscribes every library of the request; a refused token is answered with `jwt-expired`, as on a WebSocket. */
  protected subscribeAll(request: FallbackRequest): void {
    const { hub, key, logger, metrics } = this.context;
    const now = this.context.now();
    for (const { repoId, token } of request.entries) {
      try {
        const grant = verifySubscriberToken(token, repoId, key, now);
        hub.subscribe(this, grant, request.cursor.get(repoId));
      } catch (err) {
        if (!(err instanceof SubscribeRefused)) throw err;
        metrics.subscribeRefused(err.reason);
        logger.debug({ subscriber: this.id, remote: this.remote, repoId, reason: err.reason }, `subscribe refused: ${err.message}`);
        this.send(encodeJwtExpired(repoId));
      }
    }
  }

  /** Libraries still subscribed: none left means the client has to come back with new tokens. */
  protected get subscribed(): number {
    return this.context.hub.index.countOf(this);
  }

  protected get cursorText(): string {
    return formatCursor(this.cursor);
  }

  send(frame: Buffer, position?: Position): void {
    const moved = movedTo(frame, position);
    if (moved !== null) this.cursor.set(moved.repoId, moved.position);
    this.deliver(frame);
  }

  /** One complete message for this client, the cursor already moved past it. */
  protected abstract deliver(frame: Buffer): void;

  /** Leaves the hub: every subscription of this request ends. */
  protected leave(): void {
    this.context.hub.removeSubscriber(this);
  }
}

/**
 * The library and position a message moves the cursor to: a positioned event's, or the one
 * in `subscribed` and `resync` (their repo id is in the frame, not handed along, so it is
 * parsed: fallback clients are few).
 */
function movedTo(frame: Buffer, position: Position | undefined): { repoId: string; position: Position } | null {
  if (position === undefined && !frame.subarray(0, 24).toString('latin1').match(/^\{"type":"(subscribed|resync)"/)) return null;
  let message: unknown;
  try {
    message = JSON.parse(frame.toString('utf8'));
  } catch {
    return null;
  }
  const content = typeof message === 'object' && message !== null ? (message as { content?: unknown }).content : undefined;
  const repoId = typeof content === 'object' && content !== null ? (content as Record<string, unknown>)['repo_id'] : undefined;
  if (typeof repoId !== 'string') return null;
  const moved = position ?? parsePosition((content as Record<string, unknown>)['position']);
  return moved === null ? null : { repoId, position: moved };
}
