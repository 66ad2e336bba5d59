import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { commits, desktopClient, isBackLine, REFRESH, startNodes } from '../support/cluster.js';
import { positionedClient } from '../support/positioned-client.js';
import { sentinelSkipReason, startSentinelTopology, type SentinelTopology } from '../support/redis-sentinel.js';
import type { ServerProcess } from '../support/server-process.js';
import type { TestClient } from '../support/test-client.js';

const skip = sentinelSkipReason() ?? false;
const LIBRARY = '5e7a1c00-1111-4b4b-8c8c-000000000002';

describe('Redis Sentinel: a manual failover (SENTINEL FAILOVER)', { skip }, () => {
  let topology: SentinelTopology;
  let nodes: ServerProcess[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    topology = await startSentinelTopology();
    nodes = await startNodes(2, topology.url, { NOTIFICATION_SERVER_GAP_REFRESH_WINDOW: '1' });
  });
  after(async () => {
    for (const client of clients) client.socket.terminate();
    await Promise.all(nodes.map((node) => node.stop()));
    await topology?.stop();
  });

  it('the nodes follow the announced switch by themselves; what the old primary took meanwhile is delivered or answered with resync and refresh', async () => {
    const [a, b] = nodes as [ServerProcess, ServerProcess];
    const watchers = [await positionedClient(a, LIBRARY), await positionedClient(b, LIBRARY)];
    const desktops = [await desktopClient(a, LIBRARY), await desktopClient(b, LIBRARY)];
    clients.push(...watchers, ...desktops);
    const posted: string[] = [];
    let posting = true;
    const loop = (async () => {
      for (let i = 0; posting && i < 500; i++) {
        const commit = `during-${i}`;
        assert.equal(await a.publish('repo-update', { repo_id: LIBRARY, commit_id: commit }), 200);
        posted.push(commit);
        await sleep(20);
      }
    })();
    await sleep(200);
    await topology.failover();
    await topology.waitForPromotion(topology.primaryPort, 20_000);
    await Promise.all(nodes.map((node) => node.waitForLog(isBackLine, 10_000)));
    await sleep(300);
    posting = false;
    await loop;
    await Promise.all(watchers.map((client) => client.waitFor((m) => m.content['commit_id'] === posted.at(-1), 10_000)));
    // The old primary numbers events until it learns it is a replica; a node that saw those offsets
    // marks them lost on the new primary. Either nothing was lost, or the clients were told.
    const lost = nodes.some((node) => node.logs.some((line) => line.msg.startsWith('backplane: Redis no longer holds')));
    for (const client of watchers) {
      const resyncs = client.messages.filter((m) => m.type === 'resync');
      if (!lost) assert.deepEqual(commits(client), posted, 'every event once, in the order the node accepted them');
      else {
        assert.ok(resyncs.length >= 1, 'a positioned client was told to resync');
        for (const resync of resyncs) assert.equal(resync.content['reason'], 'history-lost');
        assert.equal(new Set(commits(client)).size, commits(client).length, 'no event twice');
      }
    }
    for (const desktop of desktops) {
      if (!lost) assert.deepEqual(commits(desktop), posted);
      else assert.deepEqual(await Promise.race([desktop.closed, sleep(10_000).then(() => null)]), REFRESH);
    }
  });
});
