/**
 * What a positioned subscriber receives for one library (docs/recovery.md): the replay, then
 * `subscribed` or `resync`, then live events, with no gap and no duplicate between the two.
 * Live events that arrive during a replay are held and sent after it, minus those it carried.
 * A skipped offset or a backplane back from an outage starts another catch-up.
 */
import type { EventHistory, HistoryRead, ResyncReason } from '../history/event-history.js';
import type { Position } from '../history/position.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { LibraryEvent } from '../protocol/event.js';
import { encodeResync, encodeSubscribed, positionedMessage } from '../protocol/position-frames.js';
import type { Subscription } from './subscriber.js';

/** Live events held for one subscription while its replay is read; past this it is told to resync. */
const MAX_HELD_EVENTS = 10_000;

interface HeldEvent {
  event: LibraryEvent;
  reached: boolean;
}

interface Cursor {
  subscription: Subscription;
  /** The last event handled for it (sent, or not meant for its user); null: not known. */
  at: Position | null;
  /** Live events held while a replay is read; null when live. */
  held: HeldEvent[] | null;
  /** Held events were dropped past MAX_HELD_EVENTS: the replay ends in a resync from here. */
  overflowAt: Position | null;
  /** A resync asked for while a replay was being read: sent once it is done. */
  pendingResync?: ResyncReason;
  /** A catch-up asked for while a replay was being read: started once it is done. */
  pendingCatchUp?: boolean;
}

/** The events after `since` (null: only where the library stands), or only that position for a resync. */
type Request = { since: Position | null } | { resync: ResyncReason };

export class PositionedDelivery {
  readonly #cursors = new Map<Subscription, Cursor>();

  constructor(
    private readonly history: EventHistory,
    /** Whether the subscription's user is in the event's audience (a group event looks up the group). */
    private readonly reaches: (subscription: Subscription, event: LibraryEvent) => Promise<boolean>,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {}

  /**
   * A positioned subscription begins, replacing `previous` (e.g. on a token renewal). `since`:
   * absent, nothing to recover (a renewal goes on from where `previous` was); a position,
   * recover from it; null, the client sent something that is not a position.
   */
  start(subscription: Subscription, since: Position | null | undefined, previous?: Subscription): void {
    const previousAt = previous === undefined ? null : (this.#cursors.get(previous)?.at ?? null);
    if (previous !== undefined) this.forget(previous);
    const cursor: Cursor = { subscription, at: null, held: [], overflowAt: null };
    this.#cursors.set(subscription, cursor);
    void this.#recover(cursor, since === null ? { resync: 'unknown-position' } : { since: since ?? previousAt });
  }

  /** A live event of the library, in order; `reached`: whether it is meant for the subscription's user. */
  live(subscription: Subscription, event: LibraryEvent, reached: boolean): void {
    const cursor = this.#cursors.get(subscription);
    if (cursor === undefined) return;
    if (cursor.held !== null) {
      if (cursor.held.length < MAX_HELD_EVENTS) cursor.held.push({ event, reached });
      else cursor.overflowAt = event.position ?? cursor.overflowAt;
      return;
    }
    this.#handle(cursor, event, reached);
  }

  forget(subscription: Subscription): void {
    this.#cursors.delete(subscription);
  }

  catchUp(): void {
    for (const cursor of this.#cursors.values()) {
      if (cursor.held !== null) cursor.pendingCatchUp = true;
      else this.#catchUpOne(cursor);
    }
  }

  #catchUpOne(cursor: Cursor): void {
    delete cursor.pendingCatchUp;
    cursor.held = [];
    void this.#recover(cursor, cursor.at === null ? { resync: 'history-unavailable' } : { since: cursor.at });
  }

  /** Tells every subscription to one of `libraries` to resync, with where its library stands now. */
  resync(libraries: ReadonlySet<string> | 'all', reason: ResyncReason): void {
    for (const cursor of this.#cursors.values()) {
      if (libraries !== 'all' && !libraries.has(cursor.subscription.repoId)) continue;
      // One already reading its replay is told after it, from where the replay ends.
      if (cursor.held !== null) cursor.pendingResync = reason;
      else {
        cursor.held = [];
        void this.#recover(cursor, { resync: reason });
      }
    }
  }

  get size(): number {
    return this.#cursors.size;
  }

  #handle(cursor: Cursor, event: LibraryEvent, reached: boolean): void {
    const { subscriber } = cursor.subscription;
    const position = event.position;
    // Accepted while Redis was away: in no history, sent as it is; the cursor stays.
    if (position === undefined) {
      if (reached) subscriber.send(positionedMessage(event));
      return;
    }
    const at = cursor.at;
    if (at !== null) {
      const sameEpoch = at.epoch === position.epoch;
      if (sameEpoch && position.offset <= at.offset) return;
      if ((sameEpoch && position.offset > at.offset + 1) || (!sameEpoch && position.offset !== 1)) {
        // Events were missed in between: read them (this one included) before going on.
        cursor.held = [{ event, reached }];
        void this.#recover(cursor, { since: at });
        return;
      }
    }
    cursor.at = position;
    if (reached) subscriber.send(positionedMessage(event));
  }

