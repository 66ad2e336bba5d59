import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { commits, desktopClient, isBackLine, isConnectedLine, isLostLine, REFRESH, startNodes, subscribedClient } from '../support/cluster.js';
import { CuttableLink } from '../support/cuttable-link.js';
import { positionedClient, timeline } from '../support/positioned-client.js';
import { redisSkipReason, startRedis, type RedisInstance } from '../support/redis.js';
import { ServerProcess } from '../support/server-process.js';
import type { TestClient } from '../support/test-client.js';

const skip = redisSkipReason() ?? false;
const REPO = '5c5c5c5c-2222-4333-8444-000000000001';
const REPO_2 = '5c5c5c5c-2222-4333-8444-000000000002';
const WINDOW_S = 2;

async function publish(node: ServerProcess, repoId: string, commit: string): Promise<void> {
  assert.equal(await node.publish('repo-update', { repo_id: repoId, commit_id: commit }), 200);
}

/** The workers that logged each `websocket connected`, in order. */
function connectedWorkers(server: ServerProcess): unknown[] {
  return server.logs.filter((line) => line.msg === 'websocket connected').map((line) => line['worker']);
}

describe('--workers 2 on Redis, beside a plain node', { skip }, () => {
  let redis: RedisInstance;
  let link: CuttableLink;
  let plainLink: CuttableLink;
  let workers: ServerProcess;
  let plain: ServerProcess;
  const clients: TestClient[] = [];

  before(async () => {
    redis = await startRedis();
    link = await CuttableLink.open(redis.port);
    const env = { NOTIFICATION_SERVER_GAP_REFRESH_WINDOW: String(WINDOW_S), NOTIFICATION_SERVER_REDIS_TIMEOUT: '1' };
    workers = await ServerProcess.start({ args: ['--workers', '2'], env: { REDIS_URL: `redis://127.0.0.1:${link.port}/`, ...env } });
    await workers.waitForLog(isConnectedLine, 15_000);
    plainLink = await CuttableLink.open(redis.port);
    plain = (await startNodes(1, `redis://127.0.0.1:${plainLink.port}/`, env))[0]!;
  });
  after(async () => {
    for (const client of clients) client.socket.terminate();
    await Promise.all([workers, plain].map((node) => node?.stop()));
    await link?.close();
    await plainLink?.close();
    await redis?.stop();
  });

  it('events cross between the plain node and both workers, once each, in order', async () => {
    const onWorkers: TestClient[] = [];
    for (let i = 0; i < 2; i++) onWorkers.push(await subscribedClient(workers, REPO, `user${i}@example.com`));
    const onPlain = await subscribedClient(plain, REPO);
    clients.push(...onWorkers, onPlain);
    assert.deepEqual([...new Set(connectedWorkers(workers))].sort(), [1, 2], 'a subscriber on each worker');
    const expected: string[] = [];
    for (let i = 0; i < 6; i++) {
      const commit = `cross-${i}`;
      // Numbered before the next is posted to the other side: the expected order is the posting order.
      await publish(i % 2 === 0 ? plain : workers, REPO, commit);
      await onPlain.waitFor((m) => m.content['commit_id'] === commit);
      expected.push(commit);
    }
    for (const client of [...onWorkers, onPlain]) {
      await client.waitForCount(expected.length, 10_000);
      await client.roundTrip();
      assert.deepEqual(commits(client), expected);
    }
  });

  it('the primary cut off from Redis and back: positioned clients on both workers recover what the plain node accepted, once; desktop clients are sent to refresh', async () => {
    const before = connectedWorkers(workers).length;
    const positioned: TestClient[] = [];
    const desktop: TestClient[] = [];
    // Connections go to the workers in turn: two of each kind on each worker.
    for (let i = 0; i < 4; i++) {
      positioned.push(await positionedClient(workers, REPO));
      desktop.push(await desktopClient(workers, REPO));
    }
    clients.push(...positioned, ...desktop);
    const landed = connectedWorkers(workers).slice(before);
    assert.deepEqual([...new Set(landed)].sort(), [1, 2], `connections on both workers: ${JSON.stringify(landed)}`);
    const start = timeline(positioned[0]!)[0]!;
    const offset = Number(start.slice(start.indexOf('@') + 1));
    for (const client of positioned) assert.deepEqual(timeline(client), [`subscribed@${offset}`]);

    link.cut();
    await workers.waitForLog(isLostLine, 15_000);
    await publish(plain, REPO, 'missed-1');
    await publish(plain, REPO, 'missed-2');
    await sleep(300);
    for (const client of positioned) assert.deepEqual(timeline(client), [`subscribed@${offset}`], 'nothing reached the workers while cut off');

    link.restore();
    await workers.waitForLog(isBackLine, 20_000);
    for (const client of positioned) await client.waitFor((m) => m.type === 'subscribed' && client.messages.length > 1, 10_000);
    await publish(plain, REPO, 'after');
    const expected = [`subscribed@${offset}`, `missed-1@${offset + 1}`, `missed-2@${offset + 2}`, `subscribed@${offset + 2}`, `after@${offset + 3}`];
    for (const client of positioned) {
      await client.waitFor((m) => m.content['commit_id'] === 'after', 10_000);
      await client.roundTrip();
      assert.deepEqual(timeline(client), expected);
    }
    const closes = await Promise.all(desktop.map((client) => Promise.race([client.closed, sleep(WINDOW_S * 1000 + 10_000).then(() => null)])));
    for (const closed of closes) assert.deepEqual(closed, REFRESH);
  });

  it('the plain node cut off and back, having accepted an event alone: both workers tell their positioned clients to resync and send their desktop clients to refresh', async () => {
    const positioned: TestClient[] = [];
    const desktop: TestClient[] = [];
    const before = connectedWorkers(workers).length;
    for (let i = 0; i < 2; i++) {
      positioned.push(await positionedClient(workers, REPO_2));
      desktop.push(await desktopClient(workers, REPO_2));
    }
    clients.push(...positioned, ...desktop);
    const landed = connectedWorkers(workers).slice(before);
    assert.deepEqual([...new Set(landed)].sort(), [1, 2], `connections on both workers: ${JSON.stringify(landed)}`);
    for (const client of positioned) assert.deepEqual(timeline(client), ['subscribed@0']);

    plainLink.cut();
    await plain.waitForLog(isLostLine, 15_000);
    await publish(plain, REPO_2, 'alone');
    plainLink.restore();
    await plain.waitForLog(isBackLine, 20_000);
    for (const client of positioned) {
      await client.waitFor((m) => m.type === 'resync', 10_000);
      assert.deepEqual(timeline(client), ['subscribed@0', 'resync:events-not-shared@1']);
    }
    const closes = await Promise.all(desktop.map((client) => Promise.race([client.closed, sleep(WINDOW_S * 1000 + 10_000).then(() => null)])));
    for (const closed of closes) assert.deepEqual(closed, REFRESH);
  });
});
