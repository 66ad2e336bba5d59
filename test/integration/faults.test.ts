import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { scrape, scrapeUntil, Scrape } from '../support/prometheus-text.js';
import { ServerProcess, subscriberToken } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';

const GROUP_REPO = 'fa017000-0000-4000-8000-000000000001';
const OTHER_REPO = 'fa017000-0000-4000-8000-000000000002';

describe('a group database that accepts connections but never answers', () => {
  let server: ServerProcess;
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  before(async () => {
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    server = await ServerProcess.start({
      env: { CCNET_DB_URL: `mysql://seafile:secret@127.0.0.1:${port}/ccnet_db`, NOTIFICATION_SERVER_GROUP_CACHE_TTL: '0' },
    });
  });
  after(async () => {
    await server.stop();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('does not hold up other libraries\' events while the lookup hangs, then fails closed and counts it', async () => {
    const member = await TestClient.connect(server.wsUrl);
    member.subscribe([
      { id: GROUP_REPO, jwt_token: subscriberToken(GROUP_REPO, 'member@example.com') },
      { id: OTHER_REPO, jwt_token: subscriberToken(OTHER_REPO, 'member@example.com') },
    ]);
    await member.roundTrip();
    try {
      const before = await scrape(server.url);
      assert.equal(
        await server.publish('folder-perm-changed', { repo_id: GROUP_REPO, path: '/p', type: 'group', change_event: 'add', user: '', group: 7, perm: 'r' }),
        200,
      );
      assert.equal(await server.publish('repo-update', { repo_id: OTHER_REPO, commit_id: 'meanwhile' }), 200);
      await member.waitFor((m) => m.content['commit_id'] === 'meanwhile', 30_000);
      // The other library's event arrived while the group lookup was still waiting on the database.
      const during = await scrape(server.url);
      assert.equal(Scrape.delta(before, during, 'notification_group_events_undelivered_total', { reason: 'lookup-failed' }), 0);

      await scrapeUntil(server.url, (now) => Scrape.delta(before, now, 'notification_group_events_undelivered_total', { reason: 'lookup-failed' }) === 1, 30_000);
      assert.equal(await server.publish('repo-update', { repo_id: GROUP_REPO, commit_id: 'after' }), 200);
      await member.waitFor((m) => m.content['commit_id'] === 'after', 10_000);
      assert.deepEqual(member.messages.map((m) => m.type), ['repo-update', 'repo-update'], 'the group event must reach nobody');
    } finally {
      member.close();
    }
  });
});
