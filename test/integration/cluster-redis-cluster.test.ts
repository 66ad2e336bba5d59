import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { backplaneChannel } from '../../src/backplane/open-backplane.js';
import { clusterLayout } from '../../src/backplane/redis-history.js';
import { commits, desktopClient, isBackLine, isLostLine, startNodes } from '../support/cluster.js';
import { positionedClient, positionOf, type WirePosition } from '../support/positioned-client.js';
import { scrape } from '../support/prometheus-text.js';
import { clusterSkipReason, startRedisCluster, type ClusterShard, type ClusterTopology } from '../support/redis-cluster.js';
import { TEST_KEY, type ServerProcess } from '../support/server-process.js';
import type { Message, TestClient } from '../support/test-client.js';

const skip = clusterSkipReason() ?? false;
const REFRESH = { code: 1000, reason: 'missed events: reconnect to refresh' };
const layout = clusterLayout(backplaneChannel(Buffer.from(TEST_KEY)).replace(/^.*:events:/, ''));

/** The sharded channel, and so the shard, of a library. */
function channelOf(repoId: string): string {
  return layout.channel(layout.laneOf(repoId));
}

function offsetOf(message: Message): number {
  return positionOf(message)!.offset;
}

describe('Redis Cluster: three nodes through the loss of the primary of a busy library', { skip }, () => {
  let topology: ClusterTopology;
  let nodes: ServerProcess[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    topology = await startRedisCluster();
    nodes = await startNodes(3, topology.url, { NOTIFICATION_SERVER_GAP_REFRESH_WINDOW: '1', NOTIFICATION_SERVER_REDIS_FAILOVER_HOLD: '30' });
  });
  after(async () => {
    for (const client of clients) client.socket.terminate();
    await Promise.all(nodes.map((node) => node.stop()));
    await topology?.stop();
  });

  it('positioned clients get every event once in order or resync for a library that lost history, whose desktop clients are refreshed; no node restarts', async () => {
    // BUSY on the shard whose primary dies, CALM on another one.
    const busy = '5e7a1c00-2222-4b4b-8c8c-000000000001';
    const busyShard: ClusterShard = await topology.shardOf(channelOf(busy));
    let calm = '';
    for (let i = 2; calm === ''; i++) {
      const candidate = `5e7a1c00-2222-4b4b-8c8c-${String(i).padStart(12, '0')}`;
      if ((await topology.shardOf(channelOf(candidate))).primaryPort !== busyShard.primaryPort) calm = candidate;
    }
    const libraries = [busy, calm];
    const positioned: Record<string, TestClient[]> = { [busy]: [], [calm]: [] };
    const desktops: Record<string, TestClient[]> = { [busy]: [], [calm]: [] };
    for (const node of nodes) {
      for (const repoId of libraries) {
        positioned[repoId]!.push(await positionedClient(node, repoId));
        desktops[repoId]!.push(await desktopClient(node, repoId));
      }
    }
    clients.push(...Object.values(positioned).flat(), ...Object.values(desktops).flat());

    // Events go to every node in turn at a steady rate, each library from its own loop.
    const posted: Record<string, Record<number, string[]>> = { [busy]: {}, [calm]: {} };
    const refused: string[] = [];
    let posting = true;
    const steady = async (repoId: string): Promise<void> => {
      for (let i = 0; posting && i < 2_000; i++) {
        const at = i % nodes.length;
        const commit = `${repoId === busy ? 'busy' : 'calm'}-${at}-${i}`;
        const status = await nodes[at]!.publish('repo-update', { repo_id: repoId, commit_id: commit });
        if (status === 200) (posted[repoId]![at] ??= []).push(commit);
        else refused.push(`${commit}: ${status}`);
        await sleep(25);
      }
    };
    const loops = libraries.map(steady);
    await sleep(600);
    const beforeKill = Object.fromEntries(libraries.map((repoId) => [repoId, positioned[repoId]!.map((client) => client.messages.length)]));

    await topology.killPrimary(busyShard.primaryPort);
    await Promise.all(nodes.map((node) => node.waitForLog(isLostLine, 20_000)));
    await topology.waitForPromotion(busyShard, 30_000);
    await Promise.all(nodes.map((node) => node.waitForLog(isBackLine, 30_000)));
    await sleep(600);
    posting = false;
    await Promise.all(loops);
    assert.deepEqual(refused, []);

    // A last event per library from every node, to know all before it has arrived.
    for (const repoId of libraries) {
      const last = nodes.map((_, at) => `${repoId === busy ? 'busy' : 'calm'}-last-${at}`);
      for (const [at, node] of nodes.entries()) {
        assert.equal(await node.publish('repo-update', { repo_id: repoId, commit_id: last[at] }), 200);
        (posted[repoId]![at] ??= []).push(last[at]!);
      }
      await Promise.all(positioned[repoId]!.map((client) => Promise.all(last.map((commit) => client.waitFor((m) => m.content['commit_id'] === commit, 15_000)))));
    }

    // Whose history the promotion lost is for the nodes to find: its clients say so.
    const lost = libraries.filter((repoId) => positioned[repoId]!.some((client) => client.messages.some((m) => m.type === 'resync')));
    assert.ok(!lost.includes(calm), 'the library on a healthy shard lost nothing');
    console.log(`# history lost in the failover: ${lost.length === 0 ? 'none' : 'the busy library'}`);
    for (const repoId of libraries) {
      const all = Object.values(posted[repoId]!).flat();
      for (const [i, client] of positioned[repoId]!.entries()) {
        const received = commits(client);
        assert.equal(new Set(received).size, received.length, 'no event twice');
        if (!lost.includes(repoId)) {
          assert.deepEqual([...received].sort(), [...all].sort(), 'every event once');
          for (const [at, fromNode] of Object.entries(posted[repoId]!)) {
            assert.deepEqual(received.filter((c) => c.includes(`-${at}-`) || c.endsWith(`-last-${at}`)), fromNode, `node ${at}'s events in the order it accepted them`);
          }
          const offsets = client.messages.filter((m) => m.type === 'repo-update').map(offsetOf);
          assert.deepEqual(offsets, offsets.map((_, j) => offsets[0]! + j), 'offsets without a gap');
          continue;
        }
        const resyncs = client.messages.slice(beforeKill[repoId]![i]).filter((m) => m.type === 'resync');
        assert.ok(resyncs.length >= 1);
        for (const resync of resyncs) assert.equal(resync.content['reason'], 'history-lost');
        const from = (resyncs.at(-1)!.content['position'] as WirePosition).offset;
        const live = client.messages.slice(client.messages.lastIndexOf(resyncs.at(-1)!) + 1).filter((m) => m.type === 'repo-update');
        assert.deepEqual(live.map(offsetOf), live.map((_, j) => from + 1 + j), 'offsets after the resync without a gap');
      }
      for (const desktop of desktops[repoId]!) {
        if (lost.includes(repoId)) assert.deepEqual(await Promise.race([desktop.closed, sleep(15_000).then(() => null)]), REFRESH);
        else {
          await Promise.all(nodes.map((_, at) => desktop.waitFor((m) => m.content['commit_id'] === posted[repoId]![at]!.at(-1), 15_000)));
          assert.deepEqual(commits(desktop), commits(positioned[repoId]![0]!), 'a desktop client has every event once, in the one order');
          assert.equal(desktop.socket.readyState, desktop.socket.OPEN, 'a desktop client of a library that lost nothing was left connected');
        }
      }
    }

    // No node restarted: each lost Redis and came back by itself, and says so in /metrics.
    for (const node of nodes) {
      assert.ok(node.logs.filter(isBackLine).length >= 1);
      const metrics = await scrape(node.url);
      assert.equal(metrics.value('notification_backplane_state', { kind: 'redis', state: 'connected' }), 1);
      assert.ok(metrics.value('notification_backplane_disconnects_total') >= 1);
      assert.ok(metrics.value('notification_backplane_outage_seconds_total') > 0);
      assert.ok(metrics.value('notification_backplane_events_total', { outcome: 'held' }) > 0, 'events were held during the failover');
      assert.equal(metrics.value('notification_backplane_events_total', { outcome: 'not-shared' }), 0);
    }
  });
});
