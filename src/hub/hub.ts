import type { SubscriberGrant } from '../auth/subscriber-token.js';
import type { GroupDirectory } from '../groups/group-directory.js';
import type { EventHistory, ResyncReason } from '../history/event-history.js';
import type { Position } from '../history/position.js';
import type { Logger } from '../log.js';
import { NO_METRICS, type Metrics } from '../metrics/metrics.js';
import { encodeJwtExpired, type LibraryEvent } from '../protocol/event.js';
import type { Outgoing } from '../protocol/outgoing.js';
import { ExpirySchedule } from './expiry-schedule.js';
import { PositionedDelivery } from './positioned-delivery.js';
import type { Subscriber, Subscription } from './subscriber.js';
import { SubscriptionIndex } from './subscription-index.js';

export interface HubOptions {
  /** Null when no group database is configured: group-targeted events reach nobody. */
  groups: GroupDirectory | null;
  logger: Logger;
  metrics?: Metrics;
  now?: () => number;
  /** Where positioned subscribers recover what they missed; absent: they are told to resync. */
  history?: EventHistory;
}

const NOBODY: ReadonlySet<Subscription> = new Set();

const NO_HISTORY: EventHistory = {
  read: async () => ({ kind: 'resync', reason: 'history-unavailable', position: null }),
};

/**
 * Subscriptions and fan-out. Each event is delivered in the order it was accepted: directly
 * when its audience is known, or after its group lookup, in which case later events of the
 * same library wait behind it (and only those: other libraries keep flowing).
 * Positioned subscribers are served by positioned-delivery.ts.
 */
export class Hub {
  readonly #index = new SubscriptionIndex();
  readonly #expiry: ExpirySchedule<Subscription>;
  /** Libraries with a group lookup in flight, and the events accepted behind it (performance.now() at acceptance). */
  readonly #waiting = new Map<string, Array<{ event: LibraryEvent; acceptedAt: number }>>();
  readonly #groups: GroupDirectory | null;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  readonly #positioned: PositionedDelivery;
  #warnedNoGroups = false;

  constructor(options: HubOptions) {
    this.#groups = options.groups;
    this.#logger = options.logger;
    this.#metrics = options.metrics ?? NO_METRICS;
    this.#expiry = new ExpirySchedule<Subscription>((s) => this.#isCurrent(s), (s) => this.#expire(s), options.now);
    const reaches = (subscription: Subscription, event: LibraryEvent): Promise<boolean> => this.#reaches(subscription, event);
    this.#positioned = new PositionedDelivery(options.history ?? NO_HISTORY, reaches, options.logger, this.#metrics);
  }

  /** Follows the library, replacing any previous subscription to it; `since`: PositionedDelivery.start. */
  subscribe(subscriber: Subscriber, grant: SubscriberGrant, since?: Position | null): void {
    const subscription: Subscription = { subscriber, ...grant };
    const previous = this.#index.add(subscription);
    if (previous !== undefined) this.#expiry.cancelled();
    this.#expiry.add(subscription);
    if (subscriber.positioned) this.#positioned.start(subscription, since, previous);
  }

  unsubscribe(subscriber: Subscriber, repoId: string): void {
    const subscription = this.#index.get(subscriber, repoId);
    if (subscription === undefined) return;
    this.#index.delete(subscription);
    this.#expiry.cancelled();
    this.#positioned.forget(subscription);
  }

  removeSubscriber(subscriber: Subscriber): void {
    const removed = this.#index.deleteSubscriber(subscriber);
    this.#expiry.cancelled(removed.length);
    for (const subscription of removed) this.#positioned.forget(subscription);
  }

  librariesOf(subscriber: Subscriber): number {
    return this.#index.countOf(subscriber);
  }

  follows(subscriber: Subscriber, repoId: string): boolean {
    return this.#index.get(subscriber, repoId) !== undefined;
  }

  /** Subscribers holding at least one subscription under `username` (max_connections_per_user). */
  subscribersOfUser(username: string): number {
    return this.#index.subscribersOf(username);
  }

  holdsUser(subscriber: Subscriber, username: string): boolean {
    return this.#index.holdsUser(subscriber, username);
  }

