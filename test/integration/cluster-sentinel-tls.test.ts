import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { commits, flushFrom, isBackLine, startNodes, subscribedClient } from '../support/cluster.js';
import { redisSkipReason } from '../support/redis.js';
import { sentinelSkipReason, startSentinelTopology, type SentinelTopology } from '../support/redis-sentinel.js';
import type { ServerProcess } from '../support/server-process.js';
import type { TestClient } from '../support/test-client.js';

const skip = sentinelSkipReason() ?? false;
const LIBRARY = '5e7a1c00-1111-4b4b-8c8c-000000000002';

describe('Redis Sentinel over TLS with ACL users (rediss+sentinel://)', { skip: skip || (redisSkipReason({ tls: true }) ?? false) }, () => {
  let topology: SentinelTopology;
  let nodes: ServerProcess[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    topology = await startSentinelTopology({ tls: true, acl: true });
  });
  after(async () => {
    for (const client of clients) client.socket.terminate();
    await Promise.all(nodes.map((node) => node.stop()));
    await topology?.stop();
  });

  it('nodes find the primary as the least-privilege user, share events, and follow a failover', async () => {
    assert.match(topology.url, /^rediss\+sentinel:\/\/notify:notify-pw@.*\?sentinel_username=watch&sentinel_password=watch-pw$/);
    nodes = await startNodes(2, topology.url, { NODE_EXTRA_CA_CERTS: topology.caFile! });
    const [a, b] = nodes as [ServerProcess, ServerProcess];
    const onA = await subscribedClient(a, LIBRARY);
    const onB = await subscribedClient(b, LIBRARY);
    clients.push(onA, onB);
    assert.equal(await a.publish('repo-update', { repo_id: LIBRARY, commit_id: 'before' }), 200);
    await flushFrom(b, LIBRARY, 'before-back', [onA, onB]);
    await topology.killPrimary();
    await topology.waitForPromotion(topology.primaryPort, 20_000);
    await Promise.all(nodes.map((node) => node.waitForLog(isBackLine, 20_000)));
    assert.equal(await b.publish('repo-update', { repo_id: LIBRARY, commit_id: 'after' }), 200);
    await flushFrom(a, LIBRARY, 'after-back', [onA, onB]);
    for (const client of [onA, onB]) assert.deepEqual(commits(client), ['before', 'before-back', 'after', 'after-back']);
    for (const node of nodes) assert.ok(!node.logs.some((line) => JSON.stringify(line).includes('-pw')), 'a password was logged');
  });
});
