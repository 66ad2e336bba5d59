/** The one typed configuration every part of the server reads. Built by `loadConfig`. */
import type { HistoryLimits } from '../history/event-history.js';

// The rest of src/ imports its config types, error and defaults from this one module.
export { ConfigError, describeEventsListen } from './setting.js';
export { DEFAULT_LIMITS, DEFAULTS } from './settings.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** `text`: the stock server's `[YYYY-MM-DD HH:MM:SS] [LEVEL] message` lines, plus fields; `json`: pino's JSON lines. */
export type LogFormat = 'text' | 'json';

/** A MySQL or PostgreSQL server holding ccnet's database. */
interface DatabaseServer {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** Used instead of host/port: MySQL's Unix socket, or the directory of PostgreSQL's. */
  socketPath: string | null;
}

/** Where group membership (ccnet `GroupUser`) is read from. */
export type GroupDatabaseConfig = ({ kind: 'mysql'; ssl: boolean } & DatabaseServer) | ({ kind: 'postgres' } & DatabaseServer) | { kind: 'sqlite'; path: string };

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

/** The `limits.*` rows of the table of settings (settings.ts), which say what each one does. */
export interface Limits {
  maxFrameBytes: number;
  maxEventBodyBytes: number;
  sendQueueBytes: number;
  maxConnections: number;
  /** 0: no limit, as for the two below. */
  maxConnectionsPerAddress: number;
  maxConnectionsPerUser: number;
  maxLibrariesPerConnection: number;
  maxFailedSubscribesPerMinute: number;
  /** 0: never. */
  subscribeTimeoutMs: number;
  headerTimeoutMs: number;
}

/** Each field is filled by the row of settings.ts whose `at` (or `partOf`) names it; the row says what it means. */
export interface Config {
  host: string;
  port: number;
  logLevel: LogLevel;
  /** Null: standard output. */
  logFile: string | null;
  /** Null: not chosen, text to a file or a terminal, JSON to a pipe. */
  logFormat: LogFormat | null;
  /** HS256 key, used as the raw bytes of this string. */
  jwtPrivateKey: string;
  /** Where the key came from, for the start-up log (never the key itself). */
  jwtKeySource: string;
  keyGraceMs: number;
  notificationToken: string | null;
  /** Null: no group database, group-targeted permission events are not delivered. */
  groupDatabase: GroupDatabaseConfig | null;
  groupCacheTtlMs: number;
  groupLookupTimeoutMs: number;
  backplane: BackplaneConfig;
  history: HistoryLimits;
  limits: Limits;
  pingIntervalMs: number;
  deadPeerMs: number;
  drainMs: number;
  /** Absent (a Config written by hand): the default, as for longPollWaitMs. */
  gapRefreshWindowMs?: number;
  longPollWaitMs?: number;
  /** Null admits every origin; the desktop client's own forms always are (transport/origin-policy.ts). */
  allowedOrigins: string[] | null;
  trustedProxies: string[];
  /** Null: `POST /events` on the public port, as the stock server does. */
  eventsListen: EventsListen | null;
  metrics: boolean;
  /** Null: the status page is off (404). */
  adminToken: string | null;
  workers: number;
}
