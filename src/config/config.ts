/** The one typed configuration every part of the server reads. Built by `loadConfig`. */
import type { HistoryLimits } from '../history/event-history.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** `text`: the stock server's `[YYYY-MM-DD HH:MM:SS] [LEVEL] message` lines, plus fields; `json`: pino's JSON lines. */
export type LogFormat = 'text' | 'json';

/** Where group membership (ccnet `GroupUser`) is read from. */
export type GroupDatabaseConfig =
  | {
      kind: 'mysql';
      host: string;
      port: number;
      user: string;
      password: string;
      database: string;
      /** Connect through this Unix socket instead of host/port. */
      socketPath: string | null;
      ssl: boolean;
    }
  | {
      kind: 'postgres';
      host: string;
      port: number;
      user: string;
      password: string;
      database: string;
      /** Directory of the Unix socket, when set instead of host. */
      socketPath: string | null;
    }
  | { kind: 'sqlite'; path: string };

/** How events travel between nodes: in this process only, or over Redis to every node. */
export type BackplaneConfig =
  | { kind: 'memory' }
  | {
      kind: 'redis';
      /** Where Redis is and how to reach it; credentials included: never log it. */
      connection: RedisConnection;
      /** The URL with its password masked, for the log. */
      displayUrl: string;
      /** Redis not answering for this long (a frozen host, a dead link) counts as down. */
      timeoutMs: number;
      /** Events accepted while Redis is away are held this long (and up to `holdBytes`) for it to come back; 0: none. */
      holdMs: number;
      holdBytes: number;
    };

/** One Redis endpoint, a primary found through Sentinel, or a Redis Cluster. */
export type RedisConnection =
  | {
      kind: 'single';
      /** `redis://` or `rediss://`, as ioredis reads it. */
      url: string;
    }
  | {
      kind: 'sentinel';
      sentinels: RedisAddress[];
      /** The master group name the sentinels monitor. */
      name: string;
      /** The ACL user and password for the primary and replicas; for the sentinels too unless `sentinelUsername`/`sentinelPassword` say otherwise. */
      username: string | null;
      password: string | null;
      sentinelUsername: string | null;
      sentinelPassword: string | null;
      db: number;
      /** TLS to the sentinels and to the primary (`rediss+sentinel://`). */
      tls: boolean;
    }
  | {
      kind: 'cluster';
      /** Some of the cluster's nodes: the others are found from them. */
      nodes: RedisAddress[];
      username: string | null;
      password: string | null;
      tls: boolean;
    };

export interface RedisAddress {
  host: string;
  port: number;
}

