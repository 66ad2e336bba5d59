import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEvent } from '../../src/protocol/event.js';
import { LiveStatus } from '../../src/status/live-status.js';

const event = (type: string, repoId: string) => parseEvent(JSON.stringify({ type, content: { repo_id: repoId } }));

describe('the live status behind /status', () => {
  it('closes each second with levels, the event count and latency percentiles, and keeps a bounded history', () => {
    let now = 1_000_000;
    const status = new LiveStatus({ now: () => now, historySeconds: 3 });
    status.readLevelsFrom({ connections: () => 4, subscriptions: () => 9, subscribedLibraries: () => 2, followersOf: () => 0 });
    for (let i = 1; i <= 100; i++) status.eventDelivered(event('repo-update', 'r'), 1, i / 1000);
    now += 1000;
    const first = status.tick();
    assert.deepEqual(first.point, { at: now, connections: 4, subscriptions: 9, libraries: 2, events: 100, latencyP50Ms: 51, latencyP99Ms: 100 });
    const quiet = status.tick();
    assert.equal(quiet.point.events, 0);
    assert.equal(quiet.point.latencyP50Ms, null);
    assert.deepEqual(quiet.tail, []);
    status.tick();
    status.tick();
    assert.equal(status.snapshot().points.length, 3);
    assert.equal(status.snapshot().points[0]!.events, 0, 'the oldest second fell out');
  });

  it('the tail holds the latest events, library id and type, and each update carries only the new ones', () => {
    const status = new LiveStatus({ now: () => 5, tailSize: 3 });
    status.eventDelivered(event('repo-update', 'a'), 2, 0);
    status.eventDelivered(event('file-lock-changed', 'b'), 0, 0);
    assert.deepEqual(status.tick().tail, [
      { at: 5, repoId: 'a', type: 'repo-update', recipients: 2 },
      { at: 5, repoId: 'b', type: 'file-lock-changed', recipients: 0 },
    ]);
    for (const id of ['c', 'd', 'e', 'f']) status.eventDelivered(event('comment-update', id), 1, 0);
    assert.deepEqual(status.tick().tail.map((e) => e.repoId), ['d', 'e', 'f']);
    assert.deepEqual(status.snapshot().tail.map((e) => e.repoId), ['d', 'e', 'f']);
  });

  it('ranks the busiest libraries over the window, with their subscribers now', () => {
    const status = new LiveStatus({ busyWindowSeconds: 2, busiestCount: 2 });
    status.readLevelsFrom({ connections: () => 0, subscriptions: () => 0, subscribedLibraries: () => 0, followersOf: (id) => (id === 'hot' ? 7 : 1) });
    for (let i = 0; i < 5; i++) status.eventDelivered(event('repo-update', 'hot'), 7, 0);
    status.eventDelivered(event('repo-update', 'cold'), 1, 0);
    status.eventDelivered(event('repo-update', 'warm'), 1, 0);
    status.eventDelivered(event('repo-update', 'warm'), 1, 0);
    assert.deepEqual(status.busiest(), [], 'only closed seconds count');
    assert.deepEqual(status.tick().busiest, [
      { repoId: 'hot', events: 5, subscribers: 7 },
      { repoId: 'warm', events: 2, subscribers: 1 },
    ]);
    status.tick();
    status.tick();
    assert.deepEqual(status.busiest(), [], 'the window moved past them');
  });

  it('samples at most maxPerSecond latencies and libraries a second, but counts every event', () => {
    const status = new LiveStatus({ maxPerSecond: 10 });
    for (let i = 0; i < 50; i++) status.eventDelivered(event('repo-update', `lib-${i}`), 1, 0.001);
    const update = status.tick();
    assert.equal(update.point.events, 50);
    assert.equal(update.busiest.length, 10);
  });
});
