import type { LiveSettings } from '../config/settings.js';
import type { ClientAddress } from '../transport/client-address.js';

/**
 * A token bucket of refused subscribes (bad or expired tokens), refilled continuously up to the
 * per-minute limit. A WebSocket holds its own; fallback requests share one per client address.
 */
export class FailureAllowance {
  #left: number;
  #checkedAt: number;

  constructor(perMinute: number, now: number) {
    this.#left = perMinute;
    this.#checkedAt = now;
  }

  /** Refused subscribes still allowed now. */
  left(now: number, perMinute: number): number {
    const elapsed = Math.max(0, now - this.#checkedAt);
    this.#checkedAt = now;
    this.#left = Math.min(perMinute, this.#left + (elapsed * perMinute) / 60_000);
    return this.#left;
  }

  /** Takes one refused subscribe; false when the bucket is empty (nothing is taken then). */
  take(now: number, perMinute: number): boolean {
    if (this.left(now, perMinute) < 1) return false;
    this.#left -= 1;
    return true;
  }
}

/**
 * max_failed_subscribes_per_minute for SSE and long polling, where every request is new: one
 * bucket per client address. Once it is empty the address's requests are refused (429) before
 * any token is checked, so a client looping on a bad key costs a trickle of JWT checks.
 */
export class FailuresPerAddress {
  readonly #buckets = new Map<string, FailureAllowance>();
  #prunedAt: number;

  constructor(
    private readonly live: Pick<LiveSettings, 'limits'>,
    private readonly now: () => number,
  ) {
    this.#prunedAt = now();
  }

  private get perMinute(): number {
    return this.live.limits.maxFailedSubscribesPerMinute;
  }

  /** Null when the client may present tokens; else the 429's message and Retry-After, the seconds until one more refused token is allowed. */
  refusal(client: ClientAddress): { message: string; retryAfterSeconds: number } | null {
    // Through a trusted proxy that names nobody, the address stands for many clients: not limited, as for the connection cap.
    const bucket = this.perMinute === 0 || client.unattributed ? undefined : this.#buckets.get(client.address);
    if (bucket === undefined || bucket.left(this.now(), this.perMinute) >= 1) return null;
    return this.exhausted();
  }

  /** The 429 for a request whose refused token found the bucket empty (take() returned false). */
  exhausted(): { message: string; retryAfterSeconds: number } {
    const retryAfterSeconds = Math.max(1, Math.ceil(60 / this.perMinute));
    return {
      message: `too many refused tokens from your address (max_failed_subscribes_per_minute is ${this.perMinute}); fetch new tokens, then try again in ${retryAfterSeconds} s`,
      retryAfterSeconds,
    };
  }

  /** Takes one refused token of the client; false when its bucket was already empty. */
  take(client: ClientAddress): boolean {
    if (this.perMinute === 0 || client.unattributed) return true;
    const now = this.now();
    this.#prune(now);
    let bucket = this.#buckets.get(client.address);
    if (bucket === undefined) this.#buckets.set(client.address, (bucket = new FailureAllowance(this.perMinute, now)));
    return bucket.take(now, this.perMinute);
  }

  /** Addresses with a bucket not yet refilled. */
  get size(): number {
    return this.#buckets.size;
  }

  #prune(now: number): void {
    if (now - this.#prunedAt < 60_000) return;
    this.#prunedAt = now;
    for (const [address, bucket] of this.#buckets) if (bucket.left(now, this.perMinute) >= this.perMinute) this.#buckets.delete(address);
  }
}
