import type { Position } from '../history/position.js';

/** A message on its way to a client: its frame, encoded once, and what it is (no transport parses it back). */
export interface Outgoing {
  readonly kind: 'event' | 'subscribed' | 'resync' | 'jwt-expired' | 'error';
  /** The complete JSON text frame, as it goes on the wire. */
  readonly frame: Buffer;
  /** The library it is about; absent for an `error` about the connection itself. */
  readonly repoId?: string;
  /** Positioned messages only: where the client stands in `repoId`'s stream once it has this one. */
  readonly position?: Position;
}
