import type { Subscriber, Subscription } from './subscriber.js';

/** Who follows which library: looked up by library for fan-out, by subscriber for cleanup. */
export class SubscriptionIndex {
  readonly #byLibrary = new Map<string, Set<Subscription>>();
  readonly #bySubscriber = new Map<Subscriber, Map<string, Subscription>>();
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

  get(subscriber: Subscriber, repoId: string): Subscription | undefined {
    return this.#bySubscriber.get(subscriber)?.get(repoId);
  }

  /** Removes every subscription of the subscriber. */
  deleteSubscriber(subscriber: Subscriber): void {
    const mine = this.#bySubscriber.get(subscriber);
    if (mine === undefined) return;
    for (const subscription of mine.values()) this.#deleteFromLibrary(subscription);
    this.#count -= mine.size;
    this.#bySubscriber.delete(subscriber);
  }

  followers(repoId: string): ReadonlySet<Subscription> | undefined {
    return this.#byLibrary.get(repoId);
  }

  /** The libraries someone follows here. */
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

  #deleteFromLibrary(subscription: Subscription): void {
    const followers = this.#byLibrary.get(subscription.repoId);
    if (followers === undefined) return;
    followers.delete(subscription);
    if (followers.size === 0) this.#byLibrary.delete(subscription.repoId);
  }
}
