import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { scrape, scrapeUntil, Scrape } from '../support/prometheus-text.js';
import { commits, flushFrom, isConnectedLine, startNodes, subscribedClient } from '../support/cluster.js';
import { redisSkipReason, startRedis, type RedisInstance } from '../support/redis.js';
import { ServerProcess, subscriberToken, type LogLine } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';
import { upgradeAnswer } from '../support/upgrade.js';

const skip = redisSkipReason() ?? false;
const REPO = '8b2e0c1a-4444-4b4b-9c9c-000000000001';
const STREAM_REPO = '8b2e0c1a-4444-4b4b-9c9c-000000000002';
// Characters that need percent-encoding in a URL, so the URL handling is exercised too.
const PASSWORD = 'pa:ss/w@rd%1';

const isLostLine = (line: LogLine): boolean => line.msg.startsWith('backplane: lost Redis');
const isBackLine = (line: LogLine): boolean => line.msg.startsWith('backplane: back on Redis');

async function until(done: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}

function assertNoRepeats(client: TestClient, where: string): void {
  const received = commits(client);
  assert.equal(new Set(received).size, received.length, `${where} received an event twice: ${received.join(' ')}`);
}

function assertAlive(nodes: ServerProcess[]): void {
  for (const node of nodes) assert.equal(node.child.exitCode ?? node.child.signalCode, null, `a node exited; stderr: ${node.stderr}`);
}

describe('Redis killed and restarted mid-stream', { skip }, () => {
  let redis: RedisInstance;
  let nodes: ServerProcess[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    redis = await startRedis({ password: PASSWORD });
    nodes = await startNodes(3, redis.url);
  });
  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.stop();
  });

  it('each node keeps serving its own events, rejoins without a restart, and delivers nothing twice', async () => {
    const onNode = await Promise.all(nodes.map((node) => subscribedClient(node, REPO)));
    const streamWatcher = await subscribedClient(nodes[2]!, STREAM_REPO);
    const streamLocal = await subscribedClient(nodes[0]!, STREAM_REPO);
    clients.push(...onNode, streamWatcher, streamLocal);
    for (let i = 0; i < 10; i++) assert.equal(await nodes[0]!.publish('repo-update', { repo_id: REPO, commit_id: `before-${i}` }), 200);
    await flushFrom(nodes[0]!, REPO, 'before-end', onNode);

    // Node A streams events of another library all through the outage.
    const sent: string[] = [];
    let streaming = true;
    const stream = (async () => {
      for (let i = 0; streaming; i++) {
        assert.equal(await nodes[0]!.publish('repo-update', { repo_id: STREAM_REPO, commit_id: `stream-${i}` }), 200);
        sent.push(`stream-${i}`);
        await sleep(5);
      }
    })();
    await until(() => sent.length >= 20);

    await redis.kill();
    await Promise.all(nodes.map((node) => node.waitForLog(isLostLine, 15_000)));
    const streamedWhenLost = sent.length;

    // During the outage: new WebSockets are accepted, and a node's own events reach its own subscribers.
    const latecomer = await subscribedClient(nodes[1]!, REPO, 'late@example.com');
    clients.push(latecomer);
    for (const [k, node] of nodes.entries()) {
      assert.equal(await node.publish('repo-update', { repo_id: REPO, commit_id: `during-${k}` }), 200);
      await onNode[k]!.waitFor((m) => m.content['commit_id'] === `during-${k}`, 10_000);
    }
    await latecomer.waitFor((m) => m.content['commit_id'] === 'during-1', 10_000);
    const attempt = await nodes[2]!.waitForLog((line) => /reconnecting: attempt \d+ in \d+ ms/.test(line.msg), 15_000);
    assert.equal(typeof attempt['delayMs'], 'number');
    assertAlive(nodes);
    const stateOf = async (node: ServerProcess, state: string): Promise<number> =>
      (await scrape(node.url)).value('notification_backplane_state', { kind: 'redis', state });
    assert.equal(await stateOf(nodes[2]!, 'connected'), 0, 'the metrics show the lost backplane');

    await until(() => sent.length >= streamedWhenLost + 5);
    const streamedWhenRestarted = sent.length;
    await redis.restart();
    const backLines = await Promise.all(nodes.map((node) => node.waitForLog(isBackLine, 20_000)));
    assert.equal(await stateOf(nodes[2]!, 'connected'), 1, 'and that it is back');
    const streamedWhenBack = sent.length;
    await until(() => sent.length >= streamedWhenBack + 20);
    streaming = false;
    await stream;
    await flushFrom(nodes[0]!, STREAM_REPO, 'stream-end', [streamWatcher, streamLocal]);
    // Node A's own subscriber saw every event, in order; node C a part of them, in order, never one twice,
    // and every one that A accepted once all nodes were back.
    assert.deepEqual(commits(streamLocal), [...sent, 'stream-end']);
    const seen = commits(streamWatcher);
    assertNoRepeats(streamWatcher, 'the stream watcher on node C');
    const positions = seen.map((commit) => [...sent, 'stream-end'].indexOf(commit));
    assert.ok(positions.every((at, i) => at >= 0 && (i === 0 || at > positions[i - 1]!)), `out of order: ${seen.join(' ')}`);
    for (const commit of sent.slice(streamedWhenBack)) assert.ok(seen.includes(commit), `${commit}, sent after the reconnect, is missing`);
    const duringOutage = sent.slice(streamedWhenLost, streamedWhenRestarted);
    assert.deepEqual(seen.filter((commit) => duringOutage.includes(commit)), [], 'events accepted during the outage arrived late');
    for (const line of backLines.slice(1)) assert.equal(line['eventsNotShared'], 1);

    for (const [k, node] of nodes.entries()) {
      assert.equal(await node.publish('repo-update', { repo_id: REPO, commit_id: `after-${k}` }), 200);
    }
    const everyone = [...onNode, latecomer];
    for (const [k, node] of nodes.entries()) await flushFrom(node, REPO, `after-end-${k}`, everyone);

    const before = [...Array.from({ length: 10 }, (_, i) => `before-${i}`), 'before-end'];
    for (const [k, client] of onNode.entries()) {
      assertNoRepeats(client, `the subscriber on node ${k}`);
      const received = commits(client);
      // What the outage cut off stays lost (a later step recovers it); what was its own arrived.
      assert.deepEqual(received.slice(0, before.length), before);
      assert.deepEqual(received.filter((c) => c.startsWith('during-')), [`during-${k}`]);
      assert.deepEqual(received.filter((c) => c.startsWith('after-')).sort(), ['after-0', 'after-1', 'after-2', 'after-end-0', 'after-end-1', 'after-end-2']);
    }
    assertNoRepeats(latecomer, 'the subscriber that came during the outage');
    assertAlive(nodes);
    // The other nodes tell how many events of a node they had heard from never reached them.
    await nodes[1]!.waitForLog((line) => line.msg.includes('while the backplane was down never reached this node'), 5_000);

    for (const node of nodes) {
      const leaked = node.logs.filter((line) => JSON.stringify(line).includes(PASSWORD) || JSON.stringify(line).includes(encodeURIComponent(PASSWORD)));
      assert.deepEqual(leaked, [], 'the Redis password was logged');
    }
  });
});

