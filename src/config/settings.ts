/**
 * Every setting of the server, one row each; loading, the reload plan, `--help` and the docs'
 * table all read this table, and a test keeps any other file in src/ from reading a setting by name.
 *
 * Live settings: a component reads `live.limits.x` (or `live.config.x`) when it applies it,
 * never a copy taken at start, so a reload needs no wiring in the composition root.
 */
import type { HistoryLimits } from '../history/event-history.js';
import type { Config, Limits } from './config.js';
import type { ServeFlags } from './flags.js';
import type { KeyFile } from './keyfile.js';
import {
  ConfigError,
  describeEventsListen,
  describeSetting,
  fromFile,
  parseAddressList,
  parseBoolean,
  parseEventsListen,
  parseInteger,
  parseLogFormat,
  parseLogLevel,
  parseOriginList,
  parseWorkers,
  type Env,
  type Setting,
} from './setting.js';

/** `live`: at once; `new connections`: for connections opened after the reload; `restart`: not before one. */
type Reload = 'live' | 'new connections' | 'restart';

/** Where a value lands in Config. */
export type ConfigPath =
  | Exclude<keyof Config, 'limits' | 'history' | 'jwtKeySource'>
  | `limits.${keyof Limits}`
  | `history.${keyof HistoryLimits}`;
type ValueAt<P extends ConfigPath> = P extends `limits.${infer K extends keyof Limits}`
  ? Limits[K]
  : P extends `history.${infer K extends keyof HistoryLimits}`
    ? HistoryLimits[K]
    : P extends keyof Config
      ? Config[P]
      : never;

/** The options that carry a setting (`-c` and `-h` are not settings). */
export type FlagName = Exclude<keyof ServeFlags, 'configDir' | 'help'>;

export interface Row<T = unknown> {
  flag?: FlagName;
  /** The option's short form, its value in --help, what a blank value lacks: `-l`, `<file|->`, `a file name or -`. */
  short?: string;
  arg?: string;
  needs?: string;
  env?: string;
  /** The key in seafile.conf [notification]; also the name in messages and the reload log. */
  file?: string;
  /** Also read from notification.conf [general] (early Seafile 10.0). */
  notificationConf?: true;
  /** Filled from the row alone. */
  at?: ConfigPath;
  /** Or one part of a Config field that a resolver builds (jwt-key.ts, group-database.ts, backplane.ts, load-config.ts); null: not kept in Config. */
  partOf?: keyof Config | null;
  /** The name in the reload log when it is not the file key. */
  reloadName?: string;
  reload: Reload;
  /** One line for --help and the docs. */
  help: string;
  parse?(setting: Setting, name: string): T;
  default?: T;
  /** The default as --help and the docs show it, when `describe(default)` does not say it. */
  shown?: string;
  /** How the start-up log's `Tuning:` line shows a value that is set; absent: not on that line. */
  describe?(value: T): string;
  /** The stock server ignores an unusable value of this variable; so do we, warning of it as this (`port`). */
  tolerantEnv?: string;
}

export type ParsedRow<T> = Row<T> & { parse(setting: Setting, name: string): T; default: T };

function setting<P extends ConfigPath>(at: P, row: Omit<ParsedRow<ValueAt<P>>, 'at'>): ParsedRow<ValueAt<P>> {
  return { ...row, at };
}

function part<R extends Row>(partOf: keyof Config | null, row: R): R {
  return { ...row, partOf };
}

// Node clamps longer timers to 1 ms, which would turn a huge interval into a busy loop.
const MAX_TIMER_SECONDS = Math.floor(2_147_483_647 / 1000);
const MAX_COUNT = 2 ** 31 - 1;

/** A whole number of seconds, kept in milliseconds. */
function seconds(min: number, max = MAX_TIMER_SECONDS) {
  return { parse: (s: Setting, name: string) => parseInteger(s, name, min, max) * 1000, describe: (ms: number) => `${ms / 1000} s` };
}

function whole(min: number, unit = '', max = MAX_COUNT) {
  return { parse: (s: Setting, name: string) => parseInteger(s, name, min, max), describe: (n: number) => `${n}${unit}` };
}