  async #recover(cursor: Cursor, request: Request): Promise<void> {
    const { subscriber, repoId } = cursor.subscription;
    const read: HistoryRead = await this.history.read(repoId, 'since' in request ? request.since : null);
    if (!this.#owns(cursor)) return;
    if (cursor.overflowAt !== null) {
      this.#resync(cursor, 'too-far-behind', cursor.overflowAt);
    } else if ('resync' in request) {
      this.#resync(cursor, request.resync, read.position);
    } else if (cursor.pendingResync !== undefined) {
      this.#resync(cursor, cursor.pendingResync, read.position);
    } else if (read.kind === 'resync') {
      this.#resync(cursor, read.reason, read.position);
    } else {
      let replayed = 0;
      for (const event of read.events) {
        const reached = await this.reaches(cursor.subscription, event);
        if (!this.#owns(cursor)) return;
        if (!reached) continue;
        subscriber.send(positionedMessage(event));
        replayed++;
      }
      if (read.events.length > 0) this.logger.debug({ connection: subscriber.id, repoId, replayed: read.events.length }, 'replayed missed events');
      // A subscribe without a position has nothing to recover: only where the library stands.
      if (request.since !== null) this.metrics.recovered(replayed);
      cursor.at = read.position;
      subscriber.send(encodeSubscribed(repoId, read.position));
    }
    this.#drain(cursor);
  }

  #resync(cursor: Cursor, reason: ResyncReason, position: Position | null): void {
    const { subscriber, repoId } = cursor.subscription;
    this.logger.debug({ connection: subscriber.id, repoId, reason }, 'resync: missed events cannot be replayed');
    this.metrics.resynced(reason);
    cursor.at = position;
    cursor.overflowAt = null;
    delete cursor.pendingResync;
    subscriber.send(encodeResync(repoId, reason, position));
  }

  /** Sends what was held during the replay, then goes live; a gap among them starts another catch-up. */
  #drain(cursor: Cursor): void {
    const held = cursor.held ?? [];
    cursor.held = null;
    if (cursor.pendingCatchUp === true) {
      this.#catchUpOne(cursor);
      cursor.held!.push(...held);
      return;
    }
    for (let i = 0; i < held.length; i++) {
      this.#handle(cursor, held[i]!.event, held[i]!.reached);
      if (cursor.held !== null) {
        (cursor.held as HeldEvent[]).push(...held.slice(i + 1));
        return;
      }
    }
  }

  /** Whether the subscription is still current: the hub forgets its cursor with it. */
  #owns(cursor: Cursor): boolean {
    return this.#cursors.get(cursor.subscription) === cursor;
  }
}
