import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { lastPosition, positionedClient, timeline } from '../support/positioned-client.js';
import { postOnNewConnection as post, ServerProcess } from '../support/server-process.js';
import { subscribedClient } from '../support/cluster.js';
import type { TestClient } from '../support/test-client.js';

const REPO = '7a7a7a7a-1111-4222-8333-000000000001';
const EVENTS = 20;
const postOnNewConnection = (port: number, commit: string): Promise<number> => post(port, REPO, commit);


function workersThatLogged(server: ServerProcess, msg: string): Set<unknown> {
  return new Set(server.logs.filter((line) => line.msg === msg).map((line) => line['worker']));
}

describe('--workers 2: one port, the primary numbers every event', () => {
  let server: ServerProcess;
  const clients: TestClient[] = [];
  after(async () => {
    for (const client of clients) client.socket.terminate();
    await server?.stop();
  });

  it('subscribers on both workers get every event exactly once, in one order, with the same positions; SIGTERM drains both', async () => {
    server = await ServerProcess.start({ args: ['--workers', '2'] });
    assert.ok(server.logs.some((line) => line.msg.includes('with 2 workers')));

    // Connections are handed to the workers in turn: six stock and four positioned land on both.
    const stock: TestClient[] = [];
    for (let i = 0; i < 6; i++) {
      const client = await subscribedClient(server, REPO, `user${i}@example.com`);
      clients.push(client);
      stock.push(client);
    }
    const positioned: TestClient[] = [];
    for (let i = 0; i < 4; i++) {
      const client = await positionedClient(server, REPO);
      clients.push(client);
      positioned.push(client);
    }
    await server.waitForLog(() => workersThatLogged(server, 'websocket connected').size === 2, 5000);
    assert.deepEqual([...workersThatLogged(server, 'websocket connected')].sort(), [1, 2], 'connections landed on both workers');
    const epochs = new Set(positioned.map((client) => lastPosition(client).epoch));
    assert.equal(epochs.size, 1, 'every worker answers in the primary epoch');

    // Each event on a connection of its own: both workers accept some.
    for (let i = 0; i < EVENTS; i++) assert.equal(await postOnNewConnection(server.port, `c${i}`), 200);
    await server.waitForLog(() => workersThatLogged(server, 'event accepted').size === 2, 5000);
    assert.deepEqual([...workersThatLogged(server, 'event accepted')].sort(), [1, 2], 'events were posted to both workers');

    const expected = Array.from({ length: EVENTS }, (_, i) => `c${i}`);
    for (const client of stock) {
      await client.waitForCount(EVENTS, 10_000);
      await client.roundTrip();
      assert.deepEqual(client.messages.map((m) => m.content['commit_id']), expected, 'every event once, in the order accepted');
    }
    for (const client of positioned) {
      await client.waitForCount(1 + EVENTS, 10_000);
      await client.roundTrip();
      assert.deepEqual(timeline(client), ['subscribed@0', ...expected.map((commit, i) => `${commit}@${i + 1}`)]);
    }

    // A positioned client coming back recovers from whichever worker it lands on (twice: both).
    const [epoch] = epochs;
    for (let i = 0; i < 2; i++) {
      const back = await positionedClient(server, REPO, { epoch: epoch as string, offset: 15 });
      clients.push(back);
      assert.deepEqual(timeline(back), ['c15@16', 'c16@17', 'c17@18', 'c18@19', 'c19@20', 'subscribed@20']);
    }

    const closing = clients.map((client) => client.closed);
    const exit = await server.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    for (const closed of await Promise.all(closing)) assert.equal(closed.code, 1001);
    assert.deepEqual([...workersThatLogged(server, 'stopped')].sort(), [1, 2, undefined], 'both workers and the primary stopped');
  });

  it('a worker that dies is replaced: subscribers on the survivor and on the new worker get every event, and recover what was published before it started', async () => {
    const cluster = await ServerProcess.start({ args: ['--workers', '2'] });
    try {
      const first = await positionedClient(cluster, REPO);
      clients.push(first);
      for (const commit of ['old-1', 'old-2', 'old-3']) assert.equal(await postOnNewConnection(cluster.port, commit), 200);
      await first.waitFor((m) => m.content['commit_id'] === 'old-3', 5000);
      const { epoch } = lastPosition(first);
      assert.deepEqual(timeline(first), ['subscribed@0', 'old-1@1', 'old-2@2', 'old-3@3']);
      const pid = cluster.child.pid!;
      const workers = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').map(Number);
      assert.equal(workers.length, 2);
      process.kill(workers[0]!, 'SIGKILL');
      await cluster.waitForLog((line) => line.msg.includes('died') && line.msg.includes('starting another'), 5000);
      await cluster.waitForLog((line) => line.msg === `worker 3 listening on 127.0.0.1:${cluster.port}`, 10_000);
      // The history is the primary's: the new worker replays what came before it, as the survivor does.
      const before = cluster.logs.filter((line) => line.msg === 'websocket connected').length;
      for (let i = 0; i < 2; i++) {
        const back = await positionedClient(cluster, REPO, { epoch, offset: 1 });
        clients.push(back);
        assert.deepEqual(timeline(back), ['old-2@2', 'old-3@3', 'subscribed@3']);
      }
      const recoveredOn = cluster.logs.filter((line) => line.msg === 'websocket connected').slice(before).map((line) => line['worker']);
      assert.equal(new Set(recoveredOn).size, 2, `recovered on the survivor and the new worker: ${JSON.stringify(recoveredOn)}`);
      const subscribers: TestClient[] = [];
      for (let i = 0; i < 2; i++) {
        const client = await subscribedClient(cluster, REPO, `user${i}@example.com`);
        clients.push(client);
        subscribers.push(client);
      }
      const holders = cluster.logs.filter((line) => line.msg === 'websocket connected').slice(before + 2).map((line) => line['worker']);
      assert.equal(new Set(holders).size, 2, `connections on the survivor and the new worker: ${JSON.stringify(holders)}`);
      assert.equal(await postOnNewConnection(cluster.port, 'after'), 200);
      assert.equal(await postOnNewConnection(cluster.port, 'again'), 200);
      for (const client of subscribers) {
        await client.waitForCount(2, 5000);
        assert.deepEqual(client.messages.map((m) => m.content['commit_id']), ['after', 'again']);
      }
    } finally {
      await cluster.stop();
    }
  });
});
