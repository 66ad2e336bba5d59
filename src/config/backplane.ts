/** The backplane: `REDIS_URL`, `seafile.conf [notification] redis_url`, or none (one node). */
import { ConfigError, type BackplaneConfig, type RedisAddress, type RedisConnection } from './config.js';
import { decodePercent, describeSetting, type Setting } from './setting.js';
import { find, read, SETTINGS, type Sources } from './settings.js';

export function resolveBackplane(sources: Sources): BackplaneConfig {
  const setting = find(sources, SETTINGS.redis_url);
  if (setting === null) return { kind: 'memory' };
  const { connection, displayUrl } = parseRedisUrl(setting);
  const { value: timeoutMs, setting: timeoutSetting } = read(sources, SETTINGS.redis_timeout);
  const hold = read(sources, SETTINGS.redis_failover_hold);
  // One Redis that is away is usually down for longer than anyone would hold events for: deliver them here at once.
  const holdMs = hold.setting === null && connection.kind === 'single' ? 0 : hold.value;
  const holdBytes = read(sources, SETTINGS.redis_failover_hold_bytes).value;
  const notes = [setting.source];
  if (timeoutSetting !== null) notes.push(`timeout ${timeoutMs / 1000} s (${timeoutSetting.source})`);
  if (holdMs > 0) notes.push(`events held up to ${holdMs / 1000} s while it fails over`);
  const what = { single: 'Redis', sentinel: 'Redis through Sentinel', cluster: 'Redis Cluster' }[connection.kind];
  sources.notices.push(`Backplane: ${what} at ${displayUrl} (${notes.join(', ')}); events reach every node on it.`);
  return { kind: 'redis', connection, displayUrl, timeoutMs, holdMs, holdBytes };
}

const USAGE =
  'expected redis://[[user]:password@]host[:port][/db], rediss://... for TLS, ' +
  'redis+sentinel://[[user]:password@]host:port[,host:port...]/<master name>[/db] or ' +
  'redis+cluster://[[user]:password@]host:port[,host:port...] (rediss+... for TLS)';

const SENTINEL_PORT = 26379;
const REDIS_PORT = 6379;

/** Checks what ioredis would otherwise only find out at the first connection. Never echoes the password. */
function parseRedisUrl(setting: Setting): { connection: RedisConnection; displayUrl: string } {
  const text = setting.text.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(text)?.[1]?.toLowerCase();
  if (scheme === 'redis+sentinel' || scheme === 'rediss+sentinel' || scheme === 'redis+cluster' || scheme === 'rediss+cluster') {
    return parseMultiHostUrl(setting, text, scheme);
  }
  if (!URL.canParse(text)) throw new ConfigError(`invalid Redis URL in ${describeSetting(setting)}: ${USAGE}`);
  const url = new URL(text);
  // Only the scheme of a URL that is not a Redis one: `host:password` parses as scheme and path.
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError(`invalid Redis URL in ${describeSetting(setting)}: the scheme is ${url.protocol.replace(/:$/, '')}; ${USAGE}`);
  }
  const shown = displayUrl(url);
  const invalid = (why: string): ConfigError => new ConfigError(`invalid Redis URL ${shown} in ${describeSetting(setting)}: ${why}; ${USAGE}`);
  if (url.hostname === '') throw invalid('no host');
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,5}$/.test(db)) throw invalid(`the database must be a number, not ${JSON.stringify(db)}`);
  if (decodePercent(url.password) === null || decodePercent(url.username) === null) throw invalid('the user or password is not valid percent-encoding');
  return { connection: { kind: 'single', url: text }, displayUrl: shown };
}

/**
 * `redis+sentinel://` and `redis+cluster://` name several hosts, which WHATWG URLs cannot hold.
 * The query may set `sentinel_username`, `sentinel_password` (default: the URL's user and password).
 */
