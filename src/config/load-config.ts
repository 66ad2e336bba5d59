/**
 * Builds the one typed Config from the command line, the environment and the
 * three generations of Seafile config files. Per setting, the first source
 * that sets it wins: flag > environment > seafile.conf [notification] >
 * notification.conf [general] > default.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, copyFile, link, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import {
  ConfigError,
  DEFAULT_LIMITS,
  DEFAULTS,
  type Config,
  type GroupDatabaseConfig,
  type Limits,
  type LogLevel,
} from './config.js';
import type { ServeFlags } from './flags.js';
import { readKeyFile, type KeyFile, type KeyFileValue } from './keyfile.js';

export interface LoadConfigInput {
  flags: ServeFlags;
  env: Readonly<Record<string, string | undefined>>;
  /** Relative paths in flags and the environment resolve against this. */
  cwd: string;
}

export interface LoadedConfig {
  config: Config;
  /** Sentences for the start-up log: sources read, generated key, degraded features. Never a secret. */
  notices: string[];
}

/** A fresh HS256 key in the format admins make with `openssl rand -base64 32`. */
export function generateKey(): string {
  return randomBytes(32).toString('base64');
}

export async function loadConfig(input: LoadConfigInput): Promise<LoadedConfig> {
  const { flags, env, cwd } = input;
  const notices: string[] = [];

  const confDir = flags.configDir === null ? null : resolve(cwd, flags.configDir);
  if (confDir !== null) await requireDirectory(confDir);
  const files = await readConfigFiles(confDir, notices);
  const { seafile, notification, ccnet } = files;

  const fromSeafile = (key: string): Setting | null => fromFile(seafile, 'notification', key);
  const fromNotification = (key: string): Setting | null => fromFile(notification, 'general', key);

  reportEnabledFlag(seafile, notices);

  const jwtEnv = env['JWT_PRIVATE_KEY'];
  const configured = confDir !== null || jwtEnv !== undefined;

  const hostSetting = pick(
    flags.host === null ? null : { text: flags.host, source: '--host' },
    fromEnv(env, 'NOTIFICATION_SERVER_HOST'),
    fromSeafile('host'),
    fromNotification('host'),
  );
  const host = hostSetting?.text.trim() ?? (configured ? DEFAULTS.configuredHost : DEFAULTS.embeddedHost);

  const portSetting = pick(
    flags.port === null ? null : { text: String(flags.port), source: '--port' },
    fromEnv(env, 'NOTIFICATION_SERVER_PORT'),
    fromSeafile('port'),
    fromNotification('port'),
  );
  const port = portSetting === null ? DEFAULTS.port : parseInteger(portSetting, 'port', 1, 65535);

  const logLevelSetting = pick(
    flags.logLevel === null ? null : { text: flags.logLevel, source: '--log-level' },
    fromEnv(env, 'NOTIFICATION_SERVER_LOG_LEVEL'),
    fromSeafile('log_level'),
    fromNotification('log_level'),
  );
  const logLevel = logLevelSetting === null ? DEFAULTS.logLevel : parseLogLevel(logLevelSetting);

  const logFile = resolveLogFile(flags, env, cwd, confDir);

  const key = await resolveJwtKey({ flags, env, cwd, confDir, seafile, notification, notices });
  const notificationToken = resolveNotificationToken(env, seafile, notification, notices);
  const groupDatabase = await resolveGroupDatabase({ flags, env, cwd, confDir, ccnet, notices });
  const tuning = resolveTuning(env, seafile);

  notices.push(
    `Settings: host ${host} (${hostSetting?.source ?? 'default'}), port ${port} (${portSetting?.source ?? 'default'}), ` +
      `log level ${logLevel} (${logLevelSetting?.source ?? 'default'}), ` +
      `log to ${logFile ?? 'stdout'}, JWT key from ${key.source}.`,
  );
  if (tuning.changed.length > 0) notices.push(`Tuning: ${tuning.changed.join(', ')}.`);

  const config: Config = {
    host,
    port,
    logLevel,
    logFile,
    jwtPrivateKey: key.key,
    jwtKeySource: key.source,
    notificationToken,
    groupDatabase,
    groupCacheTtlMs: tuning.groupCacheTtlMs,
    limits: tuning.limits,
    pingIntervalMs: tuning.pingIntervalMs,
    deadPeerMs: tuning.deadPeerMs,
    drainMs: tuning.drainMs,
  };
  return { config, notices };
}

