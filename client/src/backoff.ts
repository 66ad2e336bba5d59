/** How long to wait between attempts. */
export interface BackoffOptions {
  /** The ceiling of the first delay (default 1000 ms). */
  initialMs: number;
  /** The largest ceiling, however many attempts failed (default 30000 ms). */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000 };

/**
 * Exponential backoff with full jitter: attempt n waits a uniformly random time in
 * [0, min(maxMs, initialMs * 2^n)]. The jitter spreads the clients of a restarted server
 * over the whole window instead of bringing them back in the same second.
 */
export class Backoff {
  #attempt = 0;

  constructor(
    private readonly options: BackoffOptions,
    private readonly random: () => number = Math.random,
  ) {
    if (!(options.initialMs > 0) || !(options.maxMs >= options.initialMs)) {
      throw new RangeError(`backoff needs 0 < initialMs <= maxMs, got initialMs ${options.initialMs}, maxMs ${options.maxMs}`);
    }
  }

  /** Failures since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The delay before the next attempt, in milliseconds. */
  next(): number {
    // The exponent stops growing once the ceiling is reached, so it never overflows.
    const ceiling = Math.min(this.options.maxMs, this.options.initialMs * 2 ** Math.min(this.#attempt, 52));
    this.#attempt++;
    return Math.floor(this.random() * ceiling);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
