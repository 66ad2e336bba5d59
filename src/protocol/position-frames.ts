/** The messages of the positions extension (docs/recovery.md). Stock clients never see them. */
import type { ResyncReason } from '../history/event-history.js';
import { positionJson, type Position } from '../history/position.js';
import type { LibraryEvent } from './event.js';
import type { Outgoing } from './outgoing.js';

/** The WebSocket subprotocol a client offers to opt in. */
export const POSITIONS_SUBPROTOCOL = 'notification.positions.v1';

/** A memo keyed by the event object: a copy of an event (given another position) is encoded anew. */
const encoded = new WeakMap<LibraryEvent, Outgoing>();

/**
 * The stock frame with the event's `position` added as a last member, encoded once per event
 * however many subscribers receive it. An event without a position is sent as its stock frame.
 */
export function positionedMessage(event: LibraryEvent): Outgoing {
  const { repoId, position } = event;
  if (position === undefined) return { kind: 'event', repoId, frame: event.frame };
  let message = encoded.get(event);
  if (message === undefined) {
    // The stock frame is `{"type":...,"content":<raw>}`: insert before its closing brace.
    const frame = Buffer.concat([event.frame.subarray(0, event.frame.length - 1), Buffer.from(`,"position":${positionJson(position)}}`)]);
    message = { kind: 'event', repoId, position, frame };
    encoded.set(event, message);
  }
  return message;
}

/** The library is followed; what the client missed (if it asked) was sent before this; live events follow. */
export function encodeSubscribed(repoId: string, position: Position): Outgoing {
  const frame = Buffer.from(`{"type":"subscribed","content":{"repo_id":${JSON.stringify(repoId)},"position":${positionJson(position)}}}`);
  return { kind: 'subscribed', repoId, position, frame };
}

/** What the client missed cannot be given; it is subscribed from `position` (null: not known) all the same. */
export function encodeResync(repoId: string, reason: ResyncReason, position: Position | null): Outgoing {
  const where = position === null ? 'null' : positionJson(position);
  const frame = Buffer.from(`{"type":"resync","content":{"repo_id":${JSON.stringify(repoId)},"reason":"${reason}","position":${where}}}`);
  return position === null ? { kind: 'resync', repoId, frame } : { kind: 'resync', repoId, position, frame };
}