const text = (s: Setting): string => s.text;
const trimmed = (s: Setting): string => s.text.trim();
const shownList = (items: readonly string[]): string => (items.length === 0 ? 'none' : items.join(' '));

export const SETTINGS = {
  jwt_private_key: part('jwtPrivateKey', { env: 'JWT_PRIVATE_KEY', file: 'jwt_private_key', reload: 'live', shown: 'generated, kept in the state dir', help: 'HS256 key shared with seaf-server and seahub (no option: a key on the command line shows in ps)' }),
  private_key: part('jwtPrivateKey', { file: 'private_key', notificationConf: true, reload: 'live', help: 'the Seafile 10.0 name of the JWT key' }),
  key_grace: setting('keyGraceMs', { env: 'NOTIFICATION_SERVER_KEY_GRACE', file: 'key_grace', ...seconds(0), default: 600_000, reload: 'live', help: 'after a reload changes the JWT key, tokens signed with the previous one are accepted this long; 0: not at all' }),
  notification_token: setting('notificationToken', { env: 'NOTIFICATION_TOKEN', file: 'notification_token', notificationConf: true, parse: text, default: null, shown: 'none', reload: 'live', help: 'Seafile 10.0 static publisher token' }),
  host: setting('host', { flag: 'host', arg: '<addr>', needs: 'an address', env: 'NOTIFICATION_SERVER_HOST', file: 'host', notificationConf: true, parse: trimmed, default: '0.0.0.0', shown: '0.0.0.0; 127.0.0.1 with no configuration at all', reload: 'restart', help: 'listen address' }),
  port: setting('port', { flag: 'port', arg: '<n>', env: 'NOTIFICATION_SERVER_PORT', file: 'port', notificationConf: true, parse: (s) => parseInteger(s, 'port', 1, 65535), default: 8083, tolerantEnv: 'port', reload: 'restart', help: 'listen port; an unusable variable is ignored with a warning, as the stock server does' }),
  log_level: setting('logLevel', { flag: 'logLevel', arg: '<level>', needs: 'debug, info, warn or error', env: 'NOTIFICATION_SERVER_LOG_LEVEL', file: 'log_level', notificationConf: true, parse: parseLogLevel, default: 'info', tolerantEnv: 'log level', reload: 'live', help: 'debug, info, warn or error; an unknown variable is ignored with a warning, as the stock server does' }),
  log_file: part('logFile', { flag: 'logFile', short: 'l', arg: '<file|->', needs: 'a file name or -', env: 'SEAFILE_LOG_TO_STDOUT', reloadName: 'log file (-l)', reload: 'restart', shown: '<config dir>/notification-server.log with -c, else stdout', help: 'log file, "-" for stdout; SEAFILE_LOG_TO_STDOUT=true logs to stdout (beats -l)' }),
  log_format: setting('logFormat', { flag: 'logFormat', arg: '<fmt>', needs: 'text or json', env: 'NOTIFICATION_SERVER_LOG_FORMAT', file: 'log_format', parse: parseLogFormat, default: null, shown: 'text to a file or a terminal, json to a pipe', reload: 'restart', help: 'text (the stock server\'s lines) or json' }),
  ccnet_db: part('groupDatabase', { flag: 'ccnetDb', arg: '<url>', needs: 'a database URL', env: 'CCNET_DB_URL', reloadName: 'group database', reload: 'restart', shown: 'SEAFILE_MYSQL_DB_*, ccnet.conf [Database], or the SQLite file beside the config dir', help: 'group database: mysql://user:pass@host:3306/ccnet_db, postgres://..., sqlite:/path/groupmgr.db' }),
  seafile_mysql_db_host: part('groupDatabase', { env: 'SEAFILE_MYSQL_DB_HOST', reload: 'restart', shown: 'none', help: 'Seafile 12 group database host (enables the four below)' }),
  seafile_mysql_db_port: part('groupDatabase', { env: 'SEAFILE_MYSQL_DB_PORT', parse: (s) => parseInteger(s, 'database port', 1, 65535), default: 3306, tolerantEnv: 'database port', reload: 'restart', help: 'its port; an unusable one is ignored with a warning, as the stock server does' }),
  seafile_mysql_db_user: part('groupDatabase', { env: 'SEAFILE_MYSQL_DB_USER', parse: text, default: 'seafile', reload: 'restart', help: 'its user' }),
  seafile_mysql_db_password: part('groupDatabase', { env: 'SEAFILE_MYSQL_DB_PASSWORD', shown: '""', reload: 'restart', help: 'its password' }),
  seafile_mysql_db_ccnet_db_name: part('groupDatabase', { env: 'SEAFILE_MYSQL_DB_CCNET_DB_NAME', parse: text, default: 'ccnet_db', reload: 'restart', help: 'its ccnet database' }),
  group_cache_ttl: setting('groupCacheTtlMs', { env: 'NOTIFICATION_SERVER_GROUP_CACHE_TTL', file: 'group_cache_ttl', ...seconds(0), default: 10_000, reload: 'restart', help: 'how long group members are cached; 0: not cached' }),
  group_lookup_timeout: setting('groupLookupTimeoutMs', { env: 'NOTIFICATION_SERVER_GROUP_LOOKUP_TIMEOUT', file: 'group_lookup_timeout', ...seconds(1), default: 5_000, reload: 'restart', help: 'a group lookup not answered within this fails: the event reaches nobody' }),
  state_dir: part(null, { flag: 'stateDir', arg: '<dir>', needs: 'a directory', env: 'NOTIFICATION_SERVER_STATE_DIR', parse: trimmed, default: '.notification-server', reload: 'restart', help: 'where a generated JWT key is kept when nothing is configured' }),
  redis_url: part('backplane', { env: 'REDIS_URL', file: 'redis_url', notificationConf: true, reloadName: 'Redis backplane (redis_url, redis_timeout, redis_failover_hold)', reload: 'restart', shown: 'none: one node', help: 'several nodes: redis://[:password@]host:6379, rediss://, redis+sentinel://host:26379,host2:26379/<master name>, redis+cluster://host:6379,host2:6379 (rediss+... for TLS)' }),
  redis_timeout: part('backplane', { env: 'NOTIFICATION_SERVER_REDIS_TIMEOUT', file: 'redis_timeout', ...seconds(1, 3600), default: 5_000, reload: 'restart', help: 'Redis not answering this long has its connection reopened' }),
  redis_failover_hold: part('backplane', { env: 'NOTIFICATION_SERVER_REDIS_FAILOVER_HOLD', file: 'redis_failover_hold', ...seconds(0, 600), default: 30_000, shown: '30 s with Sentinel or Cluster, 0 with one Redis', reload: 'restart', help: 'an event waits this long for Redis to fail over before it is delivered on this node only' }),
  redis_failover_hold_bytes: part('backplane', { env: 'NOTIFICATION_SERVER_REDIS_FAILOVER_HOLD_BYTES', file: 'redis_failover_hold_bytes', ...whole(0, ' bytes', 1024 ** 3), default: 16 * 1024 * 1024, reload: 'restart', help: 'bytes of events held at once while Redis fails over' }),
  history_size: setting('history.size', { env: 'NOTIFICATION_SERVER_HISTORY_SIZE', file: 'history_size', ...whole(0, ' events', 1_000_000), default: 1000, reload: 'restart', help: 'events kept per library for clients that recover what they missed; 0: none' }),
  history_ttl: setting('history.ttlMs', { env: 'NOTIFICATION_SERVER_HISTORY_TTL', file: 'history_ttl', ...seconds(1), default: 3_600_000, reload: 'restart', help: 'no kept event is older than this' }),
  gap_refresh_window: setting('gapRefreshWindowMs', { env: 'NOTIFICATION_SERVER_GAP_REFRESH_WINDOW', file: 'gap_refresh_window', ...seconds(0), default: 10_000, reload: 'live', help: 'after a known gap, desktop clients are closed to re-read their state, spread over this; 0: never' }),
  max_connections: setting('limits.maxConnections', { env: 'NOTIFICATION_SERVER_MAX_CONNECTIONS', file: 'max_connections', ...whole(1), default: 100_000, reload: 'live', help: 'WebSockets, SSE streams and waiting polls open at once; past it 503' }),
  // A 2,000-person office behind one NAT address, each with a desktop client, SeaDrive and a web tab or two.
  max_connections_per_address: setting('limits.maxConnectionsPerAddress', { env: 'NOTIFICATION_SERVER_MAX_CONNECTIONS_PER_ADDRESS', file: 'max_connections_per_address', ...whole(0), default: 5_000, reload: 'live', help: 'connections open at once from one client address; past it 429; 0: no limit' }),
  // Far above one person's devices and tabs, room for a shared lab account; 1 % of max_connections.
  max_connections_per_user: setting('limits.maxConnectionsPerUser', { env: 'NOTIFICATION_SERVER_MAX_CONNECTIONS_PER_USER', file: 'max_connections_per_user', ...whole(0), default: 1_000, reload: 'new connections', help: 'connections holding a subscription under one user name; 0: no limit' }),
  max_event_bytes: setting('limits.maxEventBodyBytes', { env: 'NOTIFICATION_SERVER_MAX_EVENT_BYTES', file: 'max_event_bytes', ...whole(1, ' bytes'), default: 64 * 1024, reload: 'live', help: 'largest /events body; larger is answered 413' }),
  max_frame_bytes: setting('limits.maxFrameBytes', { env: 'NOTIFICATION_SERVER_MAX_FRAME_BYTES', file: 'max_frame_bytes', ...whole(1, ' bytes'), default: 64 * 1024, reload: 'restart', help: 'largest client message; larger closes the connection (1009)' }),
  send_queue_bytes: setting('limits.sendQueueBytes', { env: 'NOTIFICATION_SERVER_SEND_QUEUE_BYTES', file: 'send_queue_bytes', ...whole(1, ' bytes'), default: 1024 * 1024, reload: 'new connections', help: 'outgoing bytes queued per client before it is dropped (4000)' }),
  max_libraries_per_connection: setting('limits.maxLibrariesPerConnection', { env: 'NOTIFICATION_SERVER_MAX_LIBRARIES_PER_CONNECTION', file: 'max_libraries_per_connection', ...whole(1), default: 10_000, reload: 'new connections', help: 'libraries one connection may follow' }),
  subscribe_timeout: setting('limits.subscribeTimeoutMs', { env: 'NOTIFICATION_SERVER_SUBSCRIBE_TIMEOUT', file: 'subscribe_timeout', ...seconds(0), default: 60_000, reload: 'new connections', help: 'a connection without a subscription this long is closed (4001); 0: never' }),
  max_failed_subscribes_per_minute: setting('limits.maxFailedSubscribesPerMinute', { env: 'NOTIFICATION_SERVER_MAX_FAILED_SUBSCRIBES_PER_MINUTE', file: 'max_failed_subscribes_per_minute', ...whole(0), default: 100, reload: 'new connections', help: 'refused subscribes a minute before a WebSocket is closed (SSE, long polling: per address); 0: no limit' }),
  header_timeout: setting('limits.headerTimeoutMs', { env: 'NOTIFICATION_SERVER_HEADER_TIMEOUT', file: 'header_timeout', ...seconds(1), default: 10_000, reload: 'restart', help: 'a request whose headers take longer is answered 408' }),
  ping_interval: setting('pingIntervalMs', { env: 'NOTIFICATION_SERVER_PING_INTERVAL', file: 'ping_interval', ...seconds(1), default: 20_000, reload: 'restart', help: 'a connection silent for half of this is pinged' }),
  dead_peer_timeout: setting('deadPeerMs', { env: 'NOTIFICATION_SERVER_DEAD_PEER_TIMEOUT', file: 'dead_peer_timeout', ...seconds(1), default: 50_000, reload: 'restart', help: 'a client silent this long is dropped; longer than ping_interval' }),
  drain_seconds: setting('drainMs', { env: 'NOTIFICATION_SERVER_DRAIN_SECONDS', file: 'drain_seconds', ...seconds(0), default: 5_000, reload: 'live', help: 'on SIGTERM the WebSocket closes (1001) are spread over this' }),
  long_poll_wait: setting('longPollWaitMs', { env: 'NOTIFICATION_SERVER_LONG_POLL_WAIT', file: 'long_poll_wait', ...seconds(1), default: 25_000, reload: 'live', help: 'a long poll with nothing new is answered after this; below the proxy\'s read timeout' }),
  allowed_origins: setting('allowedOrigins', { env: 'NOTIFICATION_SERVER_ALLOWED_ORIGINS', file: 'allowed_origins', parse: parseOriginList, describe: (origins) => shownList(origins ?? []), default: null, shown: 'any', reload: 'restart', help: 'browser origins allowed to connect, e.g. https://cloud.example.com' }),
  trusted_proxies: setting('trustedProxies', { env: 'NOTIFICATION_SERVER_TRUSTED_PROXIES', file: 'trusted_proxies', parse: parseAddressList, describe: shownList, default: ['127.0.0.0/8', '::1'], reload: 'restart', help: 'peers whose X-Forwarded-For / X-Real-IP name the client address; none: no peer' }),
  events_listen: setting('eventsListen', { env: 'NOTIFICATION_SERVER_EVENTS_LISTEN', file: 'events_listen', parse: parseEventsListen, describe: (where) => (where === null ? 'the public port' : describeEventsListen(where)), default: null, reload: 'restart', help: 'serve POST /events only here: host:port or a Unix socket path' }),
  metrics: setting('metrics', { env: 'NOTIFICATION_SERVER_METRICS', file: 'metrics', parse: parseBoolean, default: true, reload: 'restart', help: 'whether GET /metrics answers (Prometheus)' }),
  admin_token: setting('adminToken', { env: 'NOTIFICATION_SERVER_ADMIN_TOKEN', file: 'admin_token', parse: parseAdminToken, default: null, shown: 'none: the status page is off', reload: 'restart', help: 'the secret of the status page at /status (16 characters or more)' }),
  enabled: part(null, { file: 'enabled', reload: 'restart', shown: 'false', help: 'seaf-server\'s switch for sending events; read only to say when it is off' }),
  workers: setting('workers', { flag: 'workers', arg: '<n|auto>', needs: 'a number of processes or auto', env: 'NOTIFICATION_SERVER_WORKERS', file: 'workers', parse: (s) => parseWorkers(s, MAX_WORKERS), default: 1, reload: 'restart', help: 'processes sharing the port; auto: one per core' }),
};

