/**
 * Where ccnet's GroupUser table lives: --ccnet-db / CCNET_DB_URL, Seafile 12's SEAFILE_MYSQL_DB_*
 * variables, ccnet.conf [Database], or the SQLite file beside the config dir.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';

import { ConfigError, type GroupDatabaseConfig } from './config.js';
import type { KeyFile } from './keyfile.js';
import { envText, find, read, SETTINGS, type Sources } from './settings.js';
import { decodePercent, fromFile, parseBoolean, parseInteger, type Setting } from './setting.js';

export async function resolveGroupDatabase(sources: Sources): Promise<GroupDatabaseConfig | null> {
  const { notices } = sources;
  const chosen = await chooseGroupDatabase(sources);
  if (chosen === null) {
    notices.push(
      'No group database configured: folder permission changes for a group will not be delivered. ' +
        'Set CCNET_DB_URL (or --ccnet-db, SEAFILE_MYSQL_DB_HOST, ccnet.conf [Database]).',
    );
    return null;
  }
  notices.push(`Group membership from ${describeDatabase(chosen.database)} (${chosen.source}).`);
  if (chosen.database.kind === 'sqlite' && !(await exists(chosen.database.path))) {
    notices.push(`${chosen.database.path} does not exist (yet): group lookups will fail until it does.`);
  }
  return chosen.database;
}

async function chooseGroupDatabase(sources: Sources): Promise<{ database: GroupDatabaseConfig; source: string } | null> {
  const { cwd, confDir, ccnet } = sources;
  const url = find(sources, SETTINGS.ccnet_db);
  if (url !== null) return { database: parseDatabaseUrl(url.text, url.source, cwd), source: url.source };

  const seafile12Host = find(sources, SETTINGS.seafile_mysql_db_host);
  if (seafile12Host !== null) {
    return {
      database: {
        kind: 'mysql',
        host: seafile12Host.text.trim(),
        // Seafile 12's own defaults for the rest.
        port: read(sources, SETTINGS.seafile_mysql_db_port).value,
        user: read(sources, SETTINGS.seafile_mysql_db_user).value,
        password: envText(sources.env, SETTINGS.seafile_mysql_db_password) ?? '',
        database: read(sources, SETTINGS.seafile_mysql_db_ccnet_db_name).value,
        socketPath: null,
        ssl: false,
      },
      source: 'SEAFILE_MYSQL_DB_*',
    };
  }

  if (confDir === null) return null;
  if (ccnet?.hasGroup('Database')) {
    return { database: databaseFromCcnetConf(ccnet, confDir), source: `${ccnet.fileName} [Database]` };
  }
  // SQLite deployments have no [Database]; ccnet's databases sit beside conf/.
  const sqlitePath = ccnetSqlitePath(confDir);
  if (await exists(sqlitePath)) {
    return { database: { kind: 'sqlite', path: sqlitePath }, source: 'found beside the config dir' };
  }
  return null;
}

function ccnetSqlitePath(confDir: string): string {
  return resolve(confDir, '..', 'ccnet', 'GroupMgr', 'groupmgr.db');
}

/** ccnet.conf keys are documented upper case; accept lower case too. */
function ccnetSetting(ccnet: KeyFile, key: string): Setting | null {
  return fromFile(ccnet, 'Database', [key, key.toLowerCase()]);
}

const DEFAULT_PORT = { mysql: 3306, postgres: 5432 } as const;

function databaseFromCcnetConf(ccnet: KeyFile, confDir: string): GroupDatabaseConfig {
  const engineSetting = ccnetSetting(ccnet, 'ENGINE');
  const engine = engineSetting?.text.trim().toLowerCase() ?? 'mysql';
  if (engine === 'sqlite' || engine === 'sqlite3') return { kind: 'sqlite', path: ccnetSqlitePath(confDir) };
  const kind = engine === 'mysql' ? 'mysql' : engine === 'pgsql' || engine === 'postgresql' || engine === 'postgres' ? 'postgres' : null;
  if (kind === null) {
    throw new ConfigError(`${ccnet.fileName} [Database] ENGINE = ${engineSetting?.text.trim() ?? ''} is not supported: use mysql, pgsql or sqlite`);
  }
  const required = (key: string): string => {
    const setting = ccnetSetting(ccnet, key);
    if (setting === null) throw new ConfigError(`${ccnet.fileName} [Database] ${key} is not set (needed for ENGINE = ${engine})`);
    return setting.text.trim();
  };
  const optional = (key: string): string | null => ccnetSetting(ccnet, key)?.text.trim() ?? null;
  const password = ccnetSetting(ccnet, 'PASSWD')?.text ?? '';
  const socketPath = optional('UNIX_SOCKET');
  const host = socketPath === null ? required('HOST') : (optional('HOST') ?? 'localhost');
  const portSetting = ccnetSetting(ccnet, 'PORT');
  const port = portSetting === null ? DEFAULT_PORT[kind] : parseInteger(portSetting, 'database port', 1, 65535);
  const server = { host, port, user: required('USER'), password, database: required('DB'), socketPath };
  if (kind === 'postgres') return { kind, ...server };
  const ssl = ccnetSetting(ccnet, 'USE_SSL');
  return { kind, ...server, ssl: ssl === null ? false : parseBoolean(ssl) };
}

