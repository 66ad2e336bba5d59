import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { isAnswer, lastPosition, positionedClient, timeline } from '../support/positioned-client.js';
import { scrape } from '../support/prometheus-text.js';
import { ServerProcess, subscriberToken } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';

const REPO = '5e1f0c1a-4444-4c4c-9d9d-000000000001';

async function publishCommits(node: ServerProcess, repoId: string, commits: string[]): Promise<void> {
  for (const commit of commits) assert.equal(await node.publish('repo-update', { repo_id: repoId, commit_id: commit }), 200);
}

describe('the positions extension on one node (in-process history)', () => {
  const servers: ServerProcess[] = [];
  const clients: TestClient[] = [];
  after(async () => {
    for (const client of clients) client.socket.terminate();
    await Promise.all(servers.map((server) => server.stop()));
  });

  async function start(env: Record<string, string> = {}): Promise<ServerProcess> {
    const server = await ServerProcess.start({ env });
    servers.push(server);
    return server;
  }

  async function positioned(server: ServerProcess, repoId: string, since?: { epoch: string; offset: number }): Promise<TestClient> {
    const client = await positionedClient(server, repoId, since);
    clients.push(client);
    return client;
  }

  it('is opt-in: a stock client gets the stock subprotocol and stock frames, byte for byte, next to a positioned one', async () => {
    const server = await start();
    const stock = await TestClient.connect(server.wsUrl, { protocols: ['notification.seafile.com'] });
    clients.push(stock);
    assert.equal(stock.socket.protocol, 'notification.seafile.com');
    stock.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, 'alice@example.com') }]);
    await stock.roundTrip();
    const client = await positioned(server, REPO);
    const epoch = lastPosition(client).epoch;
    assert.deepEqual(timeline(client), ['subscribed@0']);
    await server.publish('repo-update', { repo_id: REPO, commit_id: 'c1' });
    await stock.waitForCount(1);
    await client.waitForCount(2);
    assert.deepEqual(stock.raw, [`{"type":"repo-update","content":{"repo_id":"${REPO}","commit_id":"c1"}}`]);
    assert.deepEqual(client.raw.slice(1), [`{"type":"repo-update","content":{"repo_id":"${REPO}","commit_id":"c1"},"position":{"epoch":"${epoch}","offset":1}}`]);
    // `since` from a stock client is ignored: no subscribed, no replay.
    stock.send({ type: 'subscribe', content: { repos: [{ id: REPO, jwt_token: subscriberToken(REPO, 'alice@example.com'), since: { epoch, offset: 0 } }] } });
    await stock.roundTrip();
    assert.equal(stock.messages.length, 1);
  });

  it('a client back with since gets exactly the events published while it was away, then subscribed, then live ones', async () => {
    const server = await start();
    const first = await positioned(server, REPO);
    await publishCommits(server, REPO, ['1', '2']);
    await first.waitForCount(3);
    const since = lastPosition(first);
    first.close();
    await first.closed;
    await publishCommits(server, REPO, ['3', '4', '5']);
    const back = await positioned(server, REPO, since);
    await publishCommits(server, REPO, ['6']);
    await back.waitFor((m) => m.content['commit_id'] === '6');
    assert.deepEqual(timeline(back), ['3@3', '4@4', '5@5', 'subscribed@5', '6@6']);
  });

  it('a client further behind than history_size is told to resync, and goes on live from the position it is given', async () => {
    const server = await start({ NOTIFICATION_SERVER_HISTORY_SIZE: '3' });
    const first = await positioned(server, REPO);
    const since = lastPosition(first);
    first.close();
    await publishCommits(server, REPO, ['1', '2', '3', '4', '5']);
    const back = await positioned(server, REPO, since);
    await publishCommits(server, REPO, ['6']);
    await back.waitFor((m) => m.content['commit_id'] === '6');
    assert.deepEqual(timeline(back), ['resync:history-gone@5', '6@6']);
    // One that missed only what the history still holds recovers.
    const near = await positioned(server, REPO, { epoch: since.epoch, offset: 3 });
    assert.deepEqual(timeline(near), ['4@4', '5@5', '6@6', 'subscribed@6']);
    // Counted: one resync by its reason, one recovery of three events; subscribes without since are neither.
    const metrics = await scrape(server.url);
    assert.equal(metrics.value('notification_resyncs_total', { reason: 'history-gone' }), 1);
    assert.equal(metrics.sum('notification_resyncs_total'), 1);
    assert.equal(metrics.value('notification_recoveries_total'), 1);
    assert.equal(metrics.value('notification_events_replayed_total'), 3);
  });

  it('after a server restart (a new epoch) a returning client is told to resync', async () => {
    const before = await start();
    const first = await positioned(before, REPO);
    await publishCommits(before, REPO, ['1']);
    await first.waitForCount(2);
    const since = lastPosition(first);
    await before.stop();
    const after = await start();
    const back = await positioned(after, REPO, since);
    const answer = back.messages.find((m) => isAnswer(m, REPO))!;
    assert.equal(answer.type, 'resync');
    assert.equal(answer.content['reason'], 'epoch-changed');
    assert.notEqual((answer.content['position'] as { epoch: string }).epoch, since.epoch);
  });

  it('a since that is not a position is answered with resync, not a closed connection', async () => {
    const server = await start();
    const client = await TestClient.connect(server.wsUrl, { protocols: ['notification.positions.v1'] });
    clients.push(client);
    client.send({ type: 'subscribe', content: { repos: [{ id: REPO, jwt_token: subscriberToken(REPO, 'alice@example.com'), since: 'yesterday' }] } });
    const answer = await client.waitFor((m) => isAnswer(m, REPO));
    assert.equal(answer.type, 'resync');
    assert.equal(answer.content['reason'], 'unknown-position');
  });
});
