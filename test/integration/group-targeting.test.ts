/**
 * folder-perm-changed for a group, end to end: the server process reads ccnet's GroupUser
 * from each supported database and delivers to the members only; a failed lookup delivers
 * to nobody while the library's other events keep flowing.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { closedLoopbackPort, seedGroups, writeSqliteGroups, type GroupMembers } from '../support/databases.js';
import { requireServiceUrl } from '../support/env.js';
import { ServerProcess, subscriberToken } from '../support/server-process.js';
import { TestClient, type Message } from '../support/test-client.js';

const REPO = '7a1e0c1a-3333-4c4c-8d8d-000000000007';
const GROUP = 7;
const groups: GroupMembers = { [GROUP]: ['alice@example.com', 'carol@example.com'], 8: ['bob@example.com'] };
const users = ['alice@example.com', 'bob@example.com', 'carol@example.com'] as const;

async function subscribeAll(server: ServerProcess): Promise<Map<string, TestClient>> {
  const clients = new Map<string, TestClient>();
  for (const user of users) {
    const client = await TestClient.connect(server.wsUrl);
    client.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, user) }]);
    await client.roundTrip();
    clients.set(user, client);
  }
  return clients;
}

/** Publishes a group permission change, then a repo-update marker, and waits for every client to see the marker. */
async function publishGroupChangeThenMarker(server: ServerProcess, clients: Map<string, TestClient>, marker: string): Promise<void> {
  assert.equal(
    await server.publish('folder-perm-changed', { repo_id: REPO, path: '/docs', type: 'group', change_event: 'add', user: '', group: GROUP, perm: 'rw' }),
    200,
  );
  assert.equal(await server.publish('repo-update', { repo_id: REPO, commit_id: marker }), 200);
  for (const client of clients.values()) {
    await client.waitFor((message) => message.type === 'repo-update' && message.content['commit_id'] === marker);
  }
}

function types(messages: Message[]): string[] {
  return messages.map((message) => message.type);
}

interface Backend {
  name: string;
  /** Skip reason, or null when the backend is available. */
  unavailable: string | null;
  /** The CCNET_DB_URL of a database seeded with `groups`; `dir` is a private temp directory. */
  prepare(dir: string): Promise<string>;
}

const mysqlUrl = requireServiceUrl('TEST_MYSQL_URL');
const postgresUrl = requireServiceUrl('TEST_POSTGRES_URL');

const backends: Backend[] = [
  {
    name: 'MariaDB',
    unavailable: mysqlUrl === undefined ? 'TEST_MYSQL_URL is not set and no MariaDB is installed' : null,
    prepare: () => seedGroups(mysqlUrl ?? '', groups, 'ccnet_targeting'),
  },
  {
    name: 'PostgreSQL',
    unavailable: postgresUrl === undefined ? 'TEST_POSTGRES_URL is not set and no PostgreSQL is installed' : null,
    prepare: () => seedGroups(postgresUrl ?? '', groups),
  },
  {
    name: 'SQLite',
    unavailable: null,
    prepare: async (dir) => {
      const path = join(dir, 'ccnet', 'GroupMgr', 'groupmgr.db');
      writeSqliteGroups(path, groups);
      return `sqlite:${path}`;
    },
  },
];

for (const backend of backends) {
  describe(`group permission events with membership from ${backend.name}`, { skip: backend.unavailable ?? false }, () => {
    let dir: string;
    let server: ServerProcess;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'notif-test-targeting-'));
      server = await ServerProcess.start({ env: { CCNET_DB_URL: await backend.prepare(dir) } });
    });
    after(async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    });

    test('reaches the members of the group and nobody else, in order with the library\'s other events', async () => {
      const clients = await subscribeAll(server);
      try {
        await publishGroupChangeThenMarker(server, clients, 'after-group-change');
        assert.deepEqual(types(clients.get('alice@example.com')!.messages), ['folder-perm-changed', 'repo-update']);
        assert.deepEqual(types(clients.get('carol@example.com')!.messages), ['folder-perm-changed', 'repo-update']);
        assert.deepEqual(types(clients.get('bob@example.com')!.messages), ['repo-update']);
        const delivered = clients.get('alice@example.com')!.messages[0]!;
        assert.equal(delivered.content['group'], GROUP);
        assert.equal(delivered.content['path'], '/docs');
      } finally {
        for (const client of clients.values()) client.close();
      }
    });
  });
}

describe('group permission events when the group database is down', () => {
  let server: ServerProcess;

  before(async () => {
    const port = await closedLoopbackPort();
    server = await ServerProcess.start({ env: { CCNET_DB_URL: `mysql://seafile:secret@127.0.0.1:${port}/ccnet_db` } });
  });
  after(() => server.stop());

  test('fail closed: nobody gets the event, the failure is logged, other events still arrive', async () => {
    const clients = await subscribeAll(server);
    try {
      await publishGroupChangeThenMarker(server, clients, 'after-failed-lookup');
      for (const client of clients.values()) assert.deepEqual(types(client.messages), ['repo-update']);
      const logged = await server.waitForLog((line) => typeof line.msg === 'string' && line.msg.startsWith('group lookup failed'));
      assert.ok(!JSON.stringify(logged).includes('secret'), 'the log line must not carry the database password');
    } finally {
      for (const client of clients.values()) client.close();
    }
  });
});
