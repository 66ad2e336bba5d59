import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Subscriber, Subscription } from '../../src/hub/subscriber.js';
import { SubscriptionIndex } from '../../src/hub/subscription-index.js';
import { check } from '../support/property.js';

const subscribers: Subscriber[] = Array.from({ length: 4 }, (_, id) => ({ id, send() {} }));
const users = ['alice', 'bob', 'carol'];
const repos = ['r1', 'r2', 'r3'];

type Step =
  | { kind: 'add'; subscriber: number; repo: string; user: string }
  | { kind: 'delete'; subscriber: number; repo: string }
  | { kind: 'leave'; subscriber: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('add' as const), subscriber: fc.nat(3), repo: fc.constantFrom(...repos), user: fc.constantFrom(...users) }),
  fc.record({ kind: fc.constant('delete' as const), subscriber: fc.nat(3), repo: fc.constantFrom(...repos) }),
  fc.record({ kind: fc.constant('leave' as const), subscriber: fc.nat(3) }),
);

describe('subscription index, per user', () => {
  it('property: after any sequence of subscribes (renewals under another user included), unsubscribes and departures, each user counts exactly the subscribers holding one of their subscriptions', () => {
    check(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        const index = new SubscriptionIndex();
        // The model: subscriber → repo → user.
        const model = new Map<number, Map<string, string>>();
        for (const s of steps) {
          const subscriber = subscribers[s.subscriber]!;
          if (s.kind === 'add') {
            const subscription: Subscription = { subscriber, repoId: s.repo, username: s.user, expiresAt: 0 };
            index.add(subscription);
            model.set(s.subscriber, (model.get(s.subscriber) ?? new Map()).set(s.repo, s.user));
          } else if (s.kind === 'delete') {
            const current = index.get(subscriber, s.repo);
            if (current !== undefined) index.delete(current);
            model.get(s.subscriber)?.delete(s.repo);
          } else {
            index.deleteSubscriber(subscriber);
            model.delete(s.subscriber);
          }
          for (const user of users) {
            const holders = [...model.entries()].filter(([, held]) => [...held.values()].includes(user)).map(([k]) => k);
            assert.equal(index.subscribersOf(user), holders.length, `${user} after ${JSON.stringify(s)}`);
            for (const [k, each] of subscribers.entries()) assert.equal(index.holdsUser(each, user), holders.includes(k));
          }
        }
      }),
      300,
    );
  });
});
