import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { scrape, scrapeUntil, Scrape } from '../support/prometheus-text.js';
import { RawWebSocket } from '../support/raw-websocket.js';
import { publisherToken, ServerProcess, subscriberToken } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';

const REPO = '6f1e0c1a-2222-4b4b-9c9c-000000000001';

describe('delivery: expiry, slow clients, dead peers', () => {
  let server: ServerProcess;

  before(async () => {
    server = await ServerProcess.start({
      env: {
        NOTIFICATION_SERVER_PING_INTERVAL: '1',
        NOTIFICATION_SERVER_DEAD_PEER_TIMEOUT: '3',
        NOTIFICATION_SERVER_SEND_QUEUE_BYTES: String(256 * 1024),
      },
    });
  });
  after(async () => {
    await server.stop();
  });

  it('a subscription ends exactly when its token expires, with jwt-expired, not an hour later', async () => {
    const before = await scrape(server.url);
    const client = await TestClient.connect(server.wsUrl);
    const exp = Math.floor(Date.now() / 1000) + 2;
    client.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, 'alice@example.com', { exp }) }]);
    await client.roundTrip();
    await server.publish('repo-update', { repo_id: REPO, commit_id: 'before' });
    const expired = await client.waitFor((m) => m.type === 'jwt-expired', 6000);
    const at = Date.now();
    assert.deepEqual(expired.content, { repo_id: REPO });
    assert.ok(at >= exp * 1000, `jwt-expired came ${exp * 1000 - at} ms before exp`);
    assert.ok(at < exp * 1000 + 3000, `jwt-expired came ${at - exp * 1000} ms after exp`);
    await server.publish('repo-update', { repo_id: REPO, commit_id: 'after' });
    await client.roundTrip();
    assert.deepEqual(client.messages.map((m) => m.content['commit_id'] ?? m.type), ['before', 'jwt-expired']);
    assert.equal(Scrape.delta(before, await scrape(server.url), 'notification_subscriptions_expired_total'), 1);
    client.close();
  });

  it('a stalled client is closed when its queue overflows, and a healthy client receives every event in order', async () => {
    const before = await scrape(server.url);
    const stalled = await RawWebSocket.connect(server.port);
    stalled.sendFrame(1, JSON.stringify({ type: 'subscribe', content: { repos: [{ id: REPO, jwt_token: subscriberToken(REPO, 'slow@example.com') }] } }));
    const healthy = await TestClient.connect(server.wsUrl);
    healthy.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, 'fast@example.com') }]);
    await healthy.roundTrip();
    stalled.stall();

    const padding = 'p'.repeat(48 * 1024);
    const token = publisherToken();
    const count = 400;
    for (let i = 0; i < count; i++) {
      const response = await fetch(`${server.url}/events`, {
        method: 'POST',
        headers: { authorization: `Token ${token}` },
        body: JSON.stringify({ type: 'repo-update', content: { repo_id: REPO, commit_id: String(i), padding } }),
      });
      assert.equal(response.status, 200);
    }
    await healthy.waitForCount(count, 20_000);
    assert.deepEqual(
      healthy.messages.map((m) => m.content['commit_id']),
      Array.from({ length: count }, (_, i) => String(i)),
    );
    const overflow = await server.waitForLog((line) => /send queue overflowed/.test(line.msg), 5000);
    assert.ok(overflow);
    const counted = await scrapeUntil(server.url, (s) => s.value('notification_connections_closed_total', { reason: 'queue-overflow' }) > before.value('notification_connections_closed_total', { reason: 'queue-overflow' }));
    assert.equal(Scrape.delta(before, counted, 'notification_connections_closed_total', { reason: 'queue-overflow' }), 1);
    stalled.destroy();
    healthy.close();
  });

  it('drops a peer that sends nothing and answers no ping; a client whose own pings keep coming stays', async () => {
    const before = await scrape(server.url);
    const dead = await RawWebSocket.connect(server.port);
    const chatty = await RawWebSocket.connect(server.port);
    const pinger = setInterval(() => chatty.sendFrame(9, 'hi'), 500);
    try {
      const started = Date.now();
      await dead.closed;
      const after = Date.now() - started;
      assert.ok(after >= 2500, `dropped after ${after} ms, before the 3 s timeout`);
      await server.waitForLog((line) => line.msg.startsWith('dead peer'));
      assert.equal(chatty.socket.destroyed, false, 'the pinging client is still connected');
      assert.equal(Scrape.delta(before, await scrape(server.url), 'notification_connections_closed_total', { reason: 'dead-peer' }), 1);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(chatty.socket.destroyed, false, 'the pinging client is still connected');
    } finally {
      clearInterval(pinger);
      chatty.destroy();
      dead.destroy();
    }
  });
});
