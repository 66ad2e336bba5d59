import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { pino } from 'pino';
import type { GroupDirectory } from '../../src/groups/group-directory.js';
import { GroupLookupError } from '../../src/groups/group-directory.js';
import { ExpirySchedule } from '../../src/hub/expiry-schedule.js';
import { Hub } from '../../src/hub/hub.js';
import { PrometheusMetrics } from '../../src/metrics/prometheus-metrics.js';
import type { Subscriber } from '../../src/hub/subscriber.js';
import { parseEvent } from '../../src/protocol/event.js';
import { parsePrometheusText, type Scrape } from '../support/prometheus-text.js';
import type { Outgoing } from '../../src/protocol/outgoing.js';

const silent = pino({ level: 'silent' });

class FakeSubscriber implements Subscriber {
  static next = 1;
  readonly id = FakeSubscriber.next++;
  readonly received: string[] = [];
  send({ frame }: Outgoing): void {
    this.received.push(frame.toString());
  }
  types(): string[] {
    return this.received.map((text) => (JSON.parse(text) as { type: string }).type);
  }
}

function event(type: string, content: Record<string, unknown>) {
  return parseEvent(JSON.stringify({ type, content }));
}

const perm = (repo_id: string, user: string, group: number) =>
  event('folder-perm-changed', { repo_id, path: '/p', type: user ? 'user' : 'group', change_event: 'add', user, group, perm: 'r' });

/** A group database whose answers the test releases by hand. */
class ManualGroups implements GroupDirectory {
  readonly calls: Array<{ groupId: number; resolve: (members: Set<string>) => void; reject: (err: Error) => void }> = [];
  members(groupId: number): Promise<ReadonlySet<string>> {
    return new Promise((resolve, reject) => this.calls.push({ groupId, resolve, reject }));
  }
  async close(): Promise<void> {}
}

const farFuture = Date.now() + 3_600_000;

async function scrape(metrics: PrometheusMetrics): Promise<Scrape> {
  return parsePrometheusText((await metrics.exposition()).body);
}

