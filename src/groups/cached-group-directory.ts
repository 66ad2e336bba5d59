import { GroupLookupError, type GroupDirectory } from './group-directory.js';

export interface CachedGroupDirectoryOptions {
  /** How long a successful answer is reused. 0 disables caching but keeps coalescing. */
  ttlMs: number;
  /** A query not answered within it fails, whatever the driver waits on. Default: no deadline. */
  timeoutMs?: number;
  /** Groups kept at most; past it the oldest answer is dropped. Default 10,000. */
  maxGroups?: number;
  now?: () => number;
}

export interface GroupCacheStats {
  /** Lookups answered from the cache, or by joining a query in flight. */
  readonly hits: number;
  /** Database queries started. */
  readonly misses: number;
  /** Database queries that failed. */
  readonly failures: number;
}

/**
 * Keeps group membership for a short TTL so a burst of permission events costs one query,
 * not one per event. Failures are never cached: the next lookup asks the database again.
 */
export class CachedGroupDirectory implements GroupDirectory {
  readonly #inner: GroupDirectory;
  readonly #ttlMs: number;
  readonly #timeoutMs: number | null;
  readonly #maxGroups: number;
  readonly #now: () => number;
  // Insertion order: the first key is the oldest answer.
  readonly #answers = new Map<number, { members: ReadonlySet<string>; expiresAt: number }>();
  readonly #inFlight = new Map<number, Promise<ReadonlySet<string>>>();
  readonly #stats = { hits: 0, misses: 0, failures: 0 };

  constructor(inner: GroupDirectory, options: CachedGroupDirectoryOptions) {
    if (!(options.ttlMs >= 0)) throw new RangeError(`ttlMs must be >= 0, got ${options.ttlMs}`);
    const maxGroups = options.maxGroups ?? 10_000;
    if (!(maxGroups >= 1)) throw new RangeError(`maxGroups must be >= 1, got ${maxGroups}`);
    this.#inner = inner;
    this.#ttlMs = options.ttlMs;
    if (options.timeoutMs !== undefined && !(options.timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0, got ${options.timeoutMs}`);
    this.#timeoutMs = options.timeoutMs ?? null;
    this.#maxGroups = maxGroups;
    this.#now = options.now ?? Date.now;
  }

  get stats(): GroupCacheStats {
    return { ...this.#stats };
  }

  members(groupId: number): Promise<ReadonlySet<string>> {
    const cached = this.#answers.get(groupId);
    if (cached !== undefined) {
      if (this.#now() < cached.expiresAt) {
        this.#stats.hits++;
        return Promise.resolve(cached.members);
      }
      this.#answers.delete(groupId);
    }
    const pending = this.#inFlight.get(groupId);
    if (pending !== undefined) {
      this.#stats.hits++;
      return pending;
    }
    this.#stats.misses++;
    const lookup = this.#query(groupId);
    this.#inFlight.set(groupId, lookup);
    return lookup;
  }

  async close(): Promise<void> {
    this.#answers.clear();
    await this.#inner.close();
  }

  async #query(groupId: number): Promise<ReadonlySet<string>> {
    try {
      const members = await this.#withDeadline(groupId, this.#inner.members(groupId));
      this.#remember(groupId, members);
      return members;
    } catch (error) {
      this.#stats.failures++;
      throw error instanceof GroupLookupError ? error : new GroupLookupError(groupId, error);
    } finally {
      this.#inFlight.delete(groupId);
    }
  }

  #withDeadline(groupId: number, query: Promise<ReadonlySet<string>>): Promise<ReadonlySet<string>> {
    const timeoutMs = this.#timeoutMs;
    if (timeoutMs === null) return query;
    // The abandoned query may still fail later: nobody waits for it any more.
    query.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new GroupLookupError(groupId, new Error(`no answer from the group database within ${timeoutMs} ms`))), timeoutMs);
    });
    return Promise.race([query, deadline]).finally(() => clearTimeout(timer));
  }

  #remember(groupId: number, members: ReadonlySet<string>): void {
    if (this.#ttlMs === 0) return;
    this.#answers.delete(groupId);
    this.#answers.set(groupId, { members, expiresAt: this.#now() + this.#ttlMs });
    if (this.#answers.size > this.#maxGroups) this.#answers.delete(this.#answers.keys().next().value!);
  }
}
