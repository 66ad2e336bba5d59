import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { commits, flushFrom, startNodes, subscribedClient } from '../support/cluster.js';
import { requireServiceUrl } from '../support/env.js';
import { ServerProcess, subscriberToken } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';

const redisUrl = requireServiceUrl('TEST_REDIS_URL');
const REPO = '7a1e0c1a-3333-4b4b-9c9c-000000000001';
const OTHER_REPO = '7a1e0c1a-3333-4b4b-9c9c-000000000002';

describe('three nodes on one Redis', { skip: redisUrl === undefined ? 'TEST_REDIS_URL is not set (run `npm test`)' : false }, () => {
  let nodes: ServerProcess[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    nodes = await startNodes(3, redisUrl!);
  });
  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(nodes.map((node) => node.stop()));
  });

  async function clientOn(node: ServerProcess, repoId: string, username?: string): Promise<TestClient> {
    const client = await subscribedClient(node, repoId, username);
    clients.push(client);
    return client;
  }

  it('an event posted to any node reaches the subscribers of every node, once each', async () => {
    const subscribers = await Promise.all(nodes.flatMap((node) => [clientOn(node, REPO), clientOn(node, REPO, 'bob@example.com')]));
    const bystanders = await Promise.all(nodes.map((node) => clientOn(node, OTHER_REPO)));
    for (const [i, node] of nodes.entries()) {
      assert.equal(await node.publish('repo-update', { repo_id: REPO, commit_id: `from-${i}` }), 200);
    }
    // The markers come after each node's event, so everything sent before them has arrived.
    for (const [i, node] of nodes.entries()) await flushFrom(node, REPO, `marker-${i}`, subscribers);
    for (const subscriber of subscribers) {
      const received = commits(subscriber);
      assert.deepEqual([...received].sort(), ['from-0', 'from-1', 'from-2', 'marker-0', 'marker-1', 'marker-2']);
      // Per node, in the order that node accepted them.
      for (const i of [0, 1, 2]) assert.ok(received.indexOf(`from-${i}`) < received.indexOf(`marker-${i}`));
    }
    for (const bystander of bystanders) {
      await bystander.roundTrip();
      assert.deepEqual(bystander.messages, [], 'a subscriber of another library received an event');
    }
  });

  it('200 back-to-back events for one library posted to one node arrive in order at every node', async () => {
    const subscribers = await Promise.all(nodes.map((node) => clientOn(node, REPO)));
    const count = 200;
    for (let i = 0; i < count; i++) assert.equal(await nodes[1]!.publish('repo-update', { repo_id: REPO, commit_id: String(i) }), 200);
    await flushFrom(nodes[1]!, REPO, 'end', subscribers);
    const expected = [...Array.from({ length: count }, (_, i) => String(i)), 'end'];
    for (const subscriber of subscribers) assert.deepEqual(commits(subscriber), expected);
  });

  it('the audience travels with the event: a permission change for one user reaches only that user, on every node', async () => {
    const alices = await Promise.all(nodes.map((node) => clientOn(node, REPO, 'alice@example.com')));
    const bobs = await Promise.all(nodes.map((node) => clientOn(node, REPO, 'bob@example.com')));
    const content = { repo_id: REPO, path: '/docs', type: 'rw', change_event: 'add', user: 'alice@example.com', group: -1 };
    assert.equal(await nodes[2]!.publish('folder-perm-changed', content), 200);
    await flushFrom(nodes[2]!, REPO, 'after-perm', [...alices, ...bobs]);
    for (const alice of alices) {
      const perms = alice.raw.filter((text) => text.includes('folder-perm-changed'));
      // Byte for byte as the publisher wrote the content, on every node.
      assert.deepEqual(perms, [`{"type":"folder-perm-changed","content":${JSON.stringify(content)}}`]);
    }
    for (const bob of bobs) assert.deepEqual(commits(bob), ['after-perm']);
    for (const bob of bobs) assert.equal(bob.messages.length, 1);
  });

  it('a subscription on one node is not visible to another: an expired token there changes nothing here', async () => {
    const here = await clientOn(nodes[0]!, REPO);
    const there = await TestClient.connect(nodes[1]!.wsUrl);
    clients.push(there);
    there.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, 'carol@example.com', { exp: Math.floor(Date.now() / 1000) + 1 }) }]);
    await there.waitFor((m) => m.type === 'jwt-expired', 10_000);
    await flushFrom(nodes[1]!, REPO, 'still-here', [here]);
    assert.deepEqual(here.messages.map((m) => m.type), ['repo-update']);
  });
});