describe('hub fan-out', () => {
  it('repo-update, file-lock-changed and comment-update reach every subscriber of the library, and only them', () => {
    const hub = new Hub({ groups: null, logger: silent });
    const [a, b, other] = [new FakeSubscriber(), new FakeSubscriber(), new FakeSubscriber()];
    hub.subscribe(a, { repoId: 'r1', username: 'a', expiresAt: farFuture });
    hub.subscribe(b, { repoId: 'r1', username: 'b', expiresAt: farFuture });
    hub.subscribe(other, { repoId: 'r2', username: 'a', expiresAt: farFuture });
    hub.publish(event('repo-update', { repo_id: 'r1', commit_id: 'c1' }));
    hub.publish(event('file-lock-changed', { repo_id: 'r1', path: '/f', change_event: 'locked', lock_user: 'a' }));
    hub.publish(event('comment-update', { repo_id: 'r1', type: 'add', file_uuid: 'u', file_path: '/f' }));
    for (const s of [a, b]) assert.deepEqual(s.types(), ['repo-update', 'file-lock-changed', 'comment-update']);
    assert.deepEqual(other.received, []);
    hub.close();
  });

  it('the same encoded frame is handed to every subscriber (encoded once)', () => {
    const hub = new Hub({ groups: null, logger: silent });
    const frames: Buffer[] = [];
    const spy = (id: number): Subscriber => ({ id, send: ({ frame }) => frames.push(frame) });
    hub.subscribe(spy(1001), { repoId: 'r', username: 'a', expiresAt: farFuture });
    hub.subscribe(spy(1002), { repoId: 'r', username: 'b', expiresAt: farFuture });
    hub.publish(event('repo-update', { repo_id: 'r', commit_id: 'c' }));
    assert.equal(frames.length, 2);
    assert.equal(frames[0], frames[1]);
    hub.close();
  });

  it('a user-targeted folder-perm-changed reaches only that user', () => {
    const hub = new Hub({ groups: null, logger: silent });
    const [alice, bob] = [new FakeSubscriber(), new FakeSubscriber()];
    hub.subscribe(alice, { repoId: 'r', username: 'alice', expiresAt: farFuture });
    hub.subscribe(bob, { repoId: 'r', username: 'bob', expiresAt: farFuture });
    hub.publish(perm('r', 'alice', -1));
    hub.publish(perm('r', '', -1));
    assert.deepEqual(alice.types(), ['folder-perm-changed', 'folder-perm-changed']);
    assert.deepEqual(bob.types(), ['folder-perm-changed']);
    hub.close();
  });

  it('a group-targeted event reaches members only, and later events of that library wait behind it', async () => {
    const groups = new ManualGroups();
    const hub = new Hub({ groups, logger: silent });
    const [member, outsider, elsewhere] = [new FakeSubscriber(), new FakeSubscriber(), new FakeSubscriber()];
    hub.subscribe(member, { repoId: 'r', username: 'member', expiresAt: farFuture });
    hub.subscribe(outsider, { repoId: 'r', username: 'outsider', expiresAt: farFuture });
    hub.subscribe(elsewhere, { repoId: 'r2', username: 'member', expiresAt: farFuture });
    hub.publish(perm('r', '', 7));
    hub.publish(event('repo-update', { repo_id: 'r', commit_id: 'after' }));
    hub.publish(event('repo-update', { repo_id: 'r2', commit_id: 'other-library' }));
    assert.deepEqual(member.received, [], 'the library waits for the lookup');
    assert.deepEqual(elsewhere.types(), ['repo-update'], 'other libraries keep flowing');
    assert.equal(groups.calls[0]!.groupId, 7);
    groups.calls[0]!.resolve(new Set(['member']));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(member.types(), ['folder-perm-changed', 'repo-update']);
    assert.deepEqual(outsider.types(), ['repo-update']);
    hub.close();
  });

  it('a failed group lookup delivers the event to nobody and is counted; the library keeps flowing', async () => {
    const groups = new ManualGroups();
    const metrics = new PrometheusMetrics({ processMetrics: false });
    const hub = new Hub({ groups, logger: silent, metrics });
    const member = new FakeSubscriber();
    hub.subscribe(member, { repoId: 'r', username: 'member', expiresAt: farFuture });
    hub.publish(perm('r', '', 7));
    hub.publish(event('repo-update', { repo_id: 'r', commit_id: 'after' }));
    groups.calls[0]!.reject(new GroupLookupError(7, new Error('connection refused')));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(member.types(), ['repo-update']);
    const counts = await scrape(metrics);
    assert.equal(counts.value('notification_group_events_undelivered_total', { reason: 'lookup-failed' }), 1);
    assert.equal(counts.value('notification_group_events_undelivered_total', { reason: 'no-database' }), 0);
    assert.equal(counts.value('notification_messages_sent_total'), 1, 'only the repo-update was sent');
    hub.close();
  });

  it('without a group database, group-targeted events reach nobody', async () => {
    const metrics = new PrometheusMetrics({ processMetrics: false });
    const hub = new Hub({ groups: null, logger: silent, metrics });
    const member = new FakeSubscriber();
    hub.subscribe(member, { repoId: 'r', username: 'member', expiresAt: farFuture });
    hub.publish(perm('r', '', 7));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(member.received, []);
    assert.equal((await scrape(metrics)).value('notification_group_events_undelivered_total', { reason: 'no-database' }), 1);
    hub.close();
  });

  it('unsubscribe and removal stop delivery; resubscribing replaces the old subscription', () => {
    const hub = new Hub({ groups: null, logger: silent });
    const a = new FakeSubscriber();
    hub.subscribe(a, { repoId: 'r1', username: 'a', expiresAt: farFuture });
    hub.subscribe(a, { repoId: 'r1', username: 'a', expiresAt: farFuture + 1 });
    hub.subscribe(a, { repoId: 'r2', username: 'a', expiresAt: farFuture });
    assert.equal(hub.subscriptions, 2);
    hub.unsubscribe(a, 'r1');
    hub.publish(event('repo-update', { repo_id: 'r1', commit_id: 'c' }));
    hub.publish(event('repo-update', { repo_id: 'r2', commit_id: 'c' }));
    assert.equal(a.received.length, 1);
    hub.removeSubscriber(a);
    hub.publish(event('repo-update', { repo_id: 'r2', commit_id: 'c' }));
    assert.equal(a.received.length, 1);
    assert.equal(hub.subscriptions, 0);
    assert.equal(hub.libraries, 0);
    hub.close();
  });
});