/** A setting's text and where it came from, for messages. */
interface Setting {
  text: string;
  /** `--port`, `NOTIFICATION_SERVER_PORT`, `seafile.conf [notification] port`. */
  source: string;
  /** File and line, when it came from a file. */
  at?: string;
}

function pick(...candidates: Array<Setting | null>): Setting | null {
  return candidates.find((candidate) => candidate !== null) ?? null;
}

function describe(setting: Setting): string {
  return setting.at === undefined ? setting.source : `${setting.source}, ${setting.at}`;
}

/** An empty variable counts as unset: compose files pass through blank placeholders. */
function fromEnv(env: LoadConfigInput['env'], name: string): Setting | null {
  const text = env[name];
  if (text === undefined || text.trim() === '') return null;
  return { text, source: name };
}

/** An empty value counts as unset (the docs ship `host =`); secrets read their keys with `fileValue`. */
function fromFile(file: KeyFile | null, group: string, keys: string | readonly string[]): Setting | null {
  const found = fileValue(file, group, keys);
  return found === null || found.text.trim() === '' ? null : found;
}

function fileValue(file: KeyFile | null, group: string, keys: string | readonly string[]): Setting | null {
  const found: KeyFileValue | null = file?.lookup(group, keys) ?? null;
  if (file === null || found === null) return null;
  return { text: found.value, source: found.source, at: `${file.fileName}:${found.line}` };
}

async function requireDirectory(dir: string): Promise<void> {
  try {
    const info = await stat(dir);
    if (!info.isDirectory()) throw new ConfigError(`config directory ${dir} (-c) is not a directory`);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new ConfigError(`config directory ${dir} (-c) does not exist`);
    }
    throw new ConfigError(`cannot read config directory ${dir} (-c): ${(error as Error).message}`);
  }
}

interface ConfigFiles {
  seafile: KeyFile | null;
  notification: KeyFile | null;
  ccnet: KeyFile | null;
}

async function readConfigFiles(confDir: string | null, notices: string[]): Promise<ConfigFiles> {
  if (confDir === null) return { seafile: null, notification: null, ccnet: null };
  const [seafile, notification, ccnet] = await Promise.all([
    readKeyFile(join(confDir, 'seafile.conf')),
    readKeyFile(join(confDir, 'notification.conf')),
    readKeyFile(join(confDir, 'ccnet.conf')),
  ]);
  const read: string[] = [];
  const describeFile = (file: KeyFile | null, name: string, group: string): void => {
    if (file === null) read.push(`no ${name}`);
    else read.push(file.hasGroup(group) ? `${name} [${group}]` : `${name} (no [${group}] section)`);
  };
  describeFile(seafile, 'seafile.conf', 'notification');
  describeFile(notification, 'notification.conf', 'general');
  describeFile(ccnet, 'ccnet.conf', 'Database');
  notices.push(`Config dir ${confDir}: read ${read.join(', ')}.`);
  return { seafile, notification, ccnet };
}

function reportEnabledFlag(seafile: KeyFile | null, notices: string[]): void {
  const enabled = fromFile(seafile, 'notification', 'enabled');
  if (enabled === null) return;
  let on: boolean;
  try {
    on = parseBoolean(enabled);
  } catch {
    // Informational only: GKeyFile reads an unparsable boolean as false, so say that.
    notices.push(`${enabled.source} = ${enabled.text.trim()} is not true or false: seaf-server reads it as false and will not send events here; starting anyway.`);
    return;
  }
  if (on) return;
  notices.push(
    `${enabled.source} is ${enabled.text.trim()}: seaf-server will not send events here until it is true; starting anyway.`,
  );
}

const LOG_LEVELS: Readonly<Record<string, LogLevel>> = {
  trace: 'debug',
  debug: 'debug',
  info: 'info',
  warn: 'warn',
  warning: 'warn',
  error: 'error',
  fatal: 'error',
  panic: 'error',
};

function parseLogLevel(setting: Setting): LogLevel {
  const level = LOG_LEVELS[setting.text.trim().toLowerCase()];
  if (level === undefined) {
    throw new ConfigError(
      `invalid log level ${JSON.stringify(setting.text)} (${describe(setting)}): use debug, info, warn or error`,
    );
  }
  return level;
}

