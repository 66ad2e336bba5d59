import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { databaseSkipReason, seedGroups, startMariaDb, startPostgres, type ThrowawayDatabase } from '../support/databases.js';
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

/**
 * The real group databases taken away mid-test, through the server process: halted and
 * started again, frozen (SIGSTOP: connections open, nothing answers), or a table lock held
 * by another session. Permission events for a group fail closed within group_lookup_timeout,
 * everything else keeps flowing, and the lookups recover by themselves.
 */
const MEMBER = 'member@example.com';
const OUTSIDER = 'outsider@example.com';
const GROUP = 7;
const LOOKUP_TIMEOUT_S = 1;

interface DatabaseFault {
  name: string;
  skip: string | false;
  start(): Promise<ThrowawayDatabase>;
  /** Takes the database away; returns what gives it back. */
  inflict(db: ThrowawayDatabase, url: string): Promise<() => Promise<void>>;
  /** What the logged lookup failure says. */
  failure: RegExp;
}

/** Holds ACCESS EXCLUSIVE on GroupUser in a session of its own, as a migration or a stuck admin would. */
async function lockGroupUser(url: string): Promise<() => Promise<void>> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  await client.query('BEGIN');
  await client.query('LOCK TABLE GroupUser IN ACCESS EXCLUSIVE MODE');
  return async () => {
    await client.query('COMMIT');
    await client.end();
  };
}

const mariaDbSkip = databaseSkipReason('mariadb') ?? false;
const postgresSkip = databaseSkipReason('postgres') ?? false;
// The server's deadline, or the driver's own timeout at the same moment: either way bounded.
const timedOut = new RegExp(`within ${LOOKUP_TIMEOUT_S * 1000} ms|timeout`, 'i');
const refused = /ECONNREFUSED|connect|closed|terminat|shutdown|Connection lost|ECONNRESET/i;

const databaseFaults: DatabaseFault[] = [
  {
    name: 'MariaDB stopped mid-test and started again',
    skip: mariaDbSkip,
    start: startMariaDb,
    inflict: async (db) => {
      await db.halt();
      return () => db.restart();
    },
    failure: refused,
  },
  {
    name: 'MariaDB frozen (SIGSTOP) and thawed',
    skip: mariaDbSkip,
    start: startMariaDb,
    inflict: async (db) => {
      db.freeze();
      return async () => db.thaw();
    },
    failure: timedOut,
  },
  {
    name: 'PostgreSQL stopped mid-test and started again',
    skip: postgresSkip,
    start: startPostgres,
    inflict: async (db) => {
      await db.halt();
      return () => db.restart();
    },
    failure: refused,
  },
  {
    name: 'PostgreSQL hung on a table lock held by another session',
    skip: postgresSkip,
    start: startPostgres,
    inflict: (_db, url) => lockGroupUser(url),
    failure: timedOut,
  },
  {
    name: 'PostgreSQL frozen (SIGSTOP) and thawed',
    skip: postgresSkip,
    start: startPostgres,
    inflict: async (db) => {
      db.freeze();
      return async () => db.thaw();
    },
    failure: timedOut,
  },
];

for (const fault of databaseFaults) {
  describe(`group database faults, end to end: ${fault.name}`, { skip: fault.skip }, () => {
    let db: ThrowawayDatabase;
    let url: string;
    let server: ServerProcess;
    const clients: TestClient[] = [];

    before(async () => {
      db = await fault.start();
      url = await seedGroups(db.url, { [GROUP]: [MEMBER] });
      server = await ServerProcess.start({
        env: { CCNET_DB_URL: url, NOTIFICATION_SERVER_GROUP_CACHE_TTL: '0', NOTIFICATION_SERVER_GROUP_LOOKUP_TIMEOUT: String(LOOKUP_TIMEOUT_S) },
      });
    });
    after(async () => {
      for (const client of clients) client.socket.terminate();
      await server?.stop();
      await db?.stop();
    });

    /** Publishes a group permission change on GROUP_REPO, then a marker there, and waits for the marker at both clients. */
    async function groupChangeThenMarker(path: string): Promise<void> {
      assert.equal(
        await server.publish('folder-perm-changed', { repo_id: GROUP_REPO, path, type: 'group', change_event: 'add', user: '', group: GROUP, perm: 'r' }),
        200,
      );
      assert.equal(await server.publish('repo-update', { repo_id: GROUP_REPO, commit_id: `after ${path}` }), 200);
      for (const client of clients) await client.waitFor((m) => m.content['commit_id'] === `after ${path}`, 30_000);
    }
    const permissionPaths = (client: TestClient): unknown[] => client.messages.filter((m) => m.type === 'folder-perm-changed').map((m) => m.content['path']);

    it('permission events fail closed and are counted while it is away, everything else flows, and lookups recover by themselves', async () => {
      const member = await TestClient.connect(server.wsUrl);
      const outsider = await TestClient.connect(server.wsUrl);
      clients.push(member, outsider);
      member.subscribe([
        { id: GROUP_REPO, jwt_token: subscriberToken(GROUP_REPO, MEMBER) },
        { id: OTHER_REPO, jwt_token: subscriberToken(OTHER_REPO, MEMBER) },
      ]);
      outsider.subscribe([{ id: GROUP_REPO, jwt_token: subscriberToken(GROUP_REPO, OUTSIDER) }]);
      await member.roundTrip();
      await outsider.roundTrip();

      await groupChangeThenMarker('/healthy');
      assert.deepEqual(permissionPaths(member), ['/healthy']);
      const before = await scrape(server.url);

      const repair = await fault.inflict(db, url);
      try {
        assert.equal(
          await server.publish('folder-perm-changed', { repo_id: GROUP_REPO, path: '/during', type: 'group', change_event: 'add', user: '', group: GROUP, perm: 'r' }),
          200,
        );
        // Another library's event is not held up by the lookup, however it ends.
        assert.equal(await server.publish('repo-update', { repo_id: OTHER_REPO, commit_id: 'meanwhile' }), 200);
        await member.waitFor((m) => m.content['commit_id'] === 'meanwhile', 30_000);
        assert.equal(await server.publish('repo-update', { repo_id: GROUP_REPO, commit_id: 'after /during' }), 200);
        for (const client of clients) await client.waitFor((m) => m.content['commit_id'] === 'after /during', 30_000);
        assert.deepEqual(permissionPaths(member), ['/healthy'], 'the permission event reached a member while membership could not be read');

        const failed = await server.waitForLog((line) => line.msg.startsWith('group lookup failed') && line['groupId'] === GROUP);
        assert.match(JSON.stringify(failed['err']), fault.failure);
        const during = await scrapeUntil(server.url, (now) => Scrape.delta(before, now, 'notification_group_events_undelivered_total', { reason: 'lookup-failed' }) >= 1);
        assert.ok(Scrape.delta(before, during, 'notification_group_lookup_failures_total') >= 1, 'the failed query is not counted');
      } finally {
        await repair();
      }

      // Back by itself: no restart of the notification server. The first lookups may still meet
      // connections the database dropped; each later one asks it again.
      let recovered = false;
      for (let attempt = 0; attempt < 30 && !recovered; attempt++) {
        await groupChangeThenMarker(`/recovered-${attempt}`);
        recovered = permissionPaths(member).some((path) => String(path).startsWith('/recovered-'));
      }
      assert.ok(recovered, 'group lookups did not recover after the database came back');
      assert.deepEqual(permissionPaths(outsider), [], 'a permission event for the group reached a non-member');
      assert.equal(server.child.exitCode, null, 'the server exited');
    });
  });
}
