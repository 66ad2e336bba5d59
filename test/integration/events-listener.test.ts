/** events_listen: publishers on an internal listener, nothing to publish on the public port. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { freePort, publisherToken, ServerProcess, subscriberToken } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';

const REPO = '5e1e0c1a-6666-4b4b-9c9c-000000000001';

function post(target: { port: number } | { socketPath: string }, commit: string, path = '/events'): Promise<number> {
  const body = JSON.stringify({ type: 'repo-update', content: { repo_id: REPO, commit_id: commit } });
  return new Promise((resolve, reject) => {
    const req = request(
      { ...target, host: '127.0.0.1', method: 'POST', path, headers: { authorization: `Token ${publisherToken()}` } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('events_listen', () => {
  const servers: ServerProcess[] = [];
  let dir: string | undefined;
  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  async function subscribed(server: ServerProcess): Promise<TestClient> {
    const client = await TestClient.connect(server.wsUrl);
    client.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, 'alice@example.com') }]);
    await client.roundTrip();
    return client;
  }

  it('on a TCP address: /events and /notification/events are answered there and 404 on the public port, which still serves clients', async () => {
    const internal = await freePort();
    const server = await ServerProcess.start({ env: { NOTIFICATION_SERVER_EVENTS_LISTEN: `127.0.0.1:${internal}` } });
    servers.push(server);
    const client = await subscribed(server);
    assert.equal(await post({ port: server.port }, 'public'), 404);
    assert.equal(await post({ port: server.port }, 'public, prefixed', '/notification/events'), 404);
    assert.equal(await post({ port: internal }, 'internal'), 200);
    // seaf-server may be given the public URL's shape (Seafile 13's cluster template): the listener takes both.
    assert.equal(await post({ port: internal }, 'internal, prefixed', '/notification/events'), 200);
    await client.waitFor((m) => m.content['commit_id'] === 'internal, prefixed');
    assert.deepEqual(client.messages.map((m) => m.content['commit_id']), ['internal', 'internal, prefixed']);
    assert.equal((await fetch(`http://127.0.0.1:${internal}/ping`)).status, 404, 'the internal listener serves /events only');
    client.close();
  });

  it('on a Unix socket, replacing a stale socket file', async () => {
    dir = await mkdtemp(join(tmpdir(), 'notif-test-events-'));
    const socketPath = join(dir, 'events.sock');
    const first = await ServerProcess.start({ env: { NOTIFICATION_SERVER_EVENTS_LISTEN: socketPath } });
    await first.stop('SIGKILL');
    const server = await ServerProcess.start({ env: { NOTIFICATION_SERVER_EVENTS_LISTEN: socketPath } });
    servers.push(server);
    const client = await subscribed(server);
    assert.equal(await post({ socketPath }, 'over-the-socket'), 200);
    await client.waitFor((m) => m.content['commit_id'] === 'over-the-socket');
    client.close();
  });

  it('a malformed value stops the start with a message naming the setting', async () => {
    const server = await ServerProcess.start({ env: { NOTIFICATION_SERVER_EVENTS_LISTEN: 'localhost' }, waitUntilListening: false });
    const { code } = await server.exited;
    assert.equal(code, 2);
    assert.match(server.stderr + JSON.stringify(server.logs), /invalid events_listen "localhost" \(NOTIFICATION_SERVER_EVENTS_LISTEN\)/);
  });
});