function parseInteger(setting: Setting, what: string, min: number, max: number): number {
  const text = setting.text.trim();
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= max)) {
    throw new ConfigError(
      `invalid ${what} ${JSON.stringify(setting.text)} (${describe(setting)}): expected a whole number from ${min} to ${max}`,
    );
  }
  return value;
}

/** GKeyFile and the Go reference accept different spellings; take the union, refuse the rest. */
function parseBoolean(setting: Setting): boolean {
  const text = setting.text.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(text)) return true;
  if (['false', '0', 'no', 'off'].includes(text)) return false;
  throw new ConfigError(`invalid value ${JSON.stringify(setting.text)} for ${describe(setting)}: expected true or false`);
}

function resolveLogFile(
  flags: ServeFlags,
  env: LoadConfigInput['env'],
  cwd: string,
  confDir: string | null,
): string | null {
  if (flags.logFile !== null) return flags.logFile === '-' ? null : resolve(cwd, flags.logFile);
  const toStdout = env['SEAFILE_LOG_TO_STDOUT']?.trim().toLowerCase();
  if (toStdout === 'true' || toStdout === '1' || toStdout === 'yes') return null;
  // Like the stock server started with -c: a log file beside the config.
  return confDir === null ? null : join(confDir, 'notification-server.log');
}

// ---------------------------------------------------------------- JWT key

interface ResolvedKey {
  key: string;
  source: string;
}

const MISSING_KEY_MESSAGE =
  'JWT_PRIVATE_KEY is not set: set it (or jwt_private_key in seafile.conf [notification]) to the key seaf-server uses; ' +
  'generate one with `notification-server keygen`';

async function resolveJwtKey(input: {
  flags: ServeFlags;
  env: LoadConfigInput['env'];
  cwd: string;
  confDir: string | null;
  seafile: KeyFile | null;
  notification: KeyFile | null;
  notices: string[];
}): Promise<ResolvedKey> {
  const { flags, env, cwd, confDir, seafile, notification, notices } = input;
  const envKey = env['JWT_PRIVATE_KEY'];
  const candidates = [
    envKey === undefined ? null : { text: envKey, source: 'JWT_PRIVATE_KEY' },
    fileValue(seafile, 'notification', 'jwt_private_key'),
    // Seafile 10.0 seaf-server signs subscriber tokens with this one, not with notification.conf's.
    fileValue(seafile, 'notification', 'private_key'),
    fileValue(notification, 'general', 'private_key'),
  ].filter((candidate): candidate is Setting => candidate !== null);

  const chosen = candidates[0];
  if (chosen !== undefined) {
    if (chosen.text.trim() === '') {
      throw new ConfigError(
        `${describe(chosen)} is empty: set it to the key seaf-server uses; generate one with \`notification-server keygen\``,
      );
    }
    for (const other of candidates.slice(1)) {
      if (other.text === chosen.text || other.text.trim() === '') continue;
      notices.push(
        `${other.source} differs from ${chosen.source}, which is used: seaf-server and seahub must sign with the key this server checks.` +
          (hasStrayQuote(other.text) ? ` (${other.source} has an unmatched quote, which is part of its value.)` : ''),
      );
    }
    if (hasStrayQuote(chosen.text)) {
      notices.push(
        `The key from ${chosen.source} starts or ends with a lone double quote; it is used with the quote, as seaf-server would. Remove it if it is not part of the key.`,
      );
    }
    return { key: chosen.text, source: chosen.source };
  }

  if (confDir !== null) throw new ConfigError(MISSING_KEY_MESSAGE);

  // Nothing configured at all: run out of the box with a key kept in the state dir.
  const stateDirText = flags.stateDir ?? nonBlank(env['NOTIFICATION_SERVER_STATE_DIR']) ?? '.notification-server';
  const stateDir = resolve(cwd, stateDirText);
  return loadOrCreateEmbeddedKey(stateDir, notices);
}

function nonBlank(text: string | undefined): string | null {
  return text === undefined || text.trim() === '' ? null : text;
}

function hasStrayQuote(text: string): boolean {
  return text.startsWith('"') !== (text.endsWith('"') && text.length > 1);
}

const KEY_FILE_NAME = 'jwt_private_key';

