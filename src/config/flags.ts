/** The command line of `notification-server` in serve mode, a superset of the reference's `-c <dir> -l <file|->`. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;

import { ConfigError } from './config.js';

export interface ServeFlags {
  /** `-c`: the Seafile config dir holding seafile.conf, ccnet.conf, notification.conf. */
  configDir: string | null;
  /** `-l`: a log file, or `-` for standard output. */
  logFile: string | null;
  host: string | null;
  port: number | null;
  /** Checked by loadConfig, which knows every level spelling. */
  logLevel: string | null;
  /** `--log-format`: text or json, checked by loadConfig. */
  logFormat: string | null;
  /** `--ccnet-db`: URL of the database holding ccnet `GroupUser`. */
  ccnetDb: string | null;
  /** `--state-dir`: where a generated JWT key is kept when nothing is configured. */
  stateDir: string | null;
  /** `--workers`: a count or `auto`, checked by loadConfig. */
  workers: string | null;
  help: boolean;
}

export const SERVE_USAGE = `Usage: notification-server [options]
       notification-server keygen    print a new JWT key
       notification-server publish   send one event (see publish --help)
       notification-server listen    print the events of libraries (see listen --help)
       notification-server check     check a set-up: database, proxy, limits (see check --help)
       notification-server install-seafile <dir>
                                     take the stock server's place in a Seafile 10/11 install

Real-time notifications for Seafile clients (drop-in for the stock server).

Options:
  -c, --config-dir <dir>   Seafile config dir: reads seafile.conf [notification],
                           notification.conf [general] and ccnet.conf [Database]
  -l, --log-file <file|->  log file; "-" for stdout
                           (default: <config dir>/notification-server.log with -c, else stdout)
      --host <addr>        listen address (default: 0.0.0.0 when configured,
                           127.0.0.1 with no configuration at all)
      --port <n>           listen port (default: 8083)
      --log-level <level>  debug, info, warn or error (default: info)
      --log-format <fmt>   text (the stock server's lines) or json (default: text
                           to a file or a terminal, json to a pipe)
      --ccnet-db <url>     group database: mysql://user:pass@host:3306/ccnet_db,
                           mysql://user:pass@localhost/ccnet_db?socket=/run/mysqld/mysqld.sock,
                           postgres://user:pass@host:5432/ccnet_db, sqlite:/path/groupmgr.db
      --state-dir <dir>    where a generated JWT key is kept when nothing is configured
                           (default: ./.notification-server)
      --workers <n|auto>   worker processes sharing the port (Node's cluster module);
                           auto: one per core (default: 1, a single process)
  -h, --help               show this help

Environment (beats the config files, loses to options):
  JWT_PRIVATE_KEY                        HS256 key shared with seaf-server and seahub
                                         (no option: a key on the command line shows in ps)
  NOTIFICATION_SERVER_HOST               listen address
  NOTIFICATION_SERVER_PORT               listen port (8083); an unparsable one logs a
                                         warning and 8083 is used, as the stock server does
  NOTIFICATION_SERVER_LOG_LEVEL          log level (info); an unknown one logs a warning
                                         and info is used, as the stock server does
  NOTIFICATION_SERVER_LOG_FORMAT         as --log-format
  SEAFILE_LOG_TO_STDOUT=true             log to stdout instead of the log file (beats -l)
  NOTIFICATION_TOKEN                     Seafile 10.0 static publisher token
  CCNET_DB_URL                           group database URL, as --ccnet-db
  SEAFILE_MYSQL_DB_HOST                  Seafile 12 group database host (enables the four below)
  SEAFILE_MYSQL_DB_PORT                  (3306)
  SEAFILE_MYSQL_DB_USER                  (seafile)
  SEAFILE_MYSQL_DB_PASSWORD              ("")
  SEAFILE_MYSQL_DB_CCNET_DB_NAME         (ccnet_db)
  NOTIFICATION_SERVER_STATE_DIR          as --state-dir
  NOTIFICATION_SERVER_WORKERS            as --workers (1)
  REDIS_URL                              several nodes: redis://[:password@]host:6379 or rediss://,
                                         redis+sentinel://host:26379,host2:26379/<master name>,
                                         redis+cluster://host:6379,host2:6379 (rediss+... for TLS)
                                         (seafile.conf [notification] redis_url)
  NOTIFICATION_SERVER_REDIS_TIMEOUT      seconds Redis may not answer before its connection is reopened (5)
  NOTIFICATION_SERVER_REDIS_FAILOVER_HOLD
                                         seconds an event waits for Redis to fail over before it
                                         is delivered on this node only (30 with Sentinel or Cluster, else 0)
  NOTIFICATION_SERVER_REDIS_FAILOVER_HOLD_BYTES
                                         bytes of events held at once (16777216)
  NOTIFICATION_SERVER_PING_INTERVAL      seconds between server pings (20)
  NOTIFICATION_SERVER_DEAD_PEER_TIMEOUT  seconds of silence before a client is dropped (50)
  NOTIFICATION_SERVER_DRAIN_SECONDS      seconds over which clients are closed on shutdown (5)
  NOTIFICATION_SERVER_GROUP_CACHE_TTL    seconds group members are cached (10)
  NOTIFICATION_SERVER_MAX_FRAME_BYTES    largest client message (65536)
  NOTIFICATION_SERVER_MAX_EVENT_BYTES    largest /events body (65536)
  NOTIFICATION_SERVER_SEND_QUEUE_BYTES   outgoing bytes queued per client before it is dropped (1048576)
  NOTIFICATION_SERVER_MAX_CONNECTIONS    WebSockets open at once; more get 503 (100000)
  NOTIFICATION_SERVER_MAX_LIBRARIES_PER_CONNECTION
                                         libraries one connection may follow (10000)
  NOTIFICATION_SERVER_SUBSCRIBE_TIMEOUT  seconds a connection may stay without a
                                         subscription before it is closed, 0: never (60)
  NOTIFICATION_SERVER_MAX_FAILED_SUBSCRIBES_PER_MINUTE
                                         refused subscribes a minute before a
                                         WebSocket is closed (SSE and long polling:
                                         per client address), 0: no limit (100)
  NOTIFICATION_SERVER_HEADER_TIMEOUT     seconds a request may take to send its headers
                                         before it is answered 408 (10)
  NOTIFICATION_SERVER_EVENTS_LISTEN      serve POST /events only here: host:port or a
                                         Unix socket path (default: the public port)
  NOTIFICATION_SERVER_ALLOWED_ORIGINS    browser origins allowed to connect, e.g.
                                         https://cloud.example.com (default: any)
The tuning settings can also be set in seafile.conf [notification] in lower case
without the prefix: ping_interval, dead_peer_timeout, drain_seconds,
group_cache_ttl, max_frame_bytes, max_event_bytes, send_queue_bytes,
max_connections, max_libraries_per_connection, subscribe_timeout,
max_failed_subscribes_per_minute, header_timeout, allowed_origins, events_listen,
redis_timeout, redis_failover_hold, redis_failover_hold_bytes, workers,
log_format.
`;

