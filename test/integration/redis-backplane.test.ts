import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { BackplaneGap } from '../../src/backplane/backplane.js';
import { encodeBackplaneMessage } from '../../src/backplane/backplane-message.js';
import { backplaneChannel } from '../../src/backplane/open-backplane.js';
import { RedisBackplane } from '../../src/backplane/redis-backplane.js';
import type { Position } from '../../src/history/position.js';
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
async function node(
  nodeId: string,
  channel: string,
  onGap?: (gap: BackplaneGap) => void,
): Promise<{ backplane: RedisBackplane; delivered: string[]; positions: Position[] }> {
  const delivered: string[] = [];
  const positions: Position[] = [];
  const backplane = new RedisBackplane({
    connection: { kind: 'single', url: redisUrl! },
    displayUrl: 'test',
    channel,
    timeoutMs: 5_000,
    nodeId,
    logger: silent,
  });
  const deliver = (e: LibraryEvent): void => {
    delivered.push(commitOf(e));
    if (e.position !== undefined) positions.push(e.position);
  };
  await backplane.start(10_000, { deliver, onGap });
  assert.equal(backplane.state, 'connected');
  return { backplane, delivered, positions };
}

async function until(done: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
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

  it("a node delivers its own events once, numbered in Redis's order like everyone's, and another deployment's channel never reaches it", async () => {
    const a = await node('a', channel);
    const b = await node('b', channel);
    const stranger = await node('stranger', backplaneChannel(Buffer.from('another deployment key')));
    opened.push(a.backplane, b.backplane, stranger.backplane);
    a.backplane.publish(event('a-1'));
    b.backplane.publish(event('b-1'));
    a.backplane.publish(event('a-2'));
    stranger.backplane.publish(event('stranger-1'));
    await until(() => a.delivered.length === 3 && b.delivered.length === 3 && stranger.delivered.length === 1);
    // Give a stray repeat a moment to show up.
    await sleep(50);
    // One library, one order on every node: the order Redis numbered them in.
    assert.deepEqual(a.delivered, b.delivered);
    assert.deepEqual(a.positions, b.positions);
    assert.deepEqual(a.positions.map((p) => p.offset), [a.positions[0]!.offset, a.positions[0]!.offset + 1, a.positions[0]!.offset + 2]);
    assert.ok(a.delivered.indexOf('a-1') < a.delivered.indexOf('a-2'));
    assert.deepEqual(stranger.delivered, ['stranger-1']);
    assert.notEqual(stranger.positions[0]!.epoch, undefined);
    assert.equal(a.backplane.stats.eventsShared, 2);
    assert.equal(a.backplane.stats.duplicatesDropped, 0);
  });

  it('offsets that go backwards (a promoted replica without the newest events) are marked lost and reported, and numbering goes on past them', async () => {
    const ownChannel = backplaneChannel(Buffer.from(`redis-backplane-test-backwards-${process.pid}`));
    const prefix = `${ownChannel.replace(/:events:([^:]+)$/, ':{$1}')}:`;
    const gaps: BackplaneGap[] = [];
    const a = await node('a', ownChannel, (gap) => gaps.push(gap));
    opened.push(a.backplane);
    for (let i = 1; i <= 5; i++) a.backplane.publish(event(`a-${i}`));
    await until(() => a.delivered.length === 5);
    const seen = a.positions.at(-1)!;
    assert.equal(seen.offset, 5);
    // What a replica that received only the first two has after its promotion.
    const stream = `${prefix}history:${REPO}`;
    const kept = await raw.xrangeBuffer(stream, '-', '2-0');
    await raw.del(stream);
    for (const [id, fields] of kept) await raw.xadd(stream, id.toString(), ...fields);
    await raw.set(`${prefix}offset:${REPO}`, 2);
    // A node that never saw the library numbers the next event on it: offset 3 again.
    const c = await node('c', ownChannel);
    opened.push(c.backplane);
    c.backplane.publish(event('c-1'));
    await until(() => gaps.length > 0 && a.delivered.includes('c-1'));
    assert.deepEqual(gaps[0], { cutOff: 'history-lost', node: 'a', libraries: new Set([REPO]), outageMs: 0 });
    assert.equal(a.backplane.stats.librariesLost, 1);
    // Marked: numbering goes on past every offset given out before, and a client from before is told to resync.
    await until(async () => Number(await raw.get(`${prefix}offset:${REPO}`)) === 6);
    c.backplane.publish(event('c-2'));
    await until(() => a.delivered.includes('c-2'));
    assert.equal(a.positions.at(-1)!.offset, 7);
    assert.deepEqual(await a.backplane.history.read(REPO, seen), { kind: 'resync', reason: 'history-lost', position: { epoch: seen.epoch, offset: 7 } });
  });
});