/**
 * `mysql://user:pass@host:3306/db[?socket=/path&ssl=true]`,
 * `postgres[ql]://user:pass@host:5432/db[?host=/socket/dir]`, `sqlite:/path` or `sqlite:relative`.
 * Messages never echo the URL: it carries a password.
 */
export function parseDatabaseUrl(text: string, source: string, cwd: string): GroupDatabaseConfig {
  const trimmed = text.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(trimmed)?.[1]?.toLowerCase();
  if (scheme === 'sqlite' || scheme === 'sqlite3') {
    // sqlite:/abs, sqlite:rel and sqlite:///abs all name a path.
    const rest = trimmed.slice(scheme.length + 1).replace(/^\/\/(?=\/)/, '');
    if (rest === '' || rest.startsWith('//')) {
      throw new ConfigError(`${source}: a sqlite URL is sqlite:/absolute/path/groupmgr.db or sqlite:relative/path`);
    }
    return { kind: 'sqlite', path: resolve(cwd, rest) };
  }
  const kind = scheme === 'mysql' ? 'mysql' : scheme === 'postgres' || scheme === 'postgresql' ? 'postgres' : null;
  if (kind === null) {
    throw new ConfigError(
      `${source}: unsupported database URL scheme ${scheme === undefined ? '(none)' : `"${scheme}:"`}; use mysql://, postgres:// or sqlite:`,
    );
  }
  if (!URL.canParse(trimmed)) {
    throw new ConfigError(`${source} is not a valid URL; percent-encode special characters in the user and password (# as %23, / as %2F, @ as %40)`);
  }
  const url = new URL(trimmed);
  const decode = (part: string, what: string): string => {
    const decoded = decodePercent(part);
    if (decoded === null) throw new ConfigError(`${source}: the ${what} has a broken percent-escape`);
    return decoded;
  };
  const user = decode(url.username, 'user name');
  const password = decode(url.password, 'password');
  const database = decode(url.pathname.replace(/^\//, ''), 'database name');
  if (user === '') throw new ConfigError(`${source}: the URL has no user name (${kind}://user:password@host/database)`);
  if (database === '' || database.includes('/')) {
    throw new ConfigError(`${source}: the URL must name one database, as in ${kind}://user:password@host/ccnet_db`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
  const port = url.port === '' ? DEFAULT_PORT[kind] : Number(url.port);
  // URL accepts port 0, which no database listens on; ccnet.conf PORT refuses it too.
  if (port === 0) throw new ConfigError(`${source}: the database port must be from 1 to 65535`);

  const params = new Map(url.searchParams);
  const allowed = kind === 'mysql' ? ['socket', 'ssl'] : ['socket', 'host'];
  for (const name of params.keys()) {
    if (!allowed.includes(name)) {
      throw new ConfigError(`${source}: unknown URL parameter "${name}" (supported: ${allowed.join(', ')})`);
    }
  }
  const socketPath = (params.get('socket') ?? params.get('host')) || null;

  if (kind === 'mysql') {
    const sslText = params.get('ssl');
    const ssl = sslText === undefined ? false : parseBoolean({ text: sslText, source: `${source} ssl parameter` });
    return { kind, host, port, user, password, database, socketPath, ssl };
  }
  return { kind, host, port, user, password, database, socketPath };
}

/** `MySQL database ccnet_db at 127.0.0.1:3306 as seafile`, for messages. */
export function describeDatabase(database: GroupDatabaseConfig): string {
  if (database.kind === 'sqlite') return `SQLite ${database.path}`;
  const name = database.kind === 'mysql' ? 'MySQL' : 'PostgreSQL';
  const where = database.socketPath ?? `${database.host}:${database.port}`;
  return `${name} database ${database.database} at ${where} as ${database.user}`;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
