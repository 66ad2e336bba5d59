import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { desktopClient, isBackLine, isLostLine, startNodes, subscribedClient } from '../support/cluster.js';
import { CuttableLink } from '../support/cuttable-link.js';
import { isAnswer, lastPosition, positionedClient, timeline, type WirePosition } from '../support/positioned-client.js';
import { scrape } from '../support/prometheus-text.js';
import { redisSkipReason, startRedis, type RedisInstance } from '../support/redis.js';
import type { ServerProcess } from '../support/server-process.js';
import { TestClient, type Message } from '../support/test-client.js';

const skip = redisSkipReason() ?? false;
const REPO = '9d3f0c1a-5555-4d4d-9e9e-000000000001';
const REPO_2 = '9d3f0c1a-5555-4d4d-9e9e-000000000002';
const REPO_3 = '9d3f0c1a-5555-4d4d-9e9e-000000000003';


async function publish(node: ServerProcess, repoId: string, commit: string): Promise<void> {
  assert.equal(await node.publish('repo-update', { repo_id: repoId, commit_id: commit }), 200);
}

/** The repo-update commits a client received, in order (answers left out). */
function commitsOf(client: TestClient): string[] {
  return client.messages.filter((m: Message) => m.type === 'repo-update').map((m) => String(m.content['commit_id']));
}

