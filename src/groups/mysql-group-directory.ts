import { createPool, type Pool, type RowDataPacket } from 'mysql2/promise';
import type { GroupDatabaseConfig } from '../config/config.js';
import { GroupLookupError, userName, type GroupDirectory, type PoolOptions } from './group-directory.js';

export type MysqlGroupDatabase = Extract<GroupDatabaseConfig, { kind: 'mysql' }>;

const SELECT_MEMBERS = 'SELECT user_name FROM GroupUser WHERE group_id = ?';

/** Reads ccnet `GroupUser` from MySQL / MariaDB (`ccnet_db`). */
export class MysqlGroupDirectory implements GroupDirectory {
  readonly #pool: Pool;
  readonly #queryTimeoutMs: number;

  constructor(config: MysqlGroupDatabase, options: PoolOptions) {
    this.#queryTimeoutMs = options.queryTimeoutMs;
    this.#pool = createPool({
      ...(config.socketPath !== null ? { socketPath: config.socketPath } : { host: config.host, port: config.port }),
      user: config.user,
      password: config.password,
      database: config.database,
      // Verifies the server certificate; an unverified TLS link would be no better than none.
      ...(config.ssl ? { ssl: {} } : {}),
      charset: 'utf8mb4',
      // Lookups are cached and coalesced, so few connections suffice.
      connectionLimit: 4,
      connectTimeout: options.connectTimeoutMs,
      enableKeepAlive: true,
    });
  }

  async members(groupId: number): Promise<ReadonlySet<string>> {
    try {
      const [rows] = await this.#pool.query<RowDataPacket[]>({ sql: SELECT_MEMBERS, timeout: this.#queryTimeoutMs }, [groupId]);
      return new Set(rows.map((row) => userName(row['user_name'])));
    } catch (error) {
      throw new GroupLookupError(groupId, error);
    }
  }

  async close(): Promise<void> {
    try {
      await this.#pool.end();
    } catch (error) {
      // A connection the database already dropped needs no closing; shutdown must not fail on it.
      if (!isConnectionLost(error)) throw error;
    }
  }
}

function isConnectionLost(error: unknown): boolean {
  return error instanceof Error && 'code' in error && error.code === 'PROTOCOL_CONNECTION_LOST';
}
