import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CachedGroupDirectory } from '../../src/groups/cached-group-directory.js';
import { GroupLookupError, type GroupDirectory } from '../../src/groups/group-directory.js';

/** A ccnet database stand-in: answers from `groups`, counts queries, can be made to fail or wait. */
class FakeDirectory implements GroupDirectory {
  queries: number[] = [];
  failNext = 0;
  closed = false;
  #gate: Promise<void> | null = null;
  #open: (() => void) | null = null;

  constructor(readonly groups: Map<number, string[]>) {}

  /** Queries wait until release() is called. */
  hold(): void {
    this.#gate = new Promise((resolve) => (this.#open = resolve));
  }

  release(): void {
    this.#open?.();
    this.#gate = null;
  }

  async members(groupId: number): Promise<ReadonlySet<string>> {
    this.queries.push(groupId);
    if (this.#gate !== null) await this.#gate;
    if (this.failNext > 0) {
      this.failNext--;
      throw new GroupLookupError(groupId, new Error('connect ECONNREFUSED 127.0.0.1:3306'));
    }
    return new Set(this.groups.get(groupId) ?? []);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

function setup(options: { ttlMs?: number; maxGroups?: number } = {}) {
  const clock = { now: 1_000_000 };
  const database = new FakeDirectory(
    new Map([
      [7, ['alice@example.com', 'bob@example.com']],
      [8, ['carol@example.com']],
    ]),
  );
  const directory = new CachedGroupDirectory(database, { ttlMs: options.ttlMs ?? 10_000, maxGroups: options.maxGroups, now: () => clock.now });
  return { clock, database, directory };
}

describe('group membership cache', () => {
  test('members of a group are served from the cache until the TTL passes', async () => {
    const { clock, database, directory } = setup({ ttlMs: 10_000 });

    assert.deepEqual(await directory.members(7), new Set(['alice@example.com', 'bob@example.com']));
    clock.now += 9_999;
    database.groups.set(7, ['alice@example.com']);
    assert.deepEqual(await directory.members(7), new Set(['alice@example.com', 'bob@example.com']), 'still cached');
    assert.deepEqual(database.queries, [7]);

    clock.now += 1;
    assert.deepEqual(await directory.members(7), new Set(['alice@example.com']), 'a removed member is gone once the TTL passed');
    assert.deepEqual(database.queries, [7, 7]);
  });

  test('ten concurrent lookups of one group make one database query', async () => {
    const { database, directory } = setup();
    database.hold();

    const lookups = Array.from({ length: 10 }, () => directory.members(7));
    database.release();
    const answers = await Promise.all(lookups);

    assert.deepEqual(database.queries, [7]);
    for (const answer of answers) assert.deepEqual(answer, new Set(['alice@example.com', 'bob@example.com']));
    assert.deepEqual(directory.stats, { hits: 9, misses: 1, failures: 0 });
  });

  test('lookups of different groups are not coalesced', async () => {
    const { database, directory } = setup();

    const [seven, eight] = await Promise.all([directory.members(7), directory.members(8)]);

    assert.deepEqual(seven, new Set(['alice@example.com', 'bob@example.com']));
    assert.deepEqual(eight, new Set(['carol@example.com']));
    assert.deepEqual(database.queries.sort(), [7, 8]);
  });

  test('a failed lookup is not cached: the next call asks the database again', async () => {
    const { database, directory } = setup();
    database.failNext = 1;

    await assert.rejects(directory.members(7), (error: unknown) => error instanceof GroupLookupError && error.groupId === 7);
    assert.deepEqual(await directory.members(7), new Set(['alice@example.com', 'bob@example.com']));

    assert.deepEqual(database.queries, [7, 7]);
    assert.deepEqual(directory.stats, { hits: 0, misses: 2, failures: 1 });
  });

  test('every caller that joined a failing lookup gets the GroupLookupError', async () => {
    const { database, directory } = setup();
    database.hold();
    database.failNext = 1;

    const lookups = Array.from({ length: 3 }, () => directory.members(7));
    database.release();
    const results = await Promise.allSettled(lookups);

    for (const result of results) {
      assert.equal(result.status, 'rejected');
      assert.ok(result.status === 'rejected' && result.reason instanceof GroupLookupError);
    }
    assert.deepEqual(database.queries, [7]);
  });

  test('an error that is not a GroupLookupError reaches callers as one', async () => {
    const failing: GroupDirectory = {
      members: () => Promise.reject(new Error('socket hang up')),
      close: () => Promise.resolve(),
    };
    const directory = new CachedGroupDirectory(failing, { ttlMs: 10_000 });

    await assert.rejects(directory.members(3), (error: unknown) => {
      assert.ok(error instanceof GroupLookupError);
      assert.equal(error.groupId, 3);
      assert.match(error.message, /group 3 lookup failed: socket hang up/);
      return true;
    });
  });

  test('the cache keeps at most maxGroups groups, dropping the oldest first', async () => {
    const { database, directory } = setup({ maxGroups: 2 });
    database.groups.set(9, ['dave@example.com']);

    await directory.members(7);
    await directory.members(8);
    await directory.members(9);
    database.queries = [];

    await directory.members(8);
    await directory.members(9);
    assert.deepEqual(database.queries, [], 'the two newest groups are still cached');
    await directory.members(7);
    assert.deepEqual(database.queries, [7], 'the oldest group was evicted');
  });

  test('with a TTL of 0 every lookup queries the database, but concurrent ones still share a query', async () => {
    const { database, directory } = setup({ ttlMs: 0 });

    await directory.members(7);
    await directory.members(7);
    assert.deepEqual(database.queries, [7, 7]);

    database.hold();
    const lookups = [directory.members(7), directory.members(7)];
    database.release();
    await Promise.all(lookups);
    assert.deepEqual(database.queries, [7, 7, 7]);
  });

  test('stats count cache hits, database queries and failures', async () => {
    const { clock, database, directory } = setup({ ttlMs: 1_000 });

    await directory.members(7);
    await directory.members(7);
    clock.now += 1_000;
    database.failNext = 1;
    await assert.rejects(directory.members(7), GroupLookupError);

    assert.deepEqual(directory.stats, { hits: 1, misses: 2, failures: 1 });
  });

  test('closing the cache closes the database connection', async () => {
    const { database, directory } = setup();
    await directory.close();
    assert.equal(database.closed, true);
  });

  test('a negative TTL is refused', () => {
    assert.throws(() => new CachedGroupDirectory(new FakeDirectory(new Map()), { ttlMs: -1 }), RangeError);
  });

  test('a query not answered within timeoutMs fails, is counted, and the next lookup asks the database again', async () => {
    const database = new FakeDirectory(new Map([[7, ['alice@example.com']]]));
    const directory = new CachedGroupDirectory(database, { ttlMs: 0, timeoutMs: 20 });
    database.hold();
    await assert.rejects(directory.members(7), (error: unknown) => error instanceof GroupLookupError && /no answer from the group database within 20 ms/.test(error.message));
    assert.equal(directory.stats.failures, 1);
    database.release();
    assert.deepEqual(await directory.members(7), new Set(['alice@example.com']));
    assert.deepEqual(database.queries, [7, 7], 'the hung query was not waited on again');
  });

  test('a timeout of 0 or less is refused', () => {
    assert.throws(() => new CachedGroupDirectory(new FakeDirectory(new Map()), { ttlMs: 0, timeoutMs: 0 }), RangeError);
  });
});