describe('history and recovery across three nodes on one Redis', { skip }, () => {
  let redis: RedisInstance;
  let raw: Redis;
  let nodes: ServerProcess[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    redis = await startRedis();
    raw = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    nodes = await startNodes(3, redis.url, { NOTIFICATION_SERVER_HISTORY_SIZE: '50' });
  });
  after(async () => {
    for (const client of clients) client.socket.terminate();
    await Promise.all(nodes.map((node) => node.stop()));
    raw?.disconnect();
    await redis?.stop();
  });

  async function positioned(node: ServerProcess, repoId: string, since?: WirePosition): Promise<TestClient> {
    const client = await positionedClient(node, repoId, since);
    clients.push(client);
    return client;
  }

  it('a client that left node A and comes back to node C with since gets what B and C accepted meanwhile, once, in order', async () => {
    const first = await positioned(nodes[0]!, REPO);
    const stock = await desktopClient(nodes[0]!, REPO);
    clients.push(stock);
    await publish(nodes[1]!, REPO, 'before');
    await first.waitFor((m) => m.content['commit_id'] === 'before');
    // From another node, through Redis: the stock frame byte for byte.
    await stock.waitForCount(1);
    assert.deepEqual(stock.raw, [`{"type":"repo-update","content":{"repo_id":"${REPO}","commit_id":"before"}}`]);
    const since = lastPosition(first);
    first.close();
    await first.closed;
    const missed: string[] = [];
    for (let i = 0; i < 10; i++) {
      const commit = `missed-${i}`;
      await publish(nodes[1 + (i % 2)]!, REPO, commit);
      // Numbered before the next is posted elsewhere: the expected order is the posting order.
      await stock.waitFor((m) => m.content['commit_id'] === commit);
      missed.push(commit);
    }
    const back = await positioned(nodes[2]!, REPO, since);
    await publish(nodes[0]!, REPO, 'live');
    await back.waitFor((m) => m.content['commit_id'] === 'live');
    const expected = [...missed.map((c, i) => `${c}@${since.offset + 1 + i}`), `subscribed@${since.offset + 10}`, `live@${since.offset + 11}`];
    assert.deepEqual(timeline(back), expected);
    // Every position names the same epoch: one history for the cluster.
    assert.equal(lastPosition(back).epoch, since.epoch);
  });

  it('events published on two nodes while a client resubscribes with since reach it exactly once, with no gap between replay and live', async () => {
    const first = await positioned(nodes[0]!, REPO);
    const since = lastPosition(first);
    first.close();
    const published: string[] = [];
    let publishing = true;
    const stream = (async () => {
      for (let i = 0; publishing || i < 30; i++) {
        const commit = `stream-${i}`;
        await publish(nodes[i % 2 === 0 ? 1 : 2]!, REPO, commit);
        published.push(commit);
        if (i >= 200) break;
      }
    })();
    while (published.length < 10) await sleep(5);
    // Comes back in the middle of the stream.
    const back = await positioned(nodes[0]!, REPO, since);
    publishing = false;
    await stream;
    await publish(nodes[1]!, REPO, 'end');
    await back.waitFor((m) => m.content['commit_id'] === 'end', 10_000);
    // Events posted to the other node just before 'end' may still be on their way.
    const deadline = Date.now() + 10_000;
    while (commitsOf(back).length < published.length + 1 && Date.now() < deadline) await sleep(20);
    await sleep(100);
    // Exactly once each; per accepting node in the order it accepted them (two nodes' events
    // are ordered by which reached Redis first, which the HTTP answers do not wait for).
    const received = commitsOf(back);
    assert.deepEqual([...received].sort(), [...published, 'end'].sort());
    const fromNode = (parity: number) => (commit: string): boolean => commit.startsWith('stream-') && Number(commit.slice(7)) % 2 === parity;
    for (const parity of [0, 1]) assert.deepEqual(received.filter(fromNode(parity)), published.filter(fromNode(parity)));
    const offsets = back.messages.filter((m) => m.type === 'repo-update').map((m) => (m as Message & { position: WirePosition }).position.offset);
    assert.deepEqual(offsets, offsets.map((_, i) => since.offset + 1 + i), 'offsets are consecutive from since');
    assert.equal(back.messages.filter((m) => isAnswer(m, REPO)).length, 1);
  });

  it('a client that missed more than history_size is told to resync (history-gone), then gets live events', async () => {
    const first = await positioned(nodes[1]!, REPO_2);
    const since = lastPosition(first);
    first.close();
    const watcher = await desktopClient(nodes[0]!, REPO_2);
    clients.push(watcher);
    for (let i = 0; i < 60; i++) await publish(nodes[i % 3]!, REPO_2, `flood-${i}`);
    // All numbered (the HTTP answer does not wait for Redis) before the client comes back.
    await watcher.waitForCount(60, 10_000);
    const back = await positioned(nodes[2]!, REPO_2, since);
    await publish(nodes[0]!, REPO_2, 'after');
    await back.waitFor((m) => m.content['commit_id'] === 'after');
    assert.deepEqual(timeline(back), [`resync:history-gone@${since.offset + 60}`, `after@${since.offset + 61}`]);
  });

  it('after a Redis FLUSHALL a returning client is told the epoch changed; a connected one goes on without a break', async () => {
    const away = await positioned(nodes[0]!, REPO_3);
    await publish(nodes[0]!, REPO_3, 'one');
    await away.waitFor((m) => m.content['commit_id'] === 'one');
    const since = lastPosition(away);
    away.close();
    const staying = await positioned(nodes[1]!, REPO_3);
    await raw.flushall();
    await publish(nodes[2]!, REPO_3, 'after-flush');
    await staying.waitFor((m) => m.content['commit_id'] === 'after-flush');
    const afterFlush = lastPosition(staying);
    assert.notEqual(afterFlush.epoch, since.epoch);
    assert.equal(afterFlush.offset, 1);
    assert.deepEqual(timeline(staying).slice(1), ['after-flush@1']);
    const back = await positioned(nodes[2]!, REPO_3, since);
    assert.deepEqual(timeline(back), ['resync:epoch-changed@1']);
    assert.equal(lastPosition(back).epoch, afterFlush.epoch);
  });

  it('Redis restarted empty: a positioned client is told to resync, a desktop client is closed with 1000 to re-read its state, a browser is left alone', async () => {
    const live = await positioned(nodes[0]!, REPO);
    const desktop = await desktopClient(nodes[0]!, REPO);
    const browser = await subscribedClient(nodes[0]!, REPO);
    clients.push(desktop, browser);
    const lostBefore = nodes.map((node) => node.logs.filter(isLostLine).length);
    const backBefore = nodes.map((node) => node.logs.filter(isBackLine).length);
    await redis.kill();
    await Promise.all(nodes.map((node, i) => node.waitForLog(() => node.logs.filter(isLostLine).length > lostBefore[i]!, 15_000)));
    // Accepted alone: delivered here at once, without a position.
    await publish(nodes[0]!, REPO, 'during');
    const during = await live.waitFor((m) => m.content['commit_id'] === 'during');
    assert.equal((during as Message & { position?: unknown }).position, undefined);
    await redis.restart();
    await Promise.all(nodes.map((node, i) => node.waitForLog(() => node.logs.filter(isBackLine).length > backBefore[i]!, 20_000)));
    const resync = await live.waitFor((m) => m.type === 'resync', 10_000);
    assert.equal(resync.content['reason'], 'epoch-changed');
    const closed = await Promise.race([desktop.closed, sleep(15_000).then(() => null)]);
    assert.deepEqual(closed, { code: 1000, reason: 'missed events: reconnect to refresh' });
    await sleep(200);
    assert.equal(browser.socket.readyState, browser.socket.OPEN, 'a browser was closed');
    assert.equal(live.socket.readyState, live.socket.OPEN, 'a positioned client was closed');
  });
});