export const ROWS: readonly Row[] = Object.values(SETTINGS) as Row[];

/** Past this, `workers` is a typo: each worker is a whole server process. */
const MAX_WORKERS = 64;

/** The fields a resolver builds from several rows, which have no single default. */
type Composite = 'jwtPrivateKey' | 'jwtKeySource' | 'groupDatabase' | 'backplane' | 'logFile';

/** Every value filled from its row alone, when nothing sets it; and the address when nothing at all is configured. */
export const DEFAULTS: Required<Omit<Config, Composite>> & { embeddedHost: string } = { ...defaultsOfRows(), embeddedHost: '127.0.0.1' };
export const DEFAULT_LIMITS: Limits = DEFAULTS.limits;

function defaultsOfRows(): Required<Omit<Config, Composite>> {
  const config = { limits: {}, history: {} } as Required<Config>;
  for (const row of ROWS) if (row.at !== undefined) setValueAt(config, row.at, row.default);
  return config;
}

function parseAdminToken(setting: Setting): string {
  const token = setting.text.trim();
  if (token.length < 16) {
    throw new ConfigError(`the admin token (${describeSetting(setting)}) is too short: use at least 16 characters, e.g. from \`notification-server keygen\``);
  }
  return token;
}

/** The name in messages, the reload log and the docs. */
export function nameOf(row: Row): string {
  return row.file ?? row.env ?? flagLabel(row.flag!);
}

