import type { Position } from '../history/position.js';

/**
 * A message on its way to a client: its frame, encoded once however many clients receive it,
 * and what it is, so that a transport never reads back a frame the server encoded.
 */
export interface Outgoing {
  readonly kind: 'event' | 'subscribed' | 'resync' | 'jwt-expired' | 'error';
  /** The complete JSON text frame, as it goes on the wire. */
  readonly frame: Buffer;
  /** The library it is about; absent for an `error` about the connection itself. */
  readonly repoId?: string;
  /** Positioned messages only: where the client stands in `repoId`'s stream once it has this one. */
  readonly position?: Position;
}