const OPTIONS = {
  'config-dir': { type: 'string', short: 'c' },
  'log-file': { type: 'string', short: 'l' },
  host: { type: 'string' },
  port: { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  'ccnet-db': { type: 'string' },
  'state-dir': { type: 'string' },
  workers: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Parses serve-mode arguments (without the program name); ConfigError names the offending flag. */
export function parseServeFlags(argv: string[]): ServeFlags {
  const { values } = parseCommandLine(argv, OPTIONS, false);
  return {
    configDir: nonEmpty(values['config-dir'], '-c/--config-dir', 'a directory'),
    logFile: nonEmpty(values['log-file'], '-l/--log-file', 'a file name or -'),
    host: nonEmpty(values.host, '--host', 'an address'),
    port: parsePortFlag(values.port),
    logLevel: nonEmpty(values['log-level'], '--log-level', 'debug, info, warn or error'),
    logFormat: nonEmpty(values['log-format'], '--log-format', 'text or json'),
    ccnetDb: nonEmpty(values['ccnet-db'], '--ccnet-db', 'a database URL'),
    stateDir: nonEmpty(values['state-dir'], '--state-dir', 'a directory'),
    workers: nonEmpty(values.workers, '--workers', 'a number of processes or auto'),
    help: values.help ?? false,
  };
}

/**
 * node:util parseArgs, strict, with its errors turned into ConfigErrors that name the flag the
 * way --help does. For every command (serve, publish, listen).
 */
export function parseCommandLine<T extends ParseArgsOptionsConfig>(argv: string[], options: T, allowPositionals: boolean) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals });
  } catch (error) {
    throw translateParseError(error, flagLabels(options));
  }
}

/** `-c` and `--config-dir` both map to "-c/--config-dir", so errors name the flag the way --help does. */
function flagLabels(options: ParseArgsOptionsConfig): ReadonlyMap<string, string> {
  return new Map(
    Object.entries(options).flatMap(([long, option]): Array<[string, string]> => {
      const short = option.short;
      const label = short === undefined ? `--${long}` : `-${short}/--${long}`;
      return short === undefined ? [[`--${long}`, label]] : [[`--${long}`, label], [`-${short}`, label]];
    }),
  );
}

function translateParseError(error: unknown, labels: ReadonlyMap<string, string>): Error {
  if (!(error instanceof Error)) return new ConfigError(String(error));
  const code = (error as NodeJS.ErrnoException).code;
  // Node quotes the offending token first: 'pos', '--foo', '-c, --config-dir <value>', '-c'.
  const quoted = /'([^']*)'/.exec(error.message)?.[1] ?? '';
  const name = quoted.split(/[ ,=]/)[0] ?? quoted;
  const flag = labels.get(name) ?? name;
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new ConfigError(`unknown option ${name}; see --help`);
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return new ConfigError(`unexpected argument ${JSON.stringify(quoted)}: options take the form --name value; see --help`);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(error.message)) return new ConfigError(`${flag} takes no value`);
      if (/ambiguous/.test(error.message)) {
        const long = flag.split('/').pop() ?? flag;
        return new ConfigError(
          `${flag} needs a value but is followed by another option; for a value starting with "-" write ${long}=<value>`,
        );
      }
      return new ConfigError(`${flag} needs a value`);
    default:
      return new ConfigError(error.message);
  }
}

/** The value, or null when the flag is absent; ConfigError when it is blank. */
export function nonEmpty(value: string | undefined, flag: string, what: string): string | null {
  if (value === undefined) return null;
  if (value.trim() === '') throw new ConfigError(`${flag} needs ${what}, got an empty value`);
  return value;
}

/** `--port`: null when absent; ConfigError unless 1 to 65535. */
export function parsePortFlag(value: string | undefined): number | null {
  if (value === undefined) return null;
  const text = value.trim();
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new ConfigError(`--port must be a whole number from 1 to 65535, got ${JSON.stringify(value)}`);
  }
  return port;
}
