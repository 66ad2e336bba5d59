/**
 * Builds the one typed Config from the command line, the environment and the
 * three generations of Seafile config files. Per setting, the first source
 * that sets it wins: flag > environment > seafile.conf [notification] >
 * notification.conf [general] > default.
 */
import { availableParallelism } from 'node:os';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import type { HistoryLimits } from '../history/event-history.js';
import { DEFAULT_HISTORY_LIMITS } from '../history/event-history.js';
import { resolveBackplane } from './backplane.js';
import { ConfigError, DEFAULT_LIMITS, DEFAULTS, describeEventsListen, MAX_WORKERS, type Config, type EventsListen, type Limits } from './config.js';
import type { ServeFlags } from './flags.js';
import { resolveGroupDatabase } from './group-database.js';
import { resolveJwtKey } from './jwt-key.js';
import { readKeyFile, type KeyFile } from './keyfile.js';
import {
  describeSetting,
  fromEnv,
  fromFile,
  parseAddressList,
  parseBoolean,
  parseInteger,
  parseLogFormat,
  parseLogLevel,
  parseOriginList,
  pick,
  tolerantEnv,
  type Env,
  type Setting,
} from './setting.js';

export interface LoadConfigInput {
  flags: ServeFlags;
  env: Env;
  /** Relative paths in flags and the environment resolve against this. */
  cwd: string;
}

export interface LoadedConfig {
  config: Config;
  /** Sentences for the start-up log: sources read, generated key, degraded features. Never a secret. */
  notices: string[];
  /** Values that were ignored, as the stock server ignores them, each naming what is used instead: logged as warnings. */
  warnings: string[];
}