describe('a node killed and restarted', { skip }, () => {
  let redis: RedisInstance;
  let nodes: ServerProcess[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    redis = await startRedis();
    nodes = await startNodes(3, redis.url);
  });
  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.stop();
  });

  it('the others carry on without it, and it rejoins on restart', async () => {
    const [a, b, c] = nodes as [ServerProcess, ServerProcess, ServerProcess];
    const onA = await subscribedClient(a, REPO);
    const onC = await subscribedClient(c, REPO);
    const onB = await subscribedClient(b, REPO);
    clients.push(onA, onB, onC);

    await b.stop('SIGKILL');
    await onB.closed;
    assert.equal(await a.publish('repo-update', { repo_id: REPO, commit_id: 'while-b-down' }), 200);
    await flushFrom(c, REPO, 'c-while-b-down', [onA, onC]);

    const restarted = await ServerProcess.start({ env: { REDIS_URL: redis.url, NOTIFICATION_SERVER_PORT: String(b.port) } });
    nodes[1] = restarted;
    await restarted.waitForLog(isConnectedLine, 15_000);
    const onNewB = await subscribedClient(restarted, REPO);
    clients.push(onNewB);

    const everyone = [onA, onC, onNewB];
    for (const [name, node] of [['a', a], ['b', restarted], ['c', c]] as const) {
      assert.equal(await node.publish('repo-update', { repo_id: REPO, commit_id: `rejoined-${name}` }), 200);
      await flushFrom(node, REPO, `rejoined-end-${name}`, everyone);
    }
    const rejoined = ['rejoined-a', 'rejoined-end-a', 'rejoined-b', 'rejoined-end-b', 'rejoined-c', 'rejoined-end-c'];
    assert.deepEqual(commits(onNewB), rejoined);
    for (const client of [onA, onC]) assert.deepEqual(commits(client), ['while-b-down', 'c-while-b-down', ...rejoined]);
  });

  it('a node whose Redis is down at start starts anyway and joins when Redis comes up', async () => {
    await redis.kill();
    const late = await ServerProcess.start({ env: { REDIS_URL: redis.url } });
    nodes.push(late);
    await late.waitForLog((line) => line.msg.includes('not reachable yet'), 5_000);
    const local = await subscribedClient(late, REPO);
    clients.push(local);
    assert.equal(await late.publish('repo-update', { repo_id: REPO, commit_id: 'alone' }), 200);
    await local.waitFor((m) => m.content['commit_id'] === 'alone', 10_000);

    await redis.restart();
    await late.waitForLog(isConnectedLine, 20_000);
    await Promise.all(nodes.slice(0, 3).map((node) => node.waitForLog(isBackLine, 20_000)));
    const onA = await subscribedClient(nodes[0]!, REPO);
    clients.push(onA);
    await flushFrom(late, REPO, 'joined', [local, onA]);
    await flushFrom(nodes[0]!, REPO, 'joined-from-a', [local, onA]);
    assert.deepEqual(commits(local), ['alone', 'joined', 'joined-from-a']);
  });
});