function parseMultiHostUrl(setting: Setting, text: string, scheme: string): { connection: RedisConnection; displayUrl: string } {
  const sentinel = scheme.endsWith('+sentinel');
  const tls = scheme.startsWith('rediss');
  const rest = text.slice(scheme.length + 1);
  const match = /^\/\/(?:([^@/?#]*)@)?([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/.exec(rest);
  if (match === null) throw new ConfigError(`invalid Redis URL in ${describeSetting(setting)}: ${USAGE}`);
  const [, userinfo, hostList = '', path = '', query = ''] = match;
  const colon = userinfo?.indexOf(':') ?? -1;
  const user = decodePercent(colon < 0 ? (userinfo ?? '') : userinfo!.slice(0, colon));
  const pass = decodePercent(colon < 0 ? '' : userinfo!.slice(colon + 1));
  const username = user || null;
  const password = pass || null;
  const params = new URLSearchParams(query);
  const shownCredentials = password !== null || (userinfo?.includes(':') ?? false) ? `${username ?? ''}:***@` : username !== null ? `${username}@` : '';
  const shownPath = path === '/' ? '' : path;
  const shown = `${scheme}://${shownCredentials}${hostList}${shownPath}`;
  const invalid = (why: string): ConfigError => new ConfigError(`invalid Redis URL ${shown} in ${describeSetting(setting)}: ${why}; ${USAGE}`);
  if (user === null || pass === null) throw invalid('the user or password is not valid percent-encoding');
  if (hostList === '') throw invalid('no host');
  const addresses = hostList.split(',').map((entry) => parseAddress(entry, sentinel ? SENTINEL_PORT : REDIS_PORT, invalid));
  for (const key of params.keys()) {
    if (!sentinel || (key !== 'sentinel_username' && key !== 'sentinel_password')) {
      throw invalid(`unknown option ${JSON.stringify(key)}${sentinel ? ' (known: sentinel_username, sentinel_password)' : ''}`);
    }
  }
  if (!sentinel) {
    if (shownPath !== '') throw invalid('a cluster has no database number or name: nothing may follow the hosts');
    return { connection: { kind: 'cluster', nodes: addresses, username, password, tls }, displayUrl: shown };
  }
  const segments = path.replace(/^\//, '').split('/');
  const name = decodePercent(segments[0] ?? '');
  if (name === null) throw invalid('the master name is not valid percent-encoding');
  if (name === '') throw invalid('no master name: add /<master name> after the sentinels, as in sentinel.conf\'s "sentinel monitor <master name> ..."');
  if (segments.length > 2) throw invalid('expected at most /<master name>/<db> after the sentinels');
  const dbText = segments[1] ?? '';
  if (dbText !== '' && !/^\d{1,5}$/.test(dbText)) throw invalid(`the database must be a number, not ${JSON.stringify(dbText)}`);
  return {
    connection: {
      kind: 'sentinel',
      sentinels: addresses,
      name,
      username,
      password,
      sentinelUsername: params.get('sentinel_username') || username,
      sentinelPassword: params.get('sentinel_password') || password,
      db: dbText === '' ? 0 : Number(dbText),
      tls,
    },
    displayUrl: shown,
  };
}

/** `host`, `host:port`, `[v6]`, `[v6]:port`. */
function parseAddress(entry: string, defaultPort: number, invalid: (why: string) => ConfigError): RedisAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+))(?::(\d{1,5}))?$/.exec(entry.trim());
  if (match === null) throw invalid(`${JSON.stringify(entry)} is not host or host:port`);
  const host = match[1] ?? match[2]!;
  const port = match[3] === undefined ? defaultPort : Number(match[3]);
  if (port < 1 || port > 65535) throw invalid(`the port of ${JSON.stringify(entry)} must be from 1 to 65535`);
  return { host, port };
}

/** Scheme, user, host, port and database: the password masked, the query (where options and secrets may hide) left out. */
function displayUrl(url: URL): string {
  const credentials = url.password !== '' ? `${url.username}:***@` : url.username !== '' ? `${url.username}@` : '';
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.protocol}//${credentials}${url.host}${path}`;
}
