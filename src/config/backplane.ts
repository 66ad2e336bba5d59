/** The backplane: `REDIS_URL`, `seafile.conf [notification] redis_url`, or none (one node). */
import { ConfigError, DEFAULTS, type BackplaneConfig } from './config.js';
import type { KeyFile } from './keyfile.js';
import { describeSetting, fromEnv, fromFile, parseInteger, pick, type Env, type Setting } from './setting.js';

type RedisBackplaneConfig = Extract<BackplaneConfig, { kind: 'redis' }>;

export function resolveBackplane(env: Env, seafile: KeyFile | null, notification: KeyFile | null, notices: string[]): BackplaneConfig {
  const setting = pick(fromEnv(env, 'REDIS_URL'), fromFile(seafile, 'notification', 'redis_url'), fromFile(notification, 'general', 'redis_url'));
  if (setting === null) return { kind: 'memory' };
  const { url, displayUrl } = parseRedisUrl(setting);
  const timeoutSetting = pick(fromEnv(env, 'NOTIFICATION_SERVER_REDIS_TIMEOUT'), fromFile(seafile, 'notification', 'redis_timeout'));
  const timeoutMs = timeoutSetting === null ? DEFAULTS.redisTimeoutMs : parseInteger(timeoutSetting, 'redis_timeout', 1, 3600) * 1000;
  const timeoutNote = timeoutSetting === null ? '' : `, timeout ${timeoutMs / 1000} s (${timeoutSetting.source})`;
  notices.push(`Backplane: Redis at ${displayUrl} (${setting.source}${timeoutNote}); events reach every node on it.`);
  return { kind: 'redis', url, displayUrl, timeoutMs };
}

const USAGE = 'expected redis://[[user]:password@]host[:port][/db] or rediss://... for TLS';

/** Checks what ioredis would otherwise only find out at the first connection. Never echoes the password. */
export function parseRedisUrl(setting: Setting): Pick<RedisBackplaneConfig, 'url' | 'displayUrl'> {
  const text = setting.text.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`invalid Redis URL in ${describeSetting(setting)}: ${USAGE}`);
  }
  // Only the scheme of a URL that is not a Redis one: `host:password` parses as scheme and path.
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError(`invalid Redis URL in ${describeSetting(setting)}: the scheme is ${url.protocol.replace(/:$/, '')}; ${USAGE}`);
  }
  const shown = displayUrl(url);
  const invalid = (why: string): ConfigError => new ConfigError(`invalid Redis URL ${shown} in ${describeSetting(setting)}: ${why}; ${USAGE}`);
  if (url.hostname === '') throw invalid('no host');
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,5}$/.test(db)) throw invalid(`the database must be a number, not ${JSON.stringify(db)}`);
  try {
    decodeURIComponent(url.password);
    decodeURIComponent(url.username);
  } catch {
    throw invalid('the user or password is not valid percent-encoding');
  }
  return { url: text, displayUrl: shown };
}

/** Scheme, user, host, port and database: the password masked, the query (where options and secrets may hide) left out. */
function displayUrl(url: URL): string {
  const credentials = url.password !== '' ? `${url.username}:***@` : url.username !== '' ? `${url.username}@` : '';
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.protocol}//${credentials}${url.host}${path}`;
}
