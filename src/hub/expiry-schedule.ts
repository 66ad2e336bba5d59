/**
 * Fires each entry at its deadline with one timer for all (a binary min-heap). Cancelling is
 * lazy: stale entries are skipped on fire, and swept out once they outnumber the live ones
 * (tokens live 72 hours; churn must not pile them up).
 */
export class ExpirySchedule<T extends { readonly expiresAt: number }> {
  #heap: T[] = [];
  #cancelled = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;

  constructor(
    private readonly isCurrent: (entry: T) => boolean,
    private readonly onExpire: (entry: T) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Tells the schedule `count` of its entries are no longer current. */
  cancelled(count = 1): void {
    this.#cancelled += count;
    if (this.#cancelled > 1024 && this.#cancelled * 2 > this.#heap.length) this.#sweep();
  }

  add(entry: T): void {
    const heap = this.#heap;
    let i = heap.push(entry) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.expiresAt <= entry.expiresAt) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
    this.#arm();
  }

  #sweep(): void {
    // An array sorted by deadline is a valid heap.
    this.#heap = this.#heap.filter(this.isCurrent).sort((a, b) => a.expiresAt - b.expiresAt);
    this.#cancelled = 0;
  }

  get size(): number {
    return this.#heap.length;
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #pop(): T | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]!.expiresAt < heap[left]!.expiresAt ? right : left;
      if (heap[child]!.expiresAt >= last.expiresAt) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }

  #arm(): void {
    const next = this.#heap[0];
    if (next === undefined || next.expiresAt >= this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = next.expiresAt;
    // setTimeout takes at most 2^31-1 ms; a later deadline re-arms when that fires.
    const delay = Math.min(Math.max(0, next.expiresAt - this.now()), 2 ** 31 - 1);
    this.#timer = setTimeout(() => this.#fire(), delay);
    this.#timer.unref();
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.now();
    while (this.#heap.length > 0 && this.#heap[0]!.expiresAt <= now) {
      const entry = this.#pop()!;
      if (this.isCurrent(entry)) this.onExpire(entry);
      else if (this.#cancelled > 0) this.#cancelled--;
    }
    this.#arm();
  }
}