export async function loadConfig(input: LoadConfigInput): Promise<LoadedConfig> {
  const { flags, env, cwd } = input;
  const notices: string[] = [];
  const warnings: string[] = [];

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

  const parsePort = (setting: Setting): number => parseInteger(setting, 'port', 1, 65535);
  const portEnv = flags.port === null ? tolerantEnv(env, 'NOTIFICATION_SERVER_PORT', parsePort) : null;
  const portSetting = pick(
    flags.port === null ? null : { text: String(flags.port), source: '--port' },
    portEnv?.setting ?? null,
    fromSeafile('port'),
    fromNotification('port'),
  );
  const port = portSetting === null ? DEFAULTS.port : parsePort(portSetting);
  if (portEnv?.problem) warnings.push(`${portEnv.problem}; using port ${port} (${portSetting?.source ?? 'default'}), as the stock server does`);

  const logLevelEnv = flags.logLevel === null ? tolerantEnv(env, 'NOTIFICATION_SERVER_LOG_LEVEL', parseLogLevel) : null;
  const logLevelSetting = pick(
    flags.logLevel === null ? null : { text: flags.logLevel, source: '--log-level' },
    logLevelEnv?.setting ?? null,
    fromSeafile('log_level'),
    fromNotification('log_level'),
  );
  const logLevel = logLevelSetting === null ? DEFAULTS.logLevel : parseLogLevel(logLevelSetting);
  if (logLevelEnv?.problem) {
    warnings.push(`${logLevelEnv.problem}; using log level ${logLevel} (${logLevelSetting?.source ?? 'default'}), as the stock server does`);
  }

  const logFile = resolveLogFile(flags, env, cwd, confDir);
  const logFormatSetting = pick(
    flags.logFormat === null ? null : { text: flags.logFormat, source: '--log-format' },
    fromEnv(env, 'NOTIFICATION_SERVER_LOG_FORMAT'),
    fromSeafile('log_format'),
  );
  const logFormat = logFormatSetting === null ? null : parseLogFormat(logFormatSetting);

  const key = await resolveJwtKey({ flags, env, cwd, confDir, seafile, notification, notices });
  const notificationToken = resolveNotificationToken(env, seafile, notification, notices);
  const groupDatabase = await resolveGroupDatabase({ flags, env, cwd, confDir, ccnet, notices, warnings });
  const tuning = resolveTuning(env, seafile);
  const metrics = resolveMetrics(env, seafile, notices);
  const adminToken = resolveAdminToken(env, seafile, notices);
  const backplane = resolveBackplane(env, seafile, notification, notices);
  const workersSetting = pick(
    flags.workers === null ? null : { text: flags.workers, source: '--workers' },
    fromEnv(env, 'NOTIFICATION_SERVER_WORKERS'),
    fromSeafile('workers'),
  );
  const workers =
    workersSetting === null
      ? DEFAULTS.workers
      : workersSetting.text.trim() === 'auto'
        ? Math.min(MAX_WORKERS, availableParallelism())
        : parseInteger(workersSetting, 'workers', 1, MAX_WORKERS);
  if (workers !== DEFAULTS.workers) notices.push(`Workers: ${workers} processes share port ${port} (${workersSetting!.source}).`);

  notices.push(
    `Settings: host ${host} (${hostSetting?.source ?? 'default'}), port ${port} (${portSetting?.source ?? 'default'}), ` +
      `log level ${logLevel} (${logLevelSetting?.source ?? 'default'}), ` +
      `log to ${logFile ?? 'stdout'}${logFormat === null ? '' : ` as ${logFormat}`}, JWT key from ${key.source}.`,
  );
  if (tuning.changed.length > 0) notices.push(`Tuning: ${tuning.changed.join(', ')}.`);

  const config: Config = {
    host,
    port,
    logLevel,
    logFile,
    logFormat,
    jwtPrivateKey: key.key,
    jwtKeySource: key.source,
    keyGraceMs: tuning.keyGraceMs,
    notificationToken,
    groupDatabase,
    groupCacheTtlMs: tuning.groupCacheTtlMs,
    groupLookupTimeoutMs: tuning.groupLookupTimeoutMs,
    backplane,
    history: tuning.history,
    limits: tuning.limits,
    pingIntervalMs: tuning.pingIntervalMs,
    deadPeerMs: tuning.deadPeerMs,
    drainMs: tuning.drainMs,
    gapRefreshWindowMs: tuning.gapRefreshWindowMs,
    longPollWaitMs: tuning.longPollWaitMs,
    allowedOrigins: tuning.allowedOrigins,
    trustedProxies: tuning.trustedProxies,
    eventsListen: tuning.eventsListen,
    metrics,
    adminToken,
    workers,
  };
  return { config, notices, warnings };
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

function resolveLogFile(
  flags: ServeFlags,
  env: Env,
  cwd: string,
  confDir: string | null,
): string | null {
  // As with the stock server, SEAFILE_LOG_TO_STDOUT beats -l: the stock image's command line names a file.
  const toStdout = env['SEAFILE_LOG_TO_STDOUT']?.trim().toLowerCase();
  if (toStdout === 'true' || toStdout === '1' || toStdout === 'yes') return null;
  if (flags.logFile !== null) return flags.logFile === '-' ? null : resolve(cwd, flags.logFile);
  // Like the stock server started with -c: a log file beside the config.
  return confDir === null ? null : join(confDir, 'notification-server.log');
}

// ---------------------------------------------------------- publisher token

function resolveNotificationToken(
  env: Env,
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

// ----------------------------------------------------------------- metrics

function resolveMetrics(env: Env, seafile: KeyFile | null, notices: string[]): boolean {
  const setting = pick(fromEnv(env, 'NOTIFICATION_SERVER_METRICS'), fromFile(seafile, 'notification', 'metrics'));
  const enabled = setting === null ? DEFAULTS.metrics : parseBoolean(setting);
  if (setting !== null) notices.push(`Prometheus metrics at GET /metrics are ${enabled ? 'on' : 'off'} (${setting.source}).`);
  return enabled;
}

function resolveAdminToken(env: Env, seafile: KeyFile | null, notices: string[]): string | null {
  const setting = pick(fromEnv(env, 'NOTIFICATION_SERVER_ADMIN_TOKEN'), fromFile(seafile, 'notification', 'admin_token'));
  if (setting === null) return null;
  const token = setting.text.trim();
  if (token.length < 16) {
    throw new ConfigError(
      `the admin token (${describeSetting(setting)}) is too short: use at least 16 characters, e.g. from \`notification-server keygen\``,
    );
  }
  notices.push(`Status page at /status is on, for the admin token from ${setting.source}.`);
  return token;
}

// ------------------------------------------------------------------ tuning

interface Tuning {
  pingIntervalMs: number;
  deadPeerMs: number;
  drainMs: number;
  gapRefreshWindowMs: number;
  longPollWaitMs: number;
  groupCacheTtlMs: number;
  groupLookupTimeoutMs: number;
  keyGraceMs: number;
  history: HistoryLimits;
  limits: Limits;
  allowedOrigins: string[] | null;
  trustedProxies: string[];
  eventsListen: EventsListen | null;
  /** `name value (source)` for each setting not at its default. */
  changed: string[];
}

// Node clamps longer timers to 1 ms, which would turn a huge interval into a busy loop.
const MAX_TIMER_SECONDS = Math.floor(2_147_483_647 / 1000);
const MAX_BYTES = 2 ** 31 - 1;

function resolveTuning(env: Env, seafile: KeyFile | null): Tuning {
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
  // 0: desktop clients are never closed after a gap.
  const gapRefresh = seconds('gap_refresh_window', DEFAULTS.gapRefreshWindowMs, 0);
  const groupLookupTimeout = seconds('group_lookup_timeout', DEFAULTS.groupLookupTimeoutMs, 1);
  const longPollWait = seconds('long_poll_wait', DEFAULTS.longPollWaitMs, 1);
  // 0: a new key (SIGHUP) replaces the old one at once.
  const keyGrace = seconds('key_grace', DEFAULTS.keyGraceMs, 0);
  if (deadPeer.value <= ping.value) {
    const from = (found: { setting: Setting | null }): string =>
      found.setting === null ? 'default' : describeSetting(found.setting);
    throw new ConfigError(
      `dead_peer_timeout (${deadPeer.value / 1000} s, ${from(deadPeer)}) must be longer than ` +
        `ping_interval (${ping.value / 1000} s, ${from(ping)}), or every client is dropped before its pong can arrive`,
    );
  }
  // 0 events: nothing is kept, a client that missed anything is told to resync.
  const history: HistoryLimits = {
    size: read('history_size', DEFAULT_HISTORY_LIMITS.size, 0, 1_000_000, ' events').value,
    ttlMs: seconds('history_ttl', DEFAULT_HISTORY_LIMITS.ttlMs, 1).value,
  };
  const limits: Limits = {
    maxFrameBytes: bytes('max_frame_bytes', DEFAULT_LIMITS.maxFrameBytes),
    maxEventBodyBytes: bytes('max_event_bytes', DEFAULT_LIMITS.maxEventBodyBytes),
    sendQueueBytes: bytes('send_queue_bytes', DEFAULT_LIMITS.sendQueueBytes),
    maxConnections: read('max_connections', DEFAULT_LIMITS.maxConnections, 1, MAX_BYTES, '').value,
    // 0 turns these two off.
    maxConnectionsPerAddress: read('max_connections_per_address', DEFAULT_LIMITS.maxConnectionsPerAddress, 0, MAX_BYTES, '').value,
    maxConnectionsPerUser: read('max_connections_per_user', DEFAULT_LIMITS.maxConnectionsPerUser, 0, MAX_BYTES, '').value,
    maxLibrariesPerConnection: read('max_libraries_per_connection', DEFAULT_LIMITS.maxLibrariesPerConnection, 1, MAX_BYTES, '').value,
    // 0 turns these two off.
    subscribeTimeoutMs: seconds('subscribe_timeout', DEFAULT_LIMITS.subscribeTimeoutMs, 0).value,
    maxFailedSubscribesPerMinute: read('max_failed_subscribes_per_minute', DEFAULT_LIMITS.maxFailedSubscribesPerMinute, 0, MAX_BYTES, '').value,
    headerTimeoutMs: seconds('header_timeout', DEFAULT_LIMITS.headerTimeoutMs, 1).value,
  };
  const originSetting = pick(fromEnv(env, 'NOTIFICATION_SERVER_ALLOWED_ORIGINS'), fromFile(seafile, 'notification', 'allowed_origins'));
  const allowedOrigins = originSetting === null ? null : parseOriginList(originSetting);
  if (allowedOrigins !== null) changed.push(`allowed_origins ${allowedOrigins.join(' ')} (${originSetting!.source})`);
  const proxySetting = pick(fromEnv(env, 'NOTIFICATION_SERVER_TRUSTED_PROXIES'), fromFile(seafile, 'notification', 'trusted_proxies'));
  const trustedProxies = proxySetting === null ? [...DEFAULTS.trustedProxies] : parseAddressList(proxySetting);
  if (proxySetting !== null) changed.push(`trusted_proxies ${trustedProxies.length === 0 ? 'none' : trustedProxies.join(' ')} (${proxySetting.source})`);
  const eventsSetting = pick(fromEnv(env, 'NOTIFICATION_SERVER_EVENTS_LISTEN'), fromFile(seafile, 'notification', 'events_listen'));
  const eventsListen = eventsSetting === null ? null : parseEventsListen(eventsSetting);
  if (eventsListen !== null) changed.push(`events_listen ${describeEventsListen(eventsListen)} (${eventsSetting!.source})`);
  return {
    pingIntervalMs: ping.value,
    deadPeerMs: deadPeer.value,
    drainMs: drain.value,
    gapRefreshWindowMs: gapRefresh.value,
    longPollWaitMs: longPollWait.value,
    groupCacheTtlMs: groupCache.value,
    groupLookupTimeoutMs: groupLookupTimeout.value,
    keyGraceMs: keyGrace.value,
    history,
    limits,
    allowedOrigins,
    trustedProxies,
    eventsListen,
    changed,
  };
}

/** `127.0.0.1:8084`, `[::1]:8084`, or an absolute Unix socket path. */
function parseEventsListen(setting: Setting): EventsListen {
  const text = setting.text.trim();
  if (text.startsWith('/')) return { kind: 'unix', path: text };
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d+)$/.exec(text);
  if (match === null) {
    throw new ConfigError(
      `invalid events_listen ${JSON.stringify(setting.text)} (${describeSetting(setting)}): use host:port (127.0.0.1:8084, [::1]:8084) or an absolute Unix socket path`,
    );
  }
  const port = parseInteger({ ...setting, text: match[3]! }, 'events_listen port', 1, 65535);
  return { kind: 'tcp', host: match[1] ?? match[2]!, port };
}

