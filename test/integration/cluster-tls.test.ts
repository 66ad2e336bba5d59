import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { commits, flushFrom, startNodes, subscribedClient } from '../support/cluster.js';
import { redisSkipReason, startRedis, type RedisInstance } from '../support/redis.js';
import { ServerProcess } from '../support/server-process.js';
import type { TestClient } from '../support/test-client.js';

const skip = redisSkipReason({ tls: true }) ?? false;
const REPO = 'be5e0c1a-7777-4b4b-9c9c-000000000001';
const PASSWORD = 'tls-pass@word';

describe('nodes on a Redis over TLS (rediss://) with a password', { skip }, () => {
  let redis: RedisInstance;
  let nodes: ServerProcess[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    redis = await startRedis({ tls: true, password: PASSWORD });
  });
  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.stop();
  });

  it('share events when they trust the certificate', async () => {
    assert.match(redis.url, /^rediss:\/\//);
    const pair = await startNodes(2, redis.url, { NODE_EXTRA_CA_CERTS: redis.caFile! });
    nodes.push(...pair);
    const [a, b] = pair as [ServerProcess, ServerProcess];
    const onA = await subscribedClient(a, REPO);
    const onB = await subscribedClient(b, REPO);
    clients.push(onA, onB);
    assert.equal(await a.publish('repo-update', { repo_id: REPO, commit_id: 'over-tls' }), 200);
    await flushFrom(b, REPO, 'back-over-tls', [onA, onB]);
    for (const client of [onA, onB]) assert.deepEqual(commits(client), ['over-tls', 'back-over-tls']);
  });

  it('a node that does not trust the certificate refuses it, says why, and still serves its own events', async () => {
    const untrusting = await ServerProcess.start({ env: { REDIS_URL: redis.url } });
    nodes.push(untrusting);
    const refused = await untrusting.waitForLog((line) => line.msg.includes('not reachable yet'), 10_000);
    assert.match(String(refused['error']), /self-signed certificate/);
    const local = await subscribedClient(untrusting, REPO);
    clients.push(local);
    assert.equal(await untrusting.publish('repo-update', { repo_id: REPO, commit_id: 'local-only' }), 200);
    await local.waitFor((m) => m.content['commit_id'] === 'local-only', 10_000);
    assert.ok(!untrusting.logs.some((line) => JSON.stringify(line).includes('tls-pass')), 'the password was logged');
  });
});
