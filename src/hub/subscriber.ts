import type { Outgoing } from '../protocol/outgoing.js';

/** One client connection as the hub sees it, whatever the transport. */
export interface Subscriber {
  readonly id: number;
  /**
   * Queues a complete message for this client; never blocks, may close a slow client. A
   * positioned message names the position it moves the client to (a transport may use it,
   * e.g. as an SSE `id:`); its frame already carries it.
   */
  send(message: Outgoing): void;
  /**
   * True when the client opted in to the positions extension (docs/recovery.md): it receives
   * positioned frames, `subscribed` and `resync` messages, and may recover with `since`.
   * Absent or false: stock frames only.
   */
  readonly positioned?: boolean;
}

/** One library followed by one subscriber, under the user its token names. */
export interface Subscription {
  readonly subscriber: Subscriber;
  readonly repoId: string;
  readonly username: string;
  /** Unix milliseconds: the token's `exp`. */
  readonly expiresAt: number;
}
