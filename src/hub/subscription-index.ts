import type { Subscriber, Subscription } from './subscriber.js';

/**
 * Who follows which library: looked up by library for fan-out, by subscriber for cleanup, and
 * by user name for the per-user connection cap.
 */
export class SubscriptionIndex {
  readonly #byLibrary = new Map<string, Set<Subscription>>();
  readonly #bySubscriber = new Map<Subscriber, Map<string, Subscription>>();
  /** User name → the subscribers holding a subscription under it, with how many each holds. */
  readonly #byUser = new Map<string, Map<Subscriber, number>>();
  #count = 0;

  /** Adds or replaces the subscriber's subscription to the library; returns the one replaced. */
  add(subscription: Subscription): Subscription | undefined {
    const { subscriber, repoId } = subscription;
    let mine = this.#bySubscriber.get(subscriber);
    if (mine === undefined) {
      mine = new Map();
      this.#bySubscriber.set(subscriber, mine);
    }
    const previous = mine.get(repoId);
    if (previous !== undefined) this.#deleteFromLibrary(previous);
    else this.#count++;
    mine.set(repoId, subscription);
    this.#countUser(subscription, 1);
    let followers = this.#byLibrary.get(repoId);
    if (followers === undefined) {
      followers = new Set();
      this.#byLibrary.set(repoId, followers);
    }
    followers.add(subscription);
    return previous;
  }

  /** Removes the subscription if it is still the current one; returns whether it was. */
  delete(subscription: Subscription): boolean {
    const mine = this.#bySubscriber.get(subscription.subscriber);
    if (mine?.get(subscription.repoId) !== subscription) return false;
    mine.delete(subscription.repoId);
    if (mine.size === 0) this.#bySubscriber.delete(subscription.subscriber);
    this.#deleteFromLibrary(subscription);
    this.#count--;
    return true;
  }

  subscribersOf(username: string): number {
    return this.#byUser.get(username)?.size ?? 0;
  }

  holdsUser(subscriber: Subscriber, username: string): boolean {
    return this.#byUser.get(username)?.has(subscriber) ?? false;
  }

  get(subscriber: Subscriber, repoId: string): Subscription | undefined {
    return this.#bySubscriber.get(subscriber)?.get(repoId);
  }

  /** Removes every subscription of the subscriber; returns them. */
  deleteSubscriber(subscriber: Subscriber): Subscription[] {
    const mine = [...(this.#bySubscriber.get(subscriber)?.values() ?? [])];
    this.#bySubscriber.delete(subscriber);
    for (const subscription of mine) this.#deleteFromLibrary(subscription);
    this.#count -= mine.length;
    return mine;
  }

  followers(repoId: string): ReadonlySet<Subscription> | undefined {
    return this.#byLibrary.get(repoId);
  }

  libraryIds(): IterableIterator<string> {
    return this.#byLibrary.keys();
  }

  countOf(subscriber: Subscriber): number {
    return this.#bySubscriber.get(subscriber)?.size ?? 0;
  }

  get size(): number {
    return this.#count;
  }

  get libraries(): number {
    return this.#byLibrary.size;
  }

  #countUser({ subscriber, username }: Subscription, change: 1 | -1): void {
    let holders = this.#byUser.get(username);
    if (holders === undefined) {
      holders = new Map();
      this.#byUser.set(username, holders);
    }
    const held = (holders.get(subscriber) ?? 0) + change;
    if (held > 0) holders.set(subscriber, held);
    else {
      holders.delete(subscriber);
      if (holders.size === 0) this.#byUser.delete(username);
    }
  }

  /** Also uncounts it for its user: every removal passes here. */
  #deleteFromLibrary(subscription: Subscription): void {
    this.#countUser(subscription, -1);
    const followers = this.#byLibrary.get(subscription.repoId);
    if (followers === undefined) return;
    followers.delete(subscription);
    if (followers.size === 0) this.#byLibrary.delete(subscription.repoId);
  }
}
