import type { Outgoing } from '../protocol/outgoing.js';

/** One client connection as the hub sees it, whatever the transport. */
export interface Subscriber {
  readonly id: number;
  /** Queues a complete message for this client; never blocks, may close a slow client. */
  send(message: Outgoing): void;
  /** The client opted in to the positions extension (docs/recovery.md); absent: stock frames only. */
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