export type EventsListen = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** `127.0.0.1:8084`, `[::1]:8084` or the socket path, for the log. */
export function describeEventsListen(listen: EventsListen): string {
  return listen.kind === 'unix' ? listen.path : `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
}

export interface Limits {
  /** Largest WebSocket message accepted from a client; larger closes the connection (1009). */
  maxFrameBytes: number;
  /** Largest `/events` request body; larger is answered 413. */
  maxEventBodyBytes: number;
  /** Bytes that may wait in one connection's outgoing queue; past it the connection is closed (4000). */
  sendQueueBytes: number;
  /** WebSockets, SSE streams and waiting long polls open at once; past it an upgrade, SSE or poll request is answered 503 with Retry-After. */
  maxConnections: number;
  /**
   * WebSockets, SSE streams and waiting polls open at once from one client address (see
   * `trustedProxies`); past it an upgrade, SSE or poll request is answered 429 with Retry-After; 0: no limit.
   */
  maxConnectionsPerAddress: number;
  /**
   * Connections that may hold a subscription under one user name at once; a subscribe that would
   * make one more is refused (`error` message, and close 4003 when the connection holds nothing else;
   * 429 for an SSE or poll request with nothing else to follow); 0: no limit.
   */
  maxConnectionsPerUser: number;
  /** Libraries one connection may follow; a subscribe past it is answered with an `error` message. */
  maxLibrariesPerConnection: number;
  /** A connection with no accepted subscribe this long after it opened is closed (4001); 0: never. */
  subscribeTimeoutMs: number;
  /**
   * Refused subscribe entries a WebSocket may send per minute (token bucket); past it, closed (4002).
   * SSE and poll requests: one bucket per client address, past it their requests get 429. 0: no limit.
   */
  maxFailedSubscribesPerMinute: number;
  /** A request (the WebSocket upgrade included) whose headers take longer than this is answered 408 and closed. */
  headerTimeoutMs: number;
}

export interface Config {
  host: string;
  port: number;
  logLevel: LogLevel;
  /** Log file path; null writes to standard output. */
  logFile: string | null;
  /** Null: not chosen, text to a file or a terminal, JSON to a pipe. */
  logFormat: LogFormat | null;
  /** HS256 key, used as the raw bytes of this string. */
  jwtPrivateKey: string;
  /** Where the key came from, for the start-up log (never the key itself). */
  jwtKeySource: string;
  /** After a reload changes the key, tokens signed with the previous key are accepted this long; 0: not at all. */
  keyGraceMs: number;
  /** Seafile 10.0 static publisher secret (`notification_token`), or null. */
  notificationToken: string | null;
  /** Null: no group database, group-targeted permission events are not delivered. */
  groupDatabase: GroupDatabaseConfig | null;
  groupCacheTtlMs: number;
  /** A group lookup not answered within this fails (the event is delivered to nobody). */
  groupLookupTimeoutMs: number;
  backplane: BackplaneConfig;
  /** How many events each library keeps for recovery (`history_size`), and how long (`history_ttl`). */
  history: HistoryLimits;
  limits: Limits;
  /** Interval of the shared server ping timer. */
  pingIntervalMs: number;
  /** A connection with no inbound traffic for this long is dropped. */
  deadPeerMs: number;
  /** On SIGTERM/SIGINT, WebSocket closes (1001) are spread over this window. */
  drainMs: number;
  /**
   * After a known gap (a node was cut off from Redis), the desktop clients that may have missed
   * events are closed (1000) spread over this window, to reconnect and re-read their state; 0: never.
   * Absent: the default (DEFAULTS.gapRefreshWindowMs).
   */
  gapRefreshWindowMs?: number;
  /** How long a long poll with nothing to answer waits for the next message (below proxies' read timeouts); absent: the default. */
  longPollWaitMs?: number;
  /**
   * Browser origins (`https://host[:port]`) allowed to open a WebSocket; null admits every
   * origin. The desktop client's own forms are always admitted (see transport/origin-policy.ts).
   */
  allowedOrigins: string[] | null;
  /**
   * Peers (IP addresses and CIDR blocks) whose `X-Forwarded-For` / `X-Real-IP` name the client
   * address; from any other peer those headers are ignored. Empty: trust none.
   */
  trustedProxies: string[];
  /**
   * Where `POST /events` is served instead of the public port: a TCP address or a Unix
   * socket path. Null: on the public port, as the stock server does.
   */
  eventsListen: EventsListen | null;
  /** Whether `GET /metrics` answers (Prometheus text format); 404 when false. */
  metrics: boolean;
  /** The secret of the admin status page at `/status`; null: the page is off (404). */
  adminToken: string | null;
  /**
   * Processes serving the port (`workers`): 1 is a single process; more start a primary that
   * forks them (Node's cluster module) and numbers their events (docs/performance.md).
   */
  workers: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxFrameBytes: 64 * 1024,
  maxEventBodyBytes: 64 * 1024,
  sendQueueBytes: 1024 * 1024,
  maxConnections: 100_000,
  // A 2,000-person office behind one NAT address, each with a desktop client, SeaDrive and a web tab or two.
  maxConnectionsPerAddress: 5_000,
  // Far above one person's devices and tabs, room for a shared lab account; 1 % of max_connections.
  maxConnectionsPerUser: 1_000,
  maxLibrariesPerConnection: 10_000,
  subscribeTimeoutMs: 60_000,
  maxFailedSubscribesPerMinute: 100,
  headerTimeoutMs: 10_000,
};

export const DEFAULTS = {
  port: 8083,
  /** Seafile 12 / stock default when the admin configured the server. */
  configuredHost: '0.0.0.0',
  /** With no configuration at all the server only listens locally. */
  embeddedHost: '127.0.0.1',
  logLevel: 'info' as LogLevel,
  groupCacheTtlMs: 10_000,
  pingIntervalMs: 20_000,
  deadPeerMs: 50_000,
  drainMs: 5_000,
  gapRefreshWindowMs: 10_000,
  longPollWaitMs: 25_000,
  keyGraceMs: 600_000,
  metrics: true,
  redisTimeoutMs: 5_000,
  /** With Sentinel or Cluster: long enough for a failover with down-after-milliseconds of 5 s to 10 s. */
  redisFailoverHoldMs: 30_000,
  redisFailoverHoldBytes: 16 * 1024 * 1024,
  /** A group lookup (pool wait, connect and query) that takes longer fails: the event reaches nobody. */
  groupLookupTimeoutMs: 5_000,
  /** The proxy in the documented deployment runs on the same host. */
  trustedProxies: ['127.0.0.0/8', '::1'] as readonly string[],
  workers: 1,
} as const;

/** Past this, `workers` is a typo: each worker is a whole server process. */
export const MAX_WORKERS = 64;

/** A setting is missing or invalid; the message says which and how to fix it. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
