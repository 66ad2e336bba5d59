import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { commits, desktopClient, isBackLine, isLostLine, REFRESH, startNodes, SteadyPosting } from '../support/cluster.js';
import { positionedClient, positionOf, type WirePosition } from '../support/positioned-client.js';
import { scrape } from '../support/prometheus-text.js';
import { sentinelSkipReason, startSentinelTopology, type SentinelTopology } from '../support/redis-sentinel.js';
import type { ServerProcess } from '../support/server-process.js';
import type { Message, TestClient } from '../support/test-client.js';

const skip = sentinelSkipReason() ?? false;
/** The library whose last events the promoted replica never received. */
const BUSY = '5e7a1c00-1111-4b4b-8c8c-000000000001';
/** A library with events all along, none of them lost. */
const CALM = '5e7a1c00-1111-4b4b-8c8c-000000000002';

function offsetOf(message: Message): number {
  return positionOf(message)!.offset;
}

describe('Redis Sentinel: three nodes through a failover that loses the newest events of one library', { skip }, () => {
  let topology: SentinelTopology;
  let nodes: ServerProcess[] = [];
  const clients: TestClient[] = [];

  before(async () => {
    topology = await startSentinelTopology();
    nodes = await startNodes(3, topology.url, { NOTIFICATION_SERVER_GAP_REFRESH_WINDOW: '1', NOTIFICATION_SERVER_REDIS_FAILOVER_HOLD: '20' });
  });
  after(async () => {
    for (const client of clients) client.socket.terminate();
    await Promise.all(nodes.map((node) => node.stop()));
    await topology?.stop();
  });

  it('clients get every event once and in order, or (positioned) resync for the library that lost history, whose desktop clients are refreshed; no node restarts', async () => {
    const positioned: Record<string, TestClient[]> = { [BUSY]: [], [CALM]: [] };
    const desktops: Record<string, TestClient[]> = { [BUSY]: [], [CALM]: [] };
    for (const node of nodes) {
      for (const repoId of [BUSY, CALM]) {
        positioned[repoId]!.push(await positionedClient(node, repoId));
        desktops[repoId]!.push(await desktopClient(node, repoId));
      }
    }
    clients.push(...positioned[BUSY]!, ...positioned[CALM]!, ...desktops[BUSY]!, ...desktops[CALM]!);

    // Events go to every node in turn at a steady rate, each library from its own loop.
    const steady = new SteadyPosting(nodes, { [BUSY]: 'busy', [CALM]: 'calm' });
    const { posted } = steady;
    await sleep(600);

    // The replica falls behind: what BUSY gets now reaches every node and client, but not the replica.
    await steady.pause([BUSY, CALM], (repoId) => positioned[repoId]!);
    await topology.detachReplica();
    const unreplicated: string[] = [];
    for (let i = 0; i < 5; i++) {
      const commit = `busy-unreplicated-${i}`;
      assert.equal(await nodes[i % 3]!.publish('repo-update', { repo_id: BUSY, commit_id: commit }), 200);
      unreplicated.push(commit);
    }
    await Promise.all(positioned[BUSY]!.flatMap((client) => unreplicated.map((commit) => client.waitFor((m) => m.content['commit_id'] === commit))));
    const beforeKill = positioned[BUSY]!.map((client) => client.messages.length);

    await topology.killPrimary();
    steady.resume();
    await Promise.all(nodes.map((node) => node.waitForLog(isLostLine, 10_000)));
    const newPort = await topology.waitForPromotion(topology.primaryPort, 20_000);
    assert.equal(newPort, topology.replicaPort);
    await Promise.all(nodes.map((node) => node.waitForLog(isBackLine, 20_000)));
    await sleep(600);
    await steady.stop();
    assert.deepEqual(steady.refused, []);

    // A last event per library from every node, to know all before it has arrived.
    for (const repoId of [BUSY, CALM]) {
      for (const [at, node] of nodes.entries()) {
        const commit = `${repoId === BUSY ? 'busy' : 'calm'}-last-${at}`;
        assert.equal(await node.publish('repo-update', { repo_id: repoId, commit_id: commit }), 200);
        steady.accepted(repoId, at, commit);
      }
      const last = nodes.map((_, at) => `${repoId === BUSY ? 'busy' : 'calm'}-last-${at}`);
      const open = repoId === CALM ? [...positioned[repoId]!, ...desktops[repoId]!] : positioned[repoId]!;
      await Promise.all(open.map((client) => Promise.all(last.map((commit) => client.waitFor((m) => m.content['commit_id'] === commit, 10_000)))));
    }

    // CALM lost nothing: every event once, each node's in the order it accepted them, offsets without a gap, no resync.
    const allCalm = Object.values(posted[CALM]!).flat();
    for (const client of positioned[CALM]!) {
      const received = commits(client);
      assert.deepEqual([...received].sort(), [...allCalm].sort(), 'every CALM event once');
      for (const [at, fromNode] of Object.entries(posted[CALM]!)) {
        assert.deepEqual(received.filter((c) => c.startsWith(`calm-${at}-`) || c === `calm-last-${at}`), fromNode, `node ${at}'s CALM events in order`);
      }
      assert.equal(client.messages.filter((m) => m.type === 'resync').length, 0, 'no resync for CALM');
      const offsets = client.messages.filter((m) => m.type === 'repo-update').map(offsetOf);
      assert.deepEqual(offsets, offsets.map((_, i) => offsets[0]! + i), 'CALM offsets without a gap');
    }

    // Stock clients of CALM: every event once, in the one order of the cluster, and left connected.
    const order = commits(positioned[CALM]![0]!);
    for (const desktop of desktops[CALM]!) {
      assert.deepEqual(commits(desktop), order, 'a CALM desktop client has every event once, in the order positioned clients have them');
      assert.equal(desktop.socket.readyState, desktop.socket.OPEN, 'a CALM desktop client was sent to refresh');
    }

    // BUSY: told to resync (history-lost) after the promotion; never an event twice; after the resync, live from its position.
    for (const client of positioned[BUSY]!) {
      const received = commits(client);
      assert.equal(new Set(received).size, received.length, 'no BUSY event twice');
      const afterKill = client.messages.slice(beforeKill[positioned[BUSY]!.indexOf(client)]!);
      const resyncs = afterKill.filter((m) => m.type === 'resync');
      assert.ok(resyncs.length >= 1, 'BUSY was told to resync');
      for (const resync of resyncs) assert.equal(resync.content['reason'], 'history-lost');
      const lastResync = client.messages.lastIndexOf(resyncs.at(-1)!);
      const from = (resyncs.at(-1)!.content['position'] as WirePosition).offset;
      const live = client.messages.slice(lastResync + 1).filter((m) => m.type === 'repo-update');
      assert.deepEqual(live.map(offsetOf), live.map((_, i) => from + 1 + i), 'BUSY offsets after the resync without a gap');
      // Nothing numbered again over what was given out before the failover.
      const top = Math.max(...client.messages.slice(0, beforeKill[positioned[BUSY]!.indexOf(client)]!).filter((m) => m.type === 'repo-update').map(offsetOf));
      assert.ok(from > top, `the resync position ${from} is past the last offset given before the failover (${top})`);
    }

    // Desktop clients of the library whose history was lost re-read their state.
    for (const desktop of desktops[BUSY]!) {
      assert.deepEqual(await Promise.race([desktop.closed, sleep(10_000).then(() => null)]), REFRESH);
    }

    // No node restarted: each lost Redis once and came back once by itself, and says so in /metrics.
    for (const node of nodes) {
      assert.equal(node.logs.filter(isLostLine).length, 1);
      assert.equal(node.logs.filter(isBackLine).length, 1);
      const metrics = await scrape(node.url);
      assert.equal(metrics.value('notification_backplane_state', { kind: 'redis', state: 'connected' }), 1);
      assert.equal(metrics.value('notification_backplane_disconnects_total'), 1);
      assert.ok(metrics.value('notification_backplane_outage_seconds_total') > 0);
      assert.ok(metrics.value('notification_backplane_events_total', { outcome: 'held' }) > 0, 'events were held during the failover');
      assert.equal(metrics.value('notification_backplane_events_total', { outcome: 'not-shared' }), 0);
      assert.ok(metrics.value('notification_resyncs_total', { reason: 'history-lost' }) >= 1);
      assert.ok(metrics.value('notification_connections_closed_total', { reason: 'refresh' }) >= 1);
    }
    const lost = await Promise.all(nodes.map(async (node) => (await scrape(node.url)).value('notification_backplane_libraries_lost_total')));
    assert.ok(lost.reduce((a, b) => a + b, 0) >= 1, 'a node found the lost history');
  });
});