describe('Redis frozen (connections open, no answers)', { skip }, () => {
  let redis: RedisInstance;
  let nodes: ServerProcess[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    redis = await startRedis();
    nodes = await startNodes(3, redis.url, { NOTIFICATION_SERVER_REDIS_TIMEOUT: '1' });
  });
  after(async () => {
    redis?.thaw();
    for (const client of clients) client.close();
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.stop();
  });

  it('is noticed by the health check, and the nodes rejoin when it answers again, delivering nothing twice', async () => {
    const onNode = await Promise.all(nodes.map((node) => subscribedClient(node, REPO)));
    clients.push(...onNode);
    await flushFrom(nodes[0]!, REPO, 'before', onNode);

    redis.freeze();
    const lost = await Promise.all(nodes.map((node) => node.waitForLog(isLostLine, 15_000)));
    for (const line of lost) assert.match(String(line['error']), /no answer within 1000 ms|timed out/);
    assert.equal(await nodes[1]!.publish('repo-update', { repo_id: REPO, commit_id: 'during-1' }), 200);
    await onNode[1]!.waitFor((m) => m.content['commit_id'] === 'during-1', 10_000);

    redis.thaw();
    await Promise.all(nodes.map((node) => node.waitForLog(isBackLine, 20_000)));
    for (const [k, node] of nodes.entries()) await flushFrom(node, REPO, `after-${k}`, onNode);
    for (const [k, client] of onNode.entries()) {
      assertNoRepeats(client, `the subscriber on node ${k}`);
      const received = commits(client).filter((commit) => commit !== 'during-1');
      assert.deepEqual(received, ['before', 'after-0', 'after-1', 'after-2']);
    }
    assertAlive(nodes);
  });
});