  *followersOf(repoId: string): Generator<Subscriber> {
    for (const subscription of this.#index.followers(repoId) ?? NOBODY) yield subscription.subscriber;
  }

  followerCount(repoId: string): number {
    return this.#index.followers(repoId)?.size ?? 0;
  }

  followedLibraries(): IterableIterator<string> {
    return this.#index.libraryIds();
  }

  get subscriptions(): number {
    return this.#index.size;
  }

  get libraries(): number {
    return this.#index.libraries;
  }

  /** The backplane is back after an outage: positioned subscribers catch up on what they missed. */
  catchUp(): void {
    this.#positioned.catchUp();
  }

  /** Positioned subscribers of these libraries (or of all) missed events no history holds. */
  resync(libraries: ReadonlySet<string> | 'all', reason: ResyncReason): void {
    this.#positioned.resync(libraries, reason);
  }

  get positionedSubscriptions(): number {
    return this.#positioned.size;
  }

  publish(event: LibraryEvent): void {
    const acceptedAt = performance.now();
    const waiting = this.#waiting.get(event.repoId);
    if (waiting !== undefined) {
      waiting.push({ event, acceptedAt });
    } else if (event.audience.kind === 'group') {
      this.#waiting.set(event.repoId, [{ event, acceptedAt }]);
      void this.#drain(event.repoId);
    } else {
      this.#deliver(event, null, acceptedAt);
    }
  }

  close(): void {
    this.#expiry.stop();
  }

  async #drain(repoId: string): Promise<void> {
    const queue = this.#waiting.get(repoId)!;
    while (queue.length > 0) {
      const { event, acceptedAt } = queue[0]!;
      const members = event.audience.kind === 'group' ? await this.#members(event.audience.groupId, event) : null;
      this.#deliver(event, members, acceptedAt);
      queue.shift();
    }
    this.#waiting.delete(repoId);
  }

  /** Group members, or an empty set when they cannot be known: permission events fail closed. */
  async #members(groupId: number, event: LibraryEvent): Promise<ReadonlySet<string>> {
    if (this.#groups === null) {
      this.#metrics.groupEventUndelivered('no-database');
      if (!this.#warnedNoGroups) {
        this.#warnedNoGroups = true;
        this.#logger.warn(
          { repoId: event.repoId, groupId },
          'a folder-perm-changed event for a group was not delivered: no group database is configured (set CCNET_DB_URL, SEAFILE_MYSQL_DB_* or ccnet.conf [Database]); further ones are dropped silently',
        );
      }
      return new Set();
    }
    try {
      return await this.#groups.members(groupId);
    } catch (err) {
      this.#metrics.groupEventUndelivered('lookup-failed');
      this.#logger.error(
        { err, repoId: event.repoId, groupId },
        'group lookup failed: the folder-perm-changed event was delivered to nobody',
      );
      return new Set();
    }
  }

  /** Whether the event is meant for the subscription's user, looking up its group if it has one. */
  async #reaches(subscription: Subscription, event: LibraryEvent): Promise<boolean> {
    const { audience } = event;
    if (audience.kind === 'library') return true;
    if (audience.kind === 'user') return subscription.username === audience.username;
    return (await this.#members(audience.groupId, event)).has(subscription.username);
  }

  #deliver(event: LibraryEvent, members: ReadonlySet<string> | null, acceptedAt: number): void {
    const followers = this.#index.followers(event.repoId) ?? NOBODY;
    const { audience, frame, repoId } = event;
    let stock: Outgoing | undefined;
    let sent = 0;
    for (const subscription of followers) {
      const reached =
        (audience.kind !== 'user' || subscription.username === audience.username) &&
        (members === null || members.has(subscription.username));
      if (subscription.subscriber.positioned) {
        // Positioned subscribers see every event of the library go by, to keep their place.
        this.#positioned.live(subscription, event, reached);
        if (reached) sent++;
        continue;
      }
      if (!reached) continue;
      subscription.subscriber.send((stock ??= { kind: 'event', repoId, frame }));
      sent++;
    }
    // ws has written each frame to its socket (or queued it behind earlier ones) by now.
    this.#metrics.eventDelivered(event, sent, (performance.now() - acceptedAt) / 1000);
  }

  #isCurrent(subscription: Subscription): boolean {
    return this.#index.get(subscription.subscriber, subscription.repoId) === subscription;
  }

  #expire(subscription: Subscription): void {
    this.#index.delete(subscription);
    this.#positioned.forget(subscription);
    this.#metrics.subscriptionExpired();
    subscription.subscriber.send(encodeJwtExpired(subscription.repoId));
  }
}