describe('hub metrics', () => {
  it('each event is observed once in the latency histogram, whatever its number of recipients; messages count recipients', async () => {
    const metrics = new PrometheusMetrics({ processMetrics: false });
    const hub = new Hub({ groups: null, logger: silent, metrics });
    for (let i = 0; i < 5; i++) hub.subscribe(new FakeSubscriber(), { repoId: 'r', username: `u${i}`, expiresAt: farFuture });
    hub.subscribe(new FakeSubscriber(), { repoId: 'r2', username: 'x', expiresAt: farFuture });
    hub.publish(event('repo-update', { repo_id: 'r', commit_id: 'c1' }));
    hub.publish(event('repo-update', { repo_id: 'r', commit_id: 'c2' }));
    hub.publish(event('file-lock-changed', { repo_id: 'r2', path: '/f', change_event: 'locked', lock_user: 'x' }));
    hub.publish(event('repo-update', { repo_id: 'nobody-follows', commit_id: 'c3' }));
    hub.publish(event('future-event', { repo_id: 'r2' }));
    const counts = await scrape(metrics);
    assert.equal(counts.value('notification_messages_sent_total'), 5 + 5 + 1 + 1);
    assert.equal(counts.value('notification_delivery_latency_seconds_count', { type: 'repo-update' }), 2, 'an event without recipients is not observed');
    assert.equal(counts.value('notification_delivery_latency_seconds_count', { type: 'file-lock-changed' }), 1);
    assert.equal(counts.value('notification_delivery_latency_seconds_count', { type: 'other' }), 1, 'an unknown type is labelled other');
    assert.equal(counts.value('notification_delivery_latency_seconds_bucket', { type: 'repo-update', le: '+Inf' }), 2);
    assert.equal(counts.samples.filter((sample) => sample.labels['type'] === 'future-event').length, 0);
    hub.close();
  });

  it('the latency of a group-targeted event includes its group lookup', async () => {
    const groups = new ManualGroups();
    const metrics = new PrometheusMetrics({ processMetrics: false });
    const hub = new Hub({ groups, logger: silent, metrics });
    hub.subscribe(new FakeSubscriber(), { repoId: 'r', username: 'member', expiresAt: farFuture });
    hub.publish(perm('r', '', 7));
    await new Promise((resolve) => setTimeout(resolve, 60));
    groups.calls[0]!.resolve(new Set(['member']));
    await new Promise((resolve) => setImmediate(resolve));
    const counts = await scrape(metrics);
    assert.equal(counts.value('notification_delivery_latency_seconds_count', { type: 'folder-perm-changed' }), 1);
    const seconds = counts.value('notification_delivery_latency_seconds_sum', { type: 'folder-perm-changed' });
    assert.ok(seconds >= 0.05, `latency ${seconds} s does not include the 60 ms lookup`);
    assert.equal(counts.value('notification_delivery_latency_seconds_bucket', { type: 'folder-perm-changed', le: '0.025' }), 0);
    hub.close();
  });
});

describe('token expiry', () => {
  let now = 0;
  beforeEach(() => {
    now = 1_000_000;
    mock.timers.enable({ apis: ['setTimeout'] });
  });
  afterEach(() => mock.timers.reset());

  function advance(ms: number): void {
    now += ms;
    mock.timers.tick(ms);
  }

  it('a subscription ends exactly when its token expires: jwt-expired is sent, events stop, and it is counted', async () => {
    const metrics = new PrometheusMetrics({ processMetrics: false });
    const hub = new Hub({ groups: null, logger: silent, metrics, now: () => now });
    const a = new FakeSubscriber();
    hub.subscribe(a, { repoId: 'r', username: 'a', expiresAt: now + 5000 });
    advance(4999);
    assert.deepEqual(a.received, []);
    hub.publish(event('repo-update', { repo_id: 'r', commit_id: 'c' }));
    advance(1);
    assert.deepEqual(a.received.map((t) => JSON.parse(t) as unknown), [
      { type: 'repo-update', content: { repo_id: 'r', commit_id: 'c' } },
      { type: 'jwt-expired', content: { repo_id: 'r' } },
    ]);
    hub.publish(event('repo-update', { repo_id: 'r', commit_id: 'late' }));
    assert.equal(a.received.length, 2);
    assert.equal((await scrape(metrics)).value('notification_subscriptions_expired_total'), 1);
    hub.close();
  });

  it('a renewed subscription is not expired by its old token', () => {
    const hub = new Hub({ groups: null, logger: silent, now: () => now });
    const a = new FakeSubscriber();
    hub.subscribe(a, { repoId: 'r', username: 'a', expiresAt: now + 1000 });
    hub.subscribe(a, { repoId: 'r', username: 'a', expiresAt: now + 9000 });
    advance(1000);
    assert.deepEqual(a.received, []);
    advance(8000);
    assert.deepEqual(a.types(), ['jwt-expired']);
    hub.close();
  });

  it('an unsubscribed library gets no jwt-expired', () => {
    const hub = new Hub({ groups: null, logger: silent, now: () => now });
    const a = new FakeSubscriber();
    hub.subscribe(a, { repoId: 'r', username: 'a', expiresAt: now + 1000 });
    hub.unsubscribe(a, 'r');
    advance(2000);
    assert.deepEqual(a.received, []);
    hub.close();
  });

  it('the schedule fires entries in deadline order with one timer, and sweeps cancelled ones', () => {
    const fired: number[] = [];
    const live = new Set<number>();
    const schedule = new ExpirySchedule<{ expiresAt: number; n: number }>((e) => live.has(e.n), (e) => fired.push(e.n), () => now);
    const deadlines = [50, 10, 40, 30, 20, 60];
    deadlines.forEach((d, n) => {
      live.add(n);
      schedule.add({ expiresAt: now + d, n });
    });
    live.delete(5);
    schedule.cancelled();
    advance(100);
    assert.deepEqual(fired, [1, 4, 3, 2, 0]);
    for (let n = 0; n < 3000; n++) {
      schedule.add({ expiresAt: now + 1000 + n, n: 100 + n });
      schedule.cancelled();
    }
    assert.ok(schedule.size < 3000, `cancelled entries are swept (size ${schedule.size})`);
    schedule.stop();
  });
});
