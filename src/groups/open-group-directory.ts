import type { GroupDatabaseConfig } from '../config/config.js';
import { CachedGroupDirectory } from './cached-group-directory.js';
import type { GroupDirectory } from './group-directory.js';
import { MysqlGroupDirectory } from './mysql-group-directory.js';
import { PostgresGroupDirectory } from './postgres-group-directory.js';
import { SqliteGroupDirectory } from './sqlite-group-directory.js';

/**
 * The configured ccnet database behind a cache; nothing is contacted until the first lookup,
 * so a database that is down at start-up delays nothing but permission events for groups.
 */
export function openGroupDirectory(config: GroupDatabaseConfig, ttlMs: number, timeoutMs: number): CachedGroupDirectory {
  return new CachedGroupDirectory(openDatabase(config, timeoutMs), { ttlMs, timeoutMs });
}

function openDatabase(config: GroupDatabaseConfig, timeoutMs: number): GroupDirectory {
  const timeouts = { queryTimeoutMs: timeoutMs, connectTimeoutMs: Math.min(3_000, timeoutMs) };
  switch (config.kind) {
    case 'mysql':
      return new MysqlGroupDirectory(config, timeouts);
    case 'postgres':
      return new PostgresGroupDirectory(config, timeouts);
    case 'sqlite':
      return new SqliteGroupDirectory(config.path);
  }
}
