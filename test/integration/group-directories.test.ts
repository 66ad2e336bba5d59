import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { GroupLookupError, type GroupDirectory } from '../../src/groups/group-directory.js';
import { MysqlGroupDirectory, type MysqlGroupDatabase } from '../../src/groups/mysql-group-directory.js';
import { openGroupDirectory } from '../../src/groups/open-group-directory.js';
import { PostgresGroupDirectory, type PostgresGroupDatabase } from '../../src/groups/postgres-group-directory.js';
import { SqliteGroupDirectory } from '../../src/groups/sqlite-group-directory.js';
import { closedLoopbackPort, groupDatabaseFromUrl, seedGroups, writeSqliteGroups } from '../support/databases.js';
import { requireServiceUrl } from '../support/env.js';

const groups = {
  7: ['alice@example.com', 'bob@example.com', 'zoë@example.com'],
  8: ['carol@example.com'],
  9: [],
};
const groupSeven = new Set(groups[7]);
// Short limits so the failure tests finish fast; the defaults are seconds.
const fastFailure = { connectTimeoutMs: 1_000, queryTimeoutMs: 1_000 };

function isLookupErrorFor(groupId: number) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof GroupLookupError, `expected a GroupLookupError, got ${String(error)}`);
    assert.equal(error.groupId, groupId);
    return true;
  };
}

/** Runs `body` and fails if it takes longer than `limitMs`: a lookup must never hang. */
async function within<T>(limitMs: number, body: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await body();
  const elapsed = performance.now() - started;
  assert.ok(elapsed < limitMs, `took ${Math.round(elapsed)} ms, limit ${limitMs} ms`);
  return result;
}

/** A TCP relay in front of a database, which a test can cut to simulate the database going away. */
class Relay {
  readonly #sockets = new Set<Socket>();
  readonly #upstreams = new Set<Socket>();
  #server: Server | null = null;
  port = 0;

