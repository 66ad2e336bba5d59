import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { backplaneChannel } from '../../src/backplane/open-backplane.js';
import { clusterLayout } from '../../src/backplane/redis-history.js';
import { commits, desktopClient, isBackLine, isLostLine, REFRESH, startNodes, SteadyPosting } from '../support/cluster.js';
import { positionedClient, positionOf, type WirePosition } from '../support/positioned-client.js';
import { scrape } from '../support/prometheus-text.js';
import { clusterSkipReason, startRedisCluster, type ClusterShard, type ClusterTopology } from '../support/redis-cluster.js';
import { TEST_KEY, type ServerProcess } from '../support/server-process.js';
import type { Message, TestClient } from '../support/test-client.js';

const skip = clusterSkipReason() ?? false;
const layout = clusterLayout(backplaneChannel(Buffer.from(TEST_KEY)).replace(/^.*:events:/, ''));

/** The sharded channel, and so the shard, of a library. */
function channelOf(repoId: string): string {
  return layout.channel(layout.laneOf(repoId));
}

function offsetOf(message: Message): number {
  return positionOf(message)!.offset;
}

function library(i: number): string {
  return `5e7a1c00-2222-4b4b-8c8c-${String(i).padStart(12, '0')}`;
}

describe('Redis Cluster: three nodes through the loss of the primary of a busy library, promoted without its newest events', { skip }, () => {
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

  it('positioned clients of exactly the library that lost history resync and its desktop clients refresh; every other client has every event once, in order; no node restarts', async () => {
    // BUSY loses its newest events; QUIET, in another lane of the same shard, loses nothing; CALM is on a healthy shard.
    const busy = library(1);
    const busyShard: ClusterShard = await topology.shardOf(channelOf(busy));
    let quiet = '';
    let calm = '';
    for (let i = 2; quiet === '' || calm === ''; i++) {
      const candidate = library(i);
      const sameShard = (await topology.shardOf(channelOf(candidate))).primaryPort === busyShard.primaryPort;
      if (sameShard && quiet === '' && layout.laneOf(candidate) !== layout.laneOf(busy)) quiet = candidate;
      if (!sameShard && calm === '') calm = candidate;
    }
    const libraries = [busy, quiet, calm];
    const names: Record<string, string> = { [busy]: 'busy', [quiet]: 'quiet', [calm]: 'calm' };
    const name = (repoId: string): string => names[repoId]!;
    const positioned: Record<string, TestClient[]> = { [busy]: [], [quiet]: [], [calm]: [] };
    const desktops: Record<string, TestClient[]> = { [busy]: [], [quiet]: [], [calm]: [] };
    for (const node of nodes) {
      for (const repoId of libraries) {
        positioned[repoId]!.push(await positionedClient(node, repoId));
        desktops[repoId]!.push(await desktopClient(node, repoId));
      }
    }
    clients.push(...Object.values(positioned).flat(), ...Object.values(desktops).flat());

    // Events go to every node in turn at a steady rate, each library from its own loop.
    const steady = new SteadyPosting(nodes, names);
    const { posted } = steady;
    await sleep(600);

    // The replica falls behind: what BUSY gets now reaches every node and client, but not the replica.
    await steady.pause([busy, quiet], (repoId) => positioned[repoId]!);
    await topology.detachReplica(busyShard);
    const unreplicated = nodes.map((_, at) => `busy-unreplicated-${at}`);
    for (const [at, node] of nodes.entries()) {
      assert.equal(await node.publish('repo-update', { repo_id: busy, commit_id: unreplicated[at] }), 200);
      steady.accepted(busy, at, unreplicated[at]!);
    }
    await Promise.all(positioned[busy]!.flatMap((client) => unreplicated.map((commit) => client.waitFor((m) => m.content['commit_id'] === commit, 10_000))));
    const beforeKill = positioned[busy]!.map((client) => client.messages.length);
    const topBeforeKill = Math.max(...positioned[busy]![0]!.messages.filter((m) => m.type === 'repo-update').map(offsetOf));

    await topology.killPrimary(busyShard.primaryPort);
    steady.resume();
    await Promise.all(nodes.map((node) => node.waitForLog(isLostLine, 15_000)));
    await topology.waitForPromotion(busyShard, 20_000);
    await Promise.all(nodes.map((node) => node.waitForLog(isBackLine, 20_000)));
    await sleep(300);
    await steady.stop();
    assert.deepEqual(steady.refused, []);

    // A last event per library from every node, to know all before it has arrived.
    for (const repoId of libraries) {
      const last = nodes.map((_, at) => `${name(repoId)}-last-${at}`);
      for (const [at, node] of nodes.entries()) {
        assert.equal(await node.publish('repo-update', { repo_id: repoId, commit_id: last[at] }), 200);
        steady.accepted(repoId, at, last[at]!);
      }
      const open = repoId === busy ? positioned[repoId]! : [...positioned[repoId]!, ...desktops[repoId]!];
      await Promise.all(open.map((client) => Promise.all(last.map((commit) => client.waitFor((m) => m.content['commit_id'] === commit, 10_000)))));
    }

    const resynced = libraries.filter((repoId) => positioned[repoId]!.some((client) => client.messages.some((m) => m.type === 'resync')));
    assert.deepEqual(resynced, [busy], 'only the library whose history the promotion lost was told to resync');

    // QUIET (same shard) and CALM (healthy shard): every event once, each node's in the order it accepted them, offsets without a gap.
    for (const repoId of [quiet, calm]) {
      const all = Object.values(posted[repoId]!).flat();
      const order = commits(positioned[repoId]![0]!);
      for (const client of positioned[repoId]!) {
        const received = commits(client);
        assert.deepEqual([...received].sort(), [...all].sort(), `every ${name(repoId)} event once`);
        for (const [at, fromNode] of Object.entries(posted[repoId]!)) {
          assert.deepEqual(received.filter((c) => c.includes(`-${at}-`) || c.endsWith(`-last-${at}`)), fromNode, `node ${at}'s ${name(repoId)} events in order`);
        }
        const offsets = client.messages.filter((m) => m.type === 'repo-update').map(offsetOf);
        assert.deepEqual(offsets, offsets.map((_, j) => offsets[0]! + j), `${name(repoId)} offsets without a gap`);
        assert.deepEqual(received, order, 'every positioned client in the one order');
      }
      for (const desktop of desktops[repoId]!) {
        assert.deepEqual(commits(desktop), order, `a ${name(repoId)} desktop client has every event once, in the one order`);
        assert.equal(desktop.socket.readyState, desktop.socket.OPEN, `a ${name(repoId)} desktop client was sent to refresh`);
      }
    }

    // BUSY: told to resync (history-lost) after the promotion, never an event twice, then live from past anything given out before.
    for (const [i, client] of positioned[busy]!.entries()) {
      const received = commits(client);
      assert.equal(new Set(received).size, received.length, 'no BUSY event twice');
      const resyncs = client.messages.slice(beforeKill[i]).filter((m) => m.type === 'resync');
      assert.ok(resyncs.length >= 1, 'BUSY was told to resync');
      for (const resync of resyncs) assert.equal(resync.content['reason'], 'history-lost');
      const from = (resyncs.at(-1)!.content['position'] as WirePosition).offset;
      assert.ok(from > topBeforeKill, `the resync position ${from} is past the last offset given before the failover (${topBeforeKill})`);
      const live = client.messages.slice(client.messages.lastIndexOf(resyncs.at(-1)!) + 1).filter((m) => m.type === 'repo-update');
      assert.deepEqual(live.map(offsetOf), live.map((_, j) => from + 1 + j), 'BUSY offsets after the resync without a gap');
    }
    for (const desktop of desktops[busy]!) {
      assert.deepEqual(await Promise.race([desktop.closed, sleep(10_000).then(() => null)]), REFRESH, 'a BUSY desktop client was refreshed');
    }

    // No node restarted: each lost Redis and came back by itself, and says so in /metrics.
    let librariesLost = 0;
    for (const node of nodes) {
      assert.ok(node.logs.filter(isBackLine).length >= 1);
      const metrics = await scrape(node.url);
      assert.equal(metrics.value('notification_backplane_state', { kind: 'redis', state: 'connected' }), 1);
      assert.ok(metrics.value('notification_backplane_disconnects_total') >= 1);
      assert.ok(metrics.value('notification_backplane_outage_seconds_total') > 0);
      assert.ok(metrics.value('notification_backplane_events_total', { outcome: 'held' }) > 0, 'events were held during the failover');
      assert.equal(metrics.value('notification_backplane_events_total', { outcome: 'not-shared' }), 0);
      assert.ok(metrics.value('notification_resyncs_total', { reason: 'history-lost' }) >= 1);
      assert.ok(metrics.value('notification_connections_closed_total', { reason: 'refresh' }) >= 1);
      librariesLost += metrics.value('notification_backplane_libraries_lost_total');
    }
    assert.ok(librariesLost >= 1, 'a node found the lost history');
  });
});