describe('limits and metrics while Redis is down, then frozen', { skip }, () => {
  let redis: RedisInstance;
  let node: ServerProcess;
  const clients: TestClient[] = [];
  const LIMITED_REPO = '8b2e0c1a-4444-4b4b-9c9c-000000000003';

  before(async () => {
    redis = await startRedis();
    [node] = (await startNodes(1, redis.url, {
      NOTIFICATION_SERVER_REDIS_TIMEOUT: '1',
      NOTIFICATION_SERVER_MAX_CONNECTIONS: '6',
      NOTIFICATION_SERVER_MAX_CONNECTIONS_PER_ADDRESS: '3',
      NOTIFICATION_SERVER_TRUSTED_PROXIES: 'none',
      NOTIFICATION_SERVER_MAX_CONNECTIONS_PER_USER: '1',
      NOTIFICATION_SERVER_MAX_FAILED_SUBSCRIBES_PER_MINUTE: '2',
      NOTIFICATION_SERVER_MAX_EVENT_BYTES: '1024',
    })) as [ServerProcess];
  });
  after(async () => {
    redis?.thaw();
    for (const client of clients) client.socket.terminate();
    await node?.stop();
    await redis?.stop();
  });

  const backplaneConnected = async (expected: 0 | 1): Promise<void> => {
    await scrapeUntil(node.url, (now) => now.value('notification_backplane_state', { kind: 'redis', state: 'connected' }) === expected, 20_000);
  };
  const connectFrom = async (localAddress: string): Promise<TestClient> => {
    const client = await TestClient.connect(node.wsUrl, { localAddress });
    clients.push(client);
    return client;
  };

  /** Every limit answers as it does with Redis up, and /metrics counts each refusal. */
  async function limitsHold(phase: string, alice: TestClient): Promise<void> {
    const before = await scrape(node.url);
    assert.equal(await node.publish('repo-update', { repo_id: LIMITED_REPO, commit_id: `own-${phase}` }), 200);
    await alice.waitFor((m) => m.content['commit_id'] === `own-${phase}`, 10_000);
    assert.equal(await node.publish('repo-update', { repo_id: LIMITED_REPO, commit_id: 'x'.repeat(2000) }), 413);
    assert.equal(await node.publish('repo-update', { repo_id: LIMITED_REPO }, { authorization: `Token ${subscriberToken(LIMITED_REPO, 'mallory@example.com')}` }), 403);

    const secondOfAlice = await connectFrom('127.0.0.2');
    secondOfAlice.subscribe([{ id: LIMITED_REPO, jwt_token: subscriberToken(LIMITED_REPO, 'alice@example.com') }]);
    assert.equal((await secondOfAlice.closed).code, 4003);
    const prober = await connectFrom('127.0.0.2');
    prober.subscribe(['a', 'b', 'c'].map((id) => ({ id, jwt_token: subscriberToken(id, 'mallory@example.com', { key: 'guessed' }) })));
    assert.equal((await prober.closed).code, 4002);
    await scrapeUntil(node.url, (now) => now.value('notification_connections') === 1);

    const held = [await connectFrom('127.0.0.3'), await connectFrom('127.0.0.3'), await connectFrom('127.0.0.3')];
    const perAddress = await upgradeAnswer(node.port, {}, '127.0.0.3');
    assert.equal(perAddress.status, 429);
    held.push(await connectFrom('127.0.0.4'), await connectFrom('127.0.0.4'));
    const overall = await upgradeAnswer(node.port, {}, '127.0.0.5');
    assert.equal(overall.status, 503);
    assert.equal(overall.headers['retry-after'], '60');

    const after = await scrape(node.url);
    assert.equal(after.value('notification_backplane_state', { kind: 'redis', state: 'connected' }), 0, `${phase}: the backplane shows as connected`);
    const counted = (name: string, labels: Record<string, string> = {}): number => Scrape.delta(before, after, name, labels);
    assert.deepEqual(
      {
        tooLarge: counted('notification_events_rejected_total', { reason: 'too-large' }),
        subscriberToken: counted('notification_auth_failures_total', { endpoint: 'events', reason: 'subscriber-token' }),
        userCap: counted('notification_connections_closed_total', { reason: 'user-cap' }),
        userCapSubscribes: counted('notification_subscribes_limited_total', { reason: 'user-cap' }),
        failedSubscribes: counted('notification_connections_closed_total', { reason: 'failed-subscribes' }),
        addressCap: counted('notification_requests_refused_total', { reason: 'address-cap' }),
        connectionCap: counted('notification_requests_refused_total', { reason: 'connection-cap' }),
        accepted: counted('notification_events_accepted_total', { type: 'repo-update', source: 'jwt' }),
      },
      { tooLarge: 1, subscriberToken: 1, userCap: 1, userCapSubscribes: 1, failedSubscribes: 1, addressCap: 1, connectionCap: 1, accepted: 1 },
      phase,
    );
    for (const client of held) client.close();
    await scrapeUntil(node.url, (now) => now.value('notification_connections') === 1);
  }

  it('every limit refuses and is counted as with Redis up, and /metrics shows the backplane down', async () => {
    const alice = await connectFrom('127.0.0.1');
    alice.subscribe([{ id: LIMITED_REPO, jwt_token: subscriberToken(LIMITED_REPO, 'alice@example.com') }]);
    await alice.roundTrip();
    await backplaneConnected(1);

    await redis.kill();
    await backplaneConnected(0);
    await limitsHold('redis killed', alice);

    await redis.restart();
    await backplaneConnected(1);

    redis.freeze();
    await backplaneConnected(0);
    await limitsHold('redis frozen', alice);
    redis.thaw();
    await backplaneConnected(1);
    assertAlive([node]);
  });
});