async function loadOrCreateEmbeddedKey(stateDir: string, notices: string[]): Promise<ResolvedKey> {
  const path = join(stateDir, KEY_FILE_NAME);
  const existing = await readExistingKey(path, notices);
  if (existing !== null) {
    notices.push(
      `Using the JWT key in ${path} (no JWT_PRIVATE_KEY and no config dir given); give seaf-server and seahub the same key. ${HOW_TO_SHARE_KEY}`,
    );
    return { key: existing, source: path };
  }

  try {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new ConfigError(
      `cannot create the state dir ${stateDir} for a generated JWT key: ${(error as Error).message}; ` +
        'choose another with --state-dir, or set JWT_PRIVATE_KEY',
    );
  }
  const key = generateKey();
  const winner = await saveKeyOnce(path, key);
  if (winner !== key) {
    // Another process started at the same moment and saved its key first.
    notices.push(`Using the JWT key in ${path}, generated by a concurrent start. ${HOW_TO_SHARE_KEY}`);
    return { key: winner, source: path };
  }
  notices.push(
    `No JWT key configured (no JWT_PRIVATE_KEY and no config dir given): generated one and saved it to ${path} (mode 0600). ` +
      `Give seaf-server and seahub the same key. ${HOW_TO_SHARE_KEY}`,
  );
  return { key, source: path };
}

const HOW_TO_SHARE_KEY =
  'Seafile 12: set JWT_PRIVATE_KEY=<the contents of that file> in the environment of seafile and seahub; ' +
  'Seafile 11: set jwt_private_key = <the same> in seafile.conf [notification].';

/** The saved key, or null when there is none (missing or empty file). */
async function readExistingKey(path: string, notices: string[]): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw new ConfigError(`cannot read the saved JWT key ${path}: ${(error as Error).message}`);
  }
  const key = text.trim();
  if (key === '') return null;
  if (process.platform !== 'win32') {
    const mode = (await stat(path)).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      notices.push(`${path} is readable by other users (mode 0${mode.toString(8)}): run chmod 600 ${path}.`);
    }
  }
  return key;
}

/**
 * Saves `key` unless a key is already there, and returns the key that is
 * there afterwards. The full file appears at once (link of a finished temp
 * file), so a concurrent start never reads half a key.
 */