describe('one node cut off from Redis while the others keep it', { skip }, () => {
  let redis: RedisInstance;
  let link: CuttableLink;
  let cutOff: ServerProcess;
  let others: ServerProcess[] = [];
  const clients: TestClient[] = [];
  const WINDOW_S = 2;

  before(async () => {
    redis = await startRedis();
    link = await CuttableLink.open(redis.port);
    const env = { NOTIFICATION_SERVER_GAP_REFRESH_WINDOW: String(WINDOW_S), NOTIFICATION_SERVER_REDIS_TIMEOUT: '1' };
    cutOff = (await startNodes(1, `redis://127.0.0.1:${link.port}/`, env))[0]!;
    others = await startNodes(2, redis.url, env);
  });
  after(async () => {
    for (const client of clients) client.socket.terminate();
    await Promise.all([cutOff, ...others].map((node) => node?.stop()));
    await link?.close();
    await redis?.stop();
  });

  it('when it is back: its positioned clients catch up, and only the desktop clients of libraries that changed are sent to refresh, on every node', async () => {
    const [b] = others;
    const positionedHere = await positionedClient(cutOff, REPO);
    const desktopChanged = await desktopClient(cutOff, REPO);
    // Clients before 9.0.16 send no User-Agent and re-read their state all the same.
    const desktopChangedNoAgent = await desktopClient(cutOff, REPO, null);
    const browserChanged = await subscribedClient(cutOff, REPO);
    const desktopUnchanged = await desktopClient(cutOff, REPO_3);
    const desktopElsewhereAlone = await desktopClient(b!, REPO_2);
    const desktopElsewhereFine = await desktopClient(b!, REPO_3);
    const positionedElsewhere = await positionedClient(b!, REPO_2);
    const awayElsewhere = await positionedClient(b!, REPO_2);
    const awaySince = lastPosition(awayElsewhere);
    awayElsewhere.close();
    clients.push(positionedElsewhere);
    clients.push(positionedHere, desktopChanged, desktopChangedNoAgent, browserChanged, desktopUnchanged, desktopElsewhereAlone, desktopElsewhereFine);
    await publish(b!, REPO, 'before');
    await positionedHere.waitFor((m) => m.content['commit_id'] === 'before');

    link.cut();
    await cutOff.waitForLog(isLostLine, 15_000);
    // Missed by the cut-off node's subscribers of REPO ...
    await publish(b!, REPO, 'elsewhere');
    // ... and accepted by the cut-off node alone: the other nodes' subscribers of REPO_2 miss it.
    await publish(cutOff, REPO_2, 'alone');
    await sleep(300);
    assert.deepEqual(commitsOf(positionedHere), ['before']);
    assert.deepEqual(commitsOf(desktopElsewhereAlone), []);

    link.restore();
    const back = await cutOff.waitForLog(isBackLine, 20_000);
    const backAt = Date.now();
    // The catch-up ends with a second `subscribed`.
    await positionedHere.waitForCount(4, 10_000);
    assert.deepEqual(timeline(positionedHere).slice(1), ['before@1', 'elsewhere@2', 'subscribed@2']);
    assert.ok(Number(back['outageMs']) > 0);

    const closedChanged = await Promise.race([desktopChanged.closed, sleep(WINDOW_S * 1000 + 5_000).then(() => null)]);
    assert.deepEqual(closedChanged, { code: 1000, reason: 'missed events: reconnect to refresh' });
    const closedNoAgent = await Promise.race([desktopChangedNoAgent.closed, sleep(WINDOW_S * 1000 + 5_000).then(() => null)]);
    assert.deepEqual(closedNoAgent, { code: 1000, reason: 'missed events: reconnect to refresh' });
    const closedAlone = await Promise.race([desktopElsewhereAlone.closed, sleep(WINDOW_S * 1000 + 5_000).then(() => null)]);
    assert.deepEqual(closedAlone, { code: 1000, reason: 'missed events: reconnect to refresh' });
    const tookMs = Date.now() - backAt;
    assert.ok(tookMs <= WINDOW_S * 1000 + 3_000, `the refresh took ${tookMs} ms`);
    // Libraries nothing happened to during the outage: their desktop clients stay connected.
    await sleep(WINDOW_S * 1000 + 500);
    assert.equal(desktopUnchanged.socket.readyState, desktopUnchanged.socket.OPEN);
    // A browser re-reads nothing when it reconnects: closing it would only cost it a reconnect.
    assert.equal(browserChanged.socket.readyState, browserChanged.socket.OPEN);
    assert.equal(desktopElsewhereFine.socket.readyState, desktopElsewhereFine.socket.OPEN);
    assert.ok(b!.logs.some((line) => line.msg.includes('was cut off') && line['libraries'] === 1));
    // The event accepted alone is in no history: positioned clients of its library elsewhere start over.
    assert.deepEqual(timeline(positionedElsewhere), ['subscribed@0', 'resync:events-not-shared@1']);
    // And one that was away then and comes back later with its position is told too: the history holds a mark.
    const returning = await positionedClient(others[1]!, REPO_2, awaySince);
    clients.push(returning);
    assert.deepEqual(timeline(returning), ['resync:events-not-shared@1']);
    await publish(b!, REPO_2, 'next');
    await positionedElsewhere.waitFor((m) => m.content['commit_id'] === 'next');
    assert.deepEqual(timeline(positionedElsewhere).slice(2), ['next@2']);
    // In /metrics: the catch-up that replayed one event and the refresh here; the resync and the refresh on B.
    const here = await scrape(cutOff.url);
    assert.equal(here.value('notification_recoveries_total'), 1);
    assert.equal(here.value('notification_events_replayed_total'), 1);
    assert.equal(here.sum('notification_resyncs_total'), 0);
    assert.equal(here.value('notification_connections_closed_total', { reason: 'refresh' }), 2);
    const onB = await scrape(b!.url);
    assert.equal(onB.value('notification_resyncs_total', { reason: 'events-not-shared' }), 1);
    assert.equal(onB.value('notification_recoveries_total'), 0);
    assert.equal(onB.value('notification_connections_closed_total', { reason: 'refresh' }), 1);
  });
});
