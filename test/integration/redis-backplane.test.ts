import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { encodeBackplaneMessage } from '../../src/backplane/backplane-message.js';
import { backplaneChannel } from '../../src/backplane/open-backplane.js';
import { RedisBackplane } from '../../src/backplane/redis-backplane.js';
import { parseEvent, type LibraryEvent } from '../../src/protocol/event.js';
import { requireServiceUrl } from '../support/env.js';

const redisUrl = requireServiceUrl('TEST_REDIS_URL');
const REPO = 'ad4e0c1a-6666-4b4b-9c9c-000000000001';
const silent = pino({ level: 'silent' });

function event(commit: string): LibraryEvent {
  return parseEvent(JSON.stringify({ type: 'repo-update', content: { repo_id: REPO, commit_id: commit } }));
}

function commitOf(delivered: LibraryEvent): string {
  return String((JSON.parse(delivered.frame.toString()) as { content: { commit_id: string } }).content.commit_id);
}

/** A backplane on this test's channel, recording what it hands to its Hub. */
async function node(nodeId: string, channel: string): Promise<{ backplane: RedisBackplane; delivered: string[] }> {
  const delivered: string[] = [];
  const backplane = new RedisBackplane({
    url: redisUrl!,
    displayUrl: 'test',
    channel,
    timeoutMs: 5_000,
    nodeId,
    deliver: (e) => delivered.push(commitOf(e)),
    logger: silent,
  });
  await backplane.start(10_000);
  assert.equal(backplane.state, 'connected');
  return { backplane, delivered };
}

async function until(done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('Redis backplane', { skip: redisUrl === undefined ? 'TEST_REDIS_URL is not set (run `npm test`)' : false }, () => {
  const channel = backplaneChannel(Buffer.from(`redis-backplane-test-${process.pid}`));
  let raw: Redis;
  const opened: RedisBackplane[] = [];

  before(() => {
    raw = new Redis(redisUrl!, { maxRetriesPerRequest: 1 });
  });
  after(async () => {
    await Promise.all(opened.map((backplane) => backplane.close()));
    raw.disconnect();
  });

  it('a repeated or stale message is delivered once, a malformed one is counted and skipped, the next one still arrives', async () => {
    const receiver = await node('receiver', channel);
    opened.push(receiver.backplane);
    const from = (seq: number, commit: string): Buffer => encodeBackplaneMessage({ origin: 'sender', seq, acceptedAt: Date.now(), event: event(commit) });
    await raw.publish(channel, from(1, 'one'));
    await raw.publish(channel, from(1, 'one-again'));
    await raw.publish(channel, Buffer.from('{"v":1}\nnot one of ours'));
    await raw.publish(channel, from(2, 'two'));
    await raw.publish(channel, from(1, 'stale'));
    await raw.publish(channel, from(5, 'five'));
    await until(() => receiver.delivered.includes('five'));
    assert.deepEqual(receiver.delivered, ['one', 'two', 'five']);
    assert.equal(receiver.backplane.stats.duplicatesDropped, 2);
    assert.equal(receiver.backplane.stats.malformedMessages, 1);
    assert.equal(receiver.backplane.stats.eventsMissed, 2);
    assert.equal(receiver.backplane.stats.eventsReceived, 3);
  });

  it("a node delivers its own events once, at once, and another deployment's channel never reaches it", async () => {
    const a = await node('a', channel);
    const b = await node('b', channel);
    const stranger = await node('stranger', backplaneChannel(Buffer.from('another deployment key')));
    opened.push(a.backplane, b.backplane, stranger.backplane);
    a.backplane.publish(event('a-1'));
    // Delivered here before anything went to Redis.
    assert.deepEqual(a.delivered, ['a-1']);
    stranger.backplane.publish(event('stranger-1'));
    b.backplane.publish(event('b-1'));
    await until(() => a.delivered.includes('b-1') && b.delivered.includes('a-1'));
    // Separate connections are not ordered with each other: give a stray message a moment to show up.
    await sleep(50);
    assert.deepEqual(a.delivered, ['a-1', 'b-1']);
    assert.deepEqual(b.delivered, ['b-1', 'a-1']);
    assert.deepEqual(stranger.delivered, ['stranger-1']);
    assert.equal(a.backplane.stats.eventsShared, 1);
  });
});