async function saveKeyOnce(path: string, key: string): Promise<string> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, `${key}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(temp, 0o600);
    try {
      await link(temp, path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        const current = (await readFile(path, 'utf8')).trim();
        if (current !== '') return current;
        // An empty leftover holds no key anyone could use: replace it.
        await rename(temp, path);
        return key;
      }
      // Some filesystems (FUSE mounts, SMB) have no hard links.
      await copyFile(temp, path, fsConstants.COPYFILE_EXCL);
      await chmod(path, 0o600);
    }
    return key;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(
      `cannot save the generated JWT key to ${path}: ${(error as Error).message}; choose another --state-dir, or set JWT_PRIVATE_KEY`,
    );
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

// ---------------------------------------------------------- publisher token

function resolveNotificationToken(
  env: LoadConfigInput['env'],
  seafile: KeyFile | null,
  notification: KeyFile | null,
  notices: string[],
): string | null {
  // An empty token must never match an absent header, so blank counts as unset.
  const candidates = [
    fromEnv(env, 'NOTIFICATION_TOKEN'),
    // What Seafile 10.0 seaf-server actually sends.
    fromFile(seafile, 'notification', 'notification_token'),
    fromFile(notification, 'general', 'notification_token'),
  ].filter((candidate): candidate is Setting => candidate !== null);
  const chosen = candidates[0];
  if (chosen === undefined) return null;
  for (const other of candidates.slice(1)) {
    if (other.text !== chosen.text) {
      notices.push(`${other.source} differs from ${chosen.source}, which is used for Seafile 10.0 publishers.`);
    }
  }
  notices.push(`Seafile 10.0 publishers may authenticate with the static token from ${chosen.source}.`);
  return chosen.text;
}

// ----------------------------------------------------------- group database

async function resolveGroupDatabase(input: {
  flags: ServeFlags;
  env: LoadConfigInput['env'];
  cwd: string;
  confDir: string | null;
  ccnet: KeyFile | null;
  notices: string[];
}): Promise<GroupDatabaseConfig | null> {
  const { flags, env, cwd, confDir, ccnet, notices } = input;
  const chosen = await chooseGroupDatabase(flags, env, cwd, confDir, ccnet);
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

async function chooseGroupDatabase(
  flags: ServeFlags,
  env: LoadConfigInput['env'],
  cwd: string,
  confDir: string | null,
  ccnet: KeyFile | null,
): Promise<{ database: GroupDatabaseConfig; source: string } | null> {
  const url = pick(
    flags.ccnetDb === null ? null : { text: flags.ccnetDb, source: '--ccnet-db' },
    fromEnv(env, 'CCNET_DB_URL'),
  );
  if (url !== null) return { database: parseDatabaseUrl(url.text, url.source, cwd), source: url.source };

  const seafile12Host = fromEnv(env, 'SEAFILE_MYSQL_DB_HOST');
  if (seafile12Host !== null) {
    const portSetting = fromEnv(env, 'SEAFILE_MYSQL_DB_PORT');
    return {
      database: {
        kind: 'mysql',
        host: seafile12Host.text.trim(),
        port: portSetting === null ? 3306 : parseInteger(portSetting, 'database port', 1, 65535),
        // Seafile 12's own defaults for the rest.
        user: nonBlank(env['SEAFILE_MYSQL_DB_USER']) ?? 'seafile',
        password: env['SEAFILE_MYSQL_DB_PASSWORD'] ?? '',
        database: nonBlank(env['SEAFILE_MYSQL_DB_CCNET_DB_NAME']) ?? 'ccnet_db',
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

function databaseFromCcnetConf(ccnet: KeyFile, confDir: string): GroupDatabaseConfig {
  const engineSetting = ccnetSetting(ccnet, 'ENGINE');
  const engine = engineSetting?.text.trim().toLowerCase() ?? 'mysql';
  const required = (key: string): string => {
    const setting = ccnetSetting(ccnet, key);
    if (setting === null) {
      throw new ConfigError(`${ccnet.fileName} [Database] ${key} is not set (needed for ENGINE = ${engine})`);
    }
    return setting.text.trim();
  };
  const optional = (key: string): string | null => ccnetSetting(ccnet, key)?.text.trim() ?? null;
  const portOr = (fallback: number): number => {
    const setting = ccnetSetting(ccnet, 'PORT');
    return setting === null ? fallback : parseInteger(setting, 'database port', 1, 65535);
  };
  const password = ccnetSetting(ccnet, 'PASSWD')?.text ?? '';

  switch (engine) {
    case 'mysql': {
      const socketPath = optional('UNIX_SOCKET');
      const ssl = ccnetSetting(ccnet, 'USE_SSL');
      return {
        kind: 'mysql',
        host: socketPath === null ? required('HOST') : (optional('HOST') ?? 'localhost'),
        port: portOr(3306),
        user: required('USER'),
        password,
        database: required('DB'),
        socketPath,
        ssl: ssl === null ? false : parseBoolean(ssl),
      };
    }
    case 'pgsql':
    case 'postgresql':
    case 'postgres': {
      const socketPath = optional('UNIX_SOCKET');
      return {
        kind: 'postgres',
        host: socketPath === null ? required('HOST') : (optional('HOST') ?? 'localhost'),
        port: portOr(5432),
        user: required('USER'),
        password,
        database: required('DB'),
        socketPath,
      };
    }
    case 'sqlite':
    case 'sqlite3':
      return { kind: 'sqlite', path: ccnetSqlitePath(confDir) };
    default:
      throw new ConfigError(
        `${ccnet.fileName} [Database] ENGINE = ${engineSetting?.text.trim() ?? ''} is not supported: use mysql, pgsql or sqlite`,
      );
  }
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
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw new ConfigError(
      `${source} is not a valid URL; percent-encode special characters in the user and password (# as %23, / as %2F, @ as %40)`,
    );
  }
  const decode = (part: string, what: string): string => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new ConfigError(`${source}: the ${what} has a broken percent-escape`);
    }
  };
  const user = decode(url.username, 'user name');
  const password = decode(url.password, 'password');
  const database = decode(url.pathname.replace(/^\//, ''), 'database name');
  if (user === '') throw new ConfigError(`${source}: the URL has no user name (${kind}://user:password@host/database)`);
  if (database === '' || database.includes('/')) {
    throw new ConfigError(`${source}: the URL must name one database, as in ${kind}://user:password@host/ccnet_db`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
  const port = url.port === '' ? (kind === 'mysql' ? 3306 : 5432) : Number(url.port);

  const params = new Map<string, string>();
  for (const [name, value] of url.searchParams) params.set(name, value);
  const allowed = kind === 'mysql' ? ['socket', 'ssl'] : ['socket', 'host'];
  for (const name of params.keys()) {
    if (!allowed.includes(name)) {
      throw new ConfigError(`${source}: unknown URL parameter "${name}" (supported: ${allowed.join(', ')})`);
    }
  }
  const socketParam = params.get('socket') ?? params.get('host') ?? null;
  const socketPath = socketParam === null || socketParam === '' ? null : socketParam;

  if (kind === 'mysql') {
    const sslText = params.get('ssl');
    const ssl = sslText === undefined ? false : parseBoolean({ text: sslText, source: `${source} ssl parameter` });
    return { kind, host, port, user, password, database, socketPath, ssl };
  }
  return { kind, host, port, user, password, database, socketPath };
}

function describeDatabase(database: GroupDatabaseConfig): string {
  switch (database.kind) {
    case 'sqlite':
      return `SQLite ${database.path}`;
    case 'mysql':
    case 'postgres': {
      const name = database.kind === 'mysql' ? 'MySQL' : 'PostgreSQL';
      const where = database.socketPath ?? `${database.host}:${database.port}`;
      return `${name} database ${database.database} at ${where} as ${database.user}`;
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ tuning

interface Tuning {
  pingIntervalMs: number;
  deadPeerMs: number;
  drainMs: number;
  groupCacheTtlMs: number;
  limits: Limits;
  /** `name value (source)` for each setting not at its default. */
  changed: string[];
}

// Node clamps longer timers to 1 ms, which would turn a huge interval into a busy loop.
const MAX_TIMER_SECONDS = Math.floor(2_147_483_647 / 1000);
const MAX_BYTES = 2 ** 31 - 1;

function resolveTuning(env: LoadConfigInput['env'], seafile: KeyFile | null): Tuning {
  const changed: string[] = [];
  const read = (name: string, fallback: number, min: number, max: number, unit: string): { value: number; setting: Setting | null } => {
    const envName = `NOTIFICATION_SERVER_${name.toUpperCase()}`;
    const setting = pick(fromEnv(env, envName), fromFile(seafile, 'notification', name));
    if (setting === null) return { value: fallback, setting: null };
    const value = parseInteger(setting, name, min, max);
    changed.push(`${name} ${value}${unit} (${setting.source})`);
    return { value, setting };
  };
  const seconds = (name: string, defaultMs: number, min: number): { value: number; setting: Setting | null } => {
    const found = read(name, defaultMs / 1000, min, MAX_TIMER_SECONDS, ' s');
    return { value: found.value * 1000, setting: found.setting };
  };
  const bytes = (name: string, fallback: number): number => read(name, fallback, 1, MAX_BYTES, ' bytes').value;

  const ping = seconds('ping_interval', DEFAULTS.pingIntervalMs, 1);
  const deadPeer = seconds('dead_peer_timeout', DEFAULTS.deadPeerMs, 1);
  // 0 is meaningful for these two: close at once, and do not cache.
  const drain = seconds('drain_seconds', DEFAULTS.drainMs, 0);
  const groupCache = seconds('group_cache_ttl', DEFAULTS.groupCacheTtlMs, 0);
  if (deadPeer.value <= ping.value) {
    const from = (found: { setting: Setting | null }): string =>
      found.setting === null ? 'default' : describe(found.setting);
    throw new ConfigError(
      `dead_peer_timeout (${deadPeer.value / 1000} s, ${from(deadPeer)}) must be longer than ` +
        `ping_interval (${ping.value / 1000} s, ${from(ping)}), or every client is dropped before its pong can arrive`,
    );
  }
  const limits: Limits = {
    maxFrameBytes: bytes('max_frame_bytes', DEFAULT_LIMITS.maxFrameBytes),
    maxEventBodyBytes: bytes('max_event_bytes', DEFAULT_LIMITS.maxEventBodyBytes),
    sendQueueBytes: bytes('send_queue_bytes', DEFAULT_LIMITS.sendQueueBytes),
  };
  return {
    pingIntervalMs: ping.value,
    deadPeerMs: deadPeer.value,
    drainMs: drain.value,
    groupCacheTtlMs: groupCache.value,
    limits,
    changed,
  };
}