/** The default as --help and the docs show it. */
export function shownDefault(row: Row): string {
  if (row.shown !== undefined) return row.shown;
  if (row.default === undefined) return '';
  return row.describe === undefined ? String(row.default) : row.describe(row.default);
}

/** `--log-level` for `logLevel`. */
export function flagLabel(flag: FlagName): string {
  return `--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Where settings are read from, and what loading them has to say. */
export interface Sources {
  flags: ServeFlags;
  env: Env;
  /** Relative paths in flags and the environment resolve against this. */
  cwd: string;
  confDir: string | null;
  seafile: KeyFile | null;
  notification: KeyFile | null;
  ccnet: KeyFile | null;
  /** Sentences for the start-up log (LoadedConfig.notices). */
  notices: string[];
  /** Values ignored as the stock server ignores them (tolerantEnv), for the log. */
  warnings: string[];
}

/** The raw variable, even when blank (the JWT key: an empty one is an error, not unset). */
export function envText(env: Env, row: Row): string | undefined {
  return row.env === undefined ? undefined : env[row.env];
}

/**
 * Every place that sets the row, the one that wins first. Blank values count as unset (compose
 * files pass blank placeholders, the manual ships `host =`) unless `keepBlank`.
 */
export function settingsOf(sources: Sources, row: Row, keepBlank = false): Setting[] {
  const flag = row.flag === undefined ? null : sources.flags[row.flag];
  const env = envText(sources.env, row);
  const found = [
    flag === null || flag === undefined ? null : { text: String(flag), source: row.short === undefined ? flagLabel(row.flag!) : `-${row.short}` },
    env === undefined ? null : { text: env, source: row.env! },
    row.file === undefined ? null : fromFile(sources.seafile, 'notification', row.file, true),
    row.notificationConf && row.file !== undefined ? fromFile(sources.notification, 'general', row.file, true) : null,
  ];
  return found.filter((s): s is Setting => s !== null && (keepBlank || s.text.trim() !== ''));
}

/** The setting that wins, or null. */
export function find(sources: Sources, row: Row): Setting | null {
  return settingsOf(sources, row)[0] ?? null;
}

/** The parsed value of the setting that wins (null setting: the default). */
export function read<T>(sources: Sources, row: ParsedRow<T>): { value: T; setting: Setting | null } {
  let problem: string | null = null;
  for (const setting of settingsOf(sources, row)) {
    try {
      const value = row.parse(setting, nameOf(row));
      if (problem !== null) sources.warnings.push(tolerated(row, problem, value, setting));
      return { value, setting };
    } catch (error) {
      if (!(error instanceof ConfigError) || row.tolerantEnv === undefined || setting.source !== row.env) throw error;
      problem = error.message;
    }
  }
  if (problem !== null) sources.warnings.push(tolerated(row, problem, row.default, null));
  // A copy: a Config may be changed, the table's default must not be.
  return { value: structuredClone(row.default), setting: null };
}

function tolerated<T>(row: ParsedRow<T>, problem: string, value: T, setting: Setting | null): string {
  // Name where the value came from when anything but the variable could have set it.
  const from = row.flag === undefined && row.file === undefined ? '' : ` (${setting?.source ?? 'default'})`;
  return `${problem}; using ${row.tolerantEnv} ${String(value)}${from}, as the stock server does`;
}

/** What components read live settings from; see the contract at the top. */
export class LiveSettings {
  config!: Config & Required<Pick<Config, 'gapRefreshWindowMs' | 'longPollWaitMs'>>;
  limits!: Limits;

  constructor(config: Config) {
    this.replace(config);
  }

  /** Takes over a reload's configuration (reload-plan.ts keeps the running value of what needs a restart). */
  replace(config: Config): void {
    this.config = { gapRefreshWindowMs: DEFAULTS.gapRefreshWindowMs, longPollWaitMs: DEFAULTS.longPollWaitMs, ...config };
    this.limits = config.limits;
  }
}

export function valueAt(config: Config, path: ConfigPath | keyof Config): unknown {
  const [head, field] = path.split('.') as [keyof Config, string?];
  const value = config[head];
  return field === undefined ? value : (value as unknown as Record<string, unknown>)[field];
}

export function setValueAt(config: Config, path: ConfigPath | keyof Config, value: unknown): void {
  const [head, field] = path.split('.') as [keyof Config, string?];
  const target = config as unknown as Record<string, unknown>;
  if (field === undefined) target[head] = value;
  else (target[head] as Record<string, unknown>)[field] = value;
}