  constructor(
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  async open(): Promise<void> {
    const server = createServer((client) => {
      const upstream = createConnection(this.targetPort, this.targetHost);
      this.#upstreams.add(upstream);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on('error', () => {});
        socket.on('close', () => {
          this.#sockets.delete(socket);
          this.#upstreams.delete(upstream);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    const address = server.address();
    this.port = typeof address === 'object' && address !== null ? address.port : 0;
    this.#server = server;
  }

  /** Open connections stay up but the database's answers stop arriving: the database "hangs". */
  freeze(): void {
    for (const upstream of this.#upstreams) upstream.pause();
  }

  /** Drops every connection and stops listening: the database "is down". */
  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    for (const socket of this.#sockets) socket.destroy();
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A server that accepts connections and never says a word, like a database stuck on a full disk. */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : 0,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface SqlServerCase {
  name: string;
  envName: 'TEST_MYSQL_URL' | 'TEST_POSTGRES_URL';
  skipReason: string;
  seededConfig(url: string): Promise<MysqlGroupDatabase | PostgresGroupDatabase>;
  open(config: MysqlGroupDatabase | PostgresGroupDatabase): GroupDirectory;
}

const sqlServers: SqlServerCase[] = [
  {
    name: 'MariaDB',
    envName: 'TEST_MYSQL_URL',
    skipReason: 'TEST_MYSQL_URL is not set and no MariaDB is installed (apt-get install mariadb-server)',
    seededConfig: async (url) => {
      const config = groupDatabaseFromUrl(await seedGroups(url, groups));
      assert.equal(config.kind, 'mysql');
      return config;
    },
    open: (config) => new MysqlGroupDirectory(config as MysqlGroupDatabase, fastFailure),
  },
  {
    name: 'PostgreSQL',
    envName: 'TEST_POSTGRES_URL',
    skipReason: 'TEST_POSTGRES_URL is not set and no PostgreSQL is installed (apt-get install postgresql)',
    seededConfig: async (url) => {
      const config = groupDatabaseFromUrl(await seedGroups(url, groups));
      assert.equal(config.kind, 'postgres');
      return config;
    },
    open: (config) => new PostgresGroupDirectory(config as PostgresGroupDatabase, fastFailure),
  },
];

for (const server of sqlServers) {
  const url = requireServiceUrl(server.envName);
  describe(`group membership from ${server.name}`, { skip: url === undefined ? server.skipReason : false }, () => {
    let config: MysqlGroupDatabase | PostgresGroupDatabase;
    let directory: GroupDirectory;

    before(async () => {
      config = await server.seededConfig(url ?? '');
      directory = server.open(config);
    });
    after(() => directory.close());

    const database = server.name === 'MariaDB' ? 'MariaDB ccnet_db' : 'PostgreSQL';
    test(`members of group 7 are read from ${database}`, async () => {
      assert.deepEqual(await directory.members(7), groupSeven);
      assert.deepEqual(await directory.members(8), new Set(['carol@example.com']));
    });

    test(`a group without members in ${server.name} has an empty member list`, async () => {
      assert.deepEqual(await directory.members(9), new Set());
      assert.deepEqual(await directory.members(123_456), new Set(), 'an unknown group has no members either');
    });

    test(`the configured ${server.name} is used through openGroupDirectory`, async () => {
      const opened = openGroupDirectory(config, 10_000, 5_000);
      try {
        assert.deepEqual(await opened.members(7), groupSeven);
      } finally {
        await opened.close();
      }
    });

    test(`a ${server.name} that is not listening fails the lookup with GroupLookupError`, async () => {
      const unreachable = server.open({ ...config, port: await closedLoopbackPort() });
      try {
        await within(5_000, () => assert.rejects(unreachable.members(7), isLookupErrorFor(7)));
      } finally {
        await unreachable.close();
      }
    });

    test(`a ${server.name} that accepts connections but never answers fails the lookup within the timeout`, async () => {
      const silent = await silentServer();
      const hung = server.open({ ...config, port: silent.port });
      try {
        await within(5_000, () => assert.rejects(hung.members(7), isLookupErrorFor(7)));
      } finally {
        await hung.close();
        await silent.close();
      }
    });

    test(`a ${server.name} that stops answering on an open connection fails the lookup within the query timeout`, async () => {
      const relay = new Relay(config.host, config.port);
      await relay.open();
      const viaRelay = server.open({ ...config, host: '127.0.0.1', port: relay.port });
      try {
        assert.deepEqual(await viaRelay.members(7), groupSeven);

        relay.freeze();
        await within(5_000, () => assert.rejects(viaRelay.members(7), isLookupErrorFor(7)));
      } finally {
        await relay.cut();
        await within(5_000, () => viaRelay.close());
      }
    });

    test(`when ${server.name} goes away lookups fail with GroupLookupError, and work again once it is back`, async () => {
      const relay = new Relay(config.host, config.port);
      await relay.open();
      const viaRelay = server.open({ ...config, host: '127.0.0.1', port: relay.port });
      try {
        assert.deepEqual(await viaRelay.members(7), groupSeven);

        await relay.cut();
        await within(5_000, () => assert.rejects(viaRelay.members(7), isLookupErrorFor(7)));

        await relay.open();
        assert.deepEqual(await viaRelay.members(7), groupSeven);
      } finally {
        await viaRelay.close();
        await relay.cut();
      }
    });
  });
}

describe('group membership from SQLite (ccnet/GroupMgr/groupmgr.db)', () => {
  let topDir: string;
  let path: string;

  before(async () => {
    topDir = await mkdtemp(join(tmpdir(), 'notif-test-sqlite-'));
    path = join(topDir, 'ccnet', 'GroupMgr', 'groupmgr.db');
    writeSqliteGroups(path, groups);
  });
  after(() => rm(topDir, { recursive: true, force: true }));

  test('members of group 7 are read from groupmgr.db', async () => {
    const directory = openGroupDirectory({ kind: 'sqlite', path }, 10_000, 5_000);
    try {
      assert.deepEqual(await directory.members(7), groupSeven);
      assert.deepEqual(await directory.members(8), new Set(['carol@example.com']));
    } finally {
      await directory.close();
    }
  });

  test('a group without members in groupmgr.db has an empty member list', async () => {
    const directory = new SqliteGroupDirectory(path);
    try {
      assert.deepEqual(await directory.members(9), new Set());
    } finally {
      await directory.close();
    }
  });

  test('a member added by seaf-server shows up in the next lookup', async () => {
    const directory = new SqliteGroupDirectory(path);
    try {
      assert.deepEqual(await directory.members(8), new Set(['carol@example.com']));
      writeSqliteGroups(path, { 8: ['carol@example.com', 'dave@example.com'] });
      assert.deepEqual(await directory.members(8), new Set(['carol@example.com', 'dave@example.com']));
    } finally {
      writeSqliteGroups(path, { 8: groups[8] });
      await directory.close();
    }
  });

  test('a groupmgr.db locked by a writer for longer than the busy timeout fails the lookup with GroupLookupError', async () => {
    const directory = new SqliteGroupDirectory(path, { busyTimeoutMs: 100 });
    const writer = new Database(path);
    try {
      writer.exec('BEGIN EXCLUSIVE');
      await within(5_000, () => assert.rejects(directory.members(7), isLookupErrorFor(7)));
      writer.exec('COMMIT');
      assert.deepEqual(await directory.members(7), groupSeven, 'the lookup works once the writer is done');
    } finally {
      writer.close();
      await directory.close();
    }
  });

  test('a missing groupmgr.db fails lookups with an error naming the file, and works once seaf-server creates it', async () => {
    const later = join(topDir, 'later', 'ccnet', 'GroupMgr', 'groupmgr.db');
    const directory = openGroupDirectory({ kind: 'sqlite', path: later }, 10_000, 5_000);
    try {
      await assert.rejects(
        directory.members(7),
        (error: unknown) => error instanceof GroupLookupError && error.message.includes(later),
      );
      writeSqliteGroups(later, groups);
      assert.deepEqual(await directory.members(7), groupSeven);
    } finally {
      await directory.close();
    }
  });

  test('a file that is not a ccnet group database fails lookups with an error naming the file and the table', async () => {
    const other = join(topDir, 'other.db');
    new Database(other).exec('CREATE TABLE Unrelated (x INTEGER)').close();
    const directory = new SqliteGroupDirectory(other);
    try {
      await assert.rejects(
        directory.members(7),
        (error: unknown) =>
          error instanceof GroupLookupError && error.message.includes(other) && /no such table: GroupUser/.test(error.message),
      );
    } finally {
      await directory.close();
    }
  });
});
