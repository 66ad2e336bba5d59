import type { SubscriberGrant } from '../auth/subscriber-token.js';
import type { GroupDirectory } from '../groups/group-directory.js';
import type { Logger } from '../log.js';
import { NO_METRICS, type Metrics } from '../metrics/metrics.js';
import { encodeJwtExpired, type LibraryEvent } from '../protocol/event.js';
import { ExpirySchedule } from './expiry-schedule.js';
import type { Subscriber, Subscription } from './subscriber.js';
import { SubscriptionIndex } from './subscription-index.js';

export interface HubOptions {
  /** Null when no group database is configured: group-targeted events reach nobody. */
  groups: GroupDirectory | null;
  logger: Logger;
  /** Where deliveries, expiries and undelivered group events are counted. */
  metrics?: Metrics;
  now?: () => number;
}

const NOBODY: ReadonlySet<Subscription> = new Set();

/** An event waiting behind a group lookup, with the moment it was accepted (performance.now()). */
interface PendingEvent {
  event: LibraryEvent;
  acceptedAt: number;
}

/**
 * Subscriptions and fan-out. Each event is delivered in the order it was accepted: directly
 * when its audience is known, or after its group lookup, in which case later events of the
 * same library wait behind it (and only those: other libraries keep flowing).
 */
export class Hub {
  readonly index = new SubscriptionIndex();
  readonly #expiry: ExpirySchedule<Subscription>;
  /** Libraries with a group lookup in flight, and the events accepted behind it. */
  readonly #waiting = new Map<string, PendingEvent[]>();
  readonly #groups: GroupDirectory | null;
  readonly #logger: Logger;
  readonly #metrics: Metrics;
  #warnedNoGroups = false;

  constructor(options: HubOptions) {
    this.#groups = options.groups;
    this.#logger = options.logger;
    this.#metrics = options.metrics ?? NO_METRICS;
    this.#expiry = new ExpirySchedule<Subscription>(
      (s) => this.index.get(s.subscriber, s.repoId) === s,
      (s) => this.#expire(s),
      options.now,
    );
  }

  subscribe(subscriber: Subscriber, grant: SubscriberGrant): void {
    const subscription: Subscription = { subscriber, ...grant };
    if (this.index.add(subscription) !== undefined) this.#expiry.cancelled();
    this.#expiry.add(subscription);
  }

  unsubscribe(subscriber: Subscriber, repoId: string): void {
    const subscription = this.index.get(subscriber, repoId);
    if (subscription !== undefined && this.index.delete(subscription)) this.#expiry.cancelled();
  }

  /** Forgets a subscriber that went away. */
  removeSubscriber(subscriber: Subscriber): void {
    const count = this.index.countOf(subscriber);
    this.index.deleteSubscriber(subscriber);
    for (let i = 0; i < count; i++) this.#expiry.cancelled();
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

  #deliver(event: LibraryEvent, members: ReadonlySet<string> | null, acceptedAt: number): void {
    const followers = this.index.followers(event.repoId) ?? NOBODY;
    const { audience, frame } = event;
    let sent = 0;
    for (const subscription of followers) {
      if (audience.kind === 'user' && subscription.username !== audience.username) continue;
      if (members !== null && !members.has(subscription.username)) continue;
      subscription.subscriber.send(frame);
      sent++;
    }
    // ws has written each frame to its socket (or queued it behind earlier ones) by now.
    this.#metrics.eventDelivered(event, sent, (performance.now() - acceptedAt) / 1000);
  }

  #expire(subscription: Subscription): void {
    this.index.delete(subscription);
    this.#metrics.subscriptionExpired();
    subscription.subscriber.send(encodeJwtExpired(subscription.repoId));
  }
}
