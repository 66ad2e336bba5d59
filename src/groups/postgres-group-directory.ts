import pg from 'pg';
import type { GroupDatabaseConfig } from '../config/config.js';
import { GroupLookupError, userName, type GroupDirectory, type PoolOptions } from './group-directory.js';

export type PostgresGroupDatabase = Extract<GroupDatabaseConfig, { kind: 'postgres' }>;

// Unquoted on purpose: ccnet creates the table unquoted, so PostgreSQL folds it to `groupuser`.
const SELECT_MEMBERS = 'SELECT user_name FROM GroupUser WHERE group_id = $1';

/** Reads ccnet `GroupUser` from PostgreSQL (older Seafile deployments). */
export class PostgresGroupDirectory implements GroupDirectory {
  readonly #pool: pg.Pool;

  constructor(config: PostgresGroupDatabase, { queryTimeoutMs, connectTimeoutMs }: PoolOptions) {
    this.#pool = new pg.Pool({
      // pg takes a socket directory in `host`; the port still names the socket file.
      host: config.socketPath ?? config.host,
      port: config.port,
      user: config.user,
      password: config.password,
      database: config.database,
      // Lookups are cached and coalesced, so few connections suffice.
      max: 4,
      connectionTimeoutMillis: connectTimeoutMs,
      statement_timeout: queryTimeoutMs,
      // The server-side limit cannot fire when the server or the network hangs.
      query_timeout: queryTimeoutMs,
      application_name: 'seafile-notification-server',
      keepAlive: true,
    });
    // An idle client losing its server emits on the pool; unhandled, that would crash the process.
    this.#pool.on('error', () => {});
  }

  async members(groupId: number): Promise<ReadonlySet<string>> {
    try {
      const result = await this.#pool.query<{ user_name: unknown }>(SELECT_MEMBERS, [groupId]);
      return new Set(result.rows.map((row) => userName(row.user_name)));
    } catch (error) {
      throw new GroupLookupError(groupId, error);
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
