import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { commits, flushFrom, startNodes, subscribedClient } from '../support/cluster.js';
import { redisSkipReason, startRedis, type RedisInstance } from '../support/redis.js';
import { ServerProcess, type LogLine } from '../support/server-process.js';
import type { TestClient } from '../support/test-client.js';

const skip = redisSkipReason() ?? false;
const REPO = 'cf6e0c1a-8888-4b4b-9c9c-000000000001';
// What the backplane needs, and no more (CLIENT SETNAME only names the connection in CLIENT LIST);
// the commands after +eval run inside the history scripts.
const NEEDED =
  '-@all +publish +subscribe +ping +hello +info +client|setname +evalsha +eval +get +set +incr +exists +del +xadd +pexpire +xrange +xrevrange';

const retryLine = (line: LogLine): boolean => /reconnecting: attempt \d+ in \d+ ms/.test(line.msg);

describe('Redis access control', { skip }, () => {
  let redis: RedisInstance;
  const nodes: ServerProcess[] = [];
  const clients: TestClient[] = [];
  const port = (): number => redis.port;

  before(async () => {
    redis = await startRedis({
      acl: [
        'user default off',
        `user notify on >notify-secret resetchannels &seafile-notification:* resetkeys ~seafile-notification:* ${NEEDED}`,
        `user elsewhere on >elsewhere-secret resetchannels &other-app:* resetkeys ~other-app:* ${NEEDED}`,
      ],
    });
  });
  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.stop();
  });

  it('a user limited to the seafile-notification:* channels is enough for a cluster', async () => {
    const pair = await startNodes(2, `redis://notify:notify-secret@127.0.0.1:${port()}`);
    nodes.push(...pair);
    const onA = await subscribedClient(pair[0]!, REPO);
    const onB = await subscribedClient(pair[1]!, REPO);
    clients.push(onA, onB);
    await flushFrom(pair[1]!, REPO, 'from-b', [onA, onB]);
    assert.deepEqual(commits(onA), ['from-b']);
  });

  it('a wrong password or a user refused the channel: the node says why, backs off, and serves its own events', async () => {
    const wrongPassword = await ServerProcess.start({ env: { REDIS_URL: `redis://notify:not-the-secret@127.0.0.1:${port()}` } });
    const refusedChannel = await ServerProcess.start({ env: { REDIS_URL: `redis://elsewhere:elsewhere-secret@127.0.0.1:${port()}` } });
    nodes.push(wrongPassword, refusedChannel);
    for (const [node, reason] of [[wrongPassword, /WRONGPASS/], [refusedChannel, /NOPERM/]] as const) {
      await node.waitForLog((line) => retryLine(line) && Number(line['attempt']) >= 4, 15_000);
      const retries = node.logs.filter(retryLine);
      assert.match(String(retries[0]!['error']), reason);
      // Growing delays: retries back off instead of hammering Redis.
      assert.deepEqual(retries.slice(0, 4).map((line) => line['attempt']), [1, 2, 3, 4]);
      assert.ok(Number(retries[3]!['delayMs']) >= 400, `attempt 4 came after ${String(retries[3]!['delayMs'])} ms`);
      assert.ok(!node.logs.some((line) => JSON.stringify(line).includes('secret')), 'a password was logged');
      const local = await subscribedClient(node, REPO);
      clients.push(local);
      assert.equal(await node.publish('repo-update', { repo_id: REPO, commit_id: 'local' }), 200);
      await local.waitFor((m) => m.content['commit_id'] === 'local', 10_000);
    }
  });
});
