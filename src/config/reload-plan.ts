import { isDeepStrictEqual } from 'node:util';
import type { Config } from './config.js';

/**
 * What a reload (SIGHUP) does with a freshly loaded configuration. Settings that can change
 * without dropping a connection are taken over; those bound to a socket, a database pool or
 * a timer made at start are kept and named, so the admin knows a restart is needed.
 */
export interface ReloadPlan {
  /** The configuration to run with: `next` for what changes live, the running one for the rest. */
  config: Config;
  /** Settings whose new value takes effect now (names as in seafile.conf [notification]). */
  applied: string[];
  /** Settings that changed but keep their old value until a restart. */
  needsRestart: string[];
}

type Setting = { name: string; read: (config: Config) => unknown };

const LIVE: readonly Setting[] = [
  { name: 'jwt_private_key', read: (c) => c.jwtPrivateKey },
  { name: 'key_grace', read: (c) => c.keyGraceMs },
  { name: 'notification_token', read: (c) => c.notificationToken },
  { name: 'log_level', read: (c) => c.logLevel },
  { name: 'drain_seconds', read: (c) => c.drainMs },
  { name: 'gap_refresh_window', read: (c) => c.gapRefreshWindowMs },
  { name: 'long_poll_wait', read: (c) => c.longPollWaitMs },
  { name: 'max_connections', read: (c) => c.limits.maxConnections },
  { name: 'max_connections_per_address', read: (c) => c.limits.maxConnectionsPerAddress },
  { name: 'max_event_bytes', read: (c) => c.limits.maxEventBodyBytes },
  // These five are read when a connection opens: connections already open keep theirs.
  { name: 'send_queue_bytes', read: (c) => c.limits.sendQueueBytes },
  { name: 'max_libraries_per_connection', read: (c) => c.limits.maxLibrariesPerConnection },
  { name: 'subscribe_timeout', read: (c) => c.limits.subscribeTimeoutMs },
  { name: 'max_failed_subscribes_per_minute', read: (c) => c.limits.maxFailedSubscribesPerMinute },
  { name: 'max_connections_per_user', read: (c) => c.limits.maxConnectionsPerUser },
];

const RESTART: readonly Setting[] = [
  { name: 'host', read: (c) => c.host },
  { name: 'port', read: (c) => c.port },
  { name: 'log file (-l)', read: (c) => c.logFile },
  { name: 'log_format', read: (c) => c.logFormat },
  { name: 'group database', read: (c) => c.groupDatabase },
  { name: 'group_cache_ttl', read: (c) => c.groupCacheTtlMs },
  { name: 'group_lookup_timeout', read: (c) => c.groupLookupTimeoutMs },
  { name: 'Redis backplane (redis_url, redis_timeout, redis_failover_hold)', read: (c) => c.backplane },
  { name: 'history (history_size, history_ttl)', read: (c) => c.history },
  { name: 'max_frame_bytes', read: (c) => c.limits.maxFrameBytes },
  { name: 'header_timeout', read: (c) => c.limits.headerTimeoutMs },
  { name: 'ping_interval', read: (c) => c.pingIntervalMs },
  { name: 'dead_peer_timeout', read: (c) => c.deadPeerMs },
  { name: 'allowed_origins', read: (c) => c.allowedOrigins },
  { name: 'trusted_proxies', read: (c) => c.trustedProxies },
  { name: 'events_listen', read: (c) => c.eventsListen },
  { name: 'metrics', read: (c) => c.metrics },
  { name: 'admin_token', read: (c) => c.adminToken },
  { name: 'workers', read: (c) => c.workers },
];

const changed = (running: Config, next: Config) => (setting: Setting) =>
  !isDeepStrictEqual(setting.read(running), setting.read(next));

export function planReload(running: Config, next: Config): ReloadPlan {
  const config: Config = {
    ...running,
    jwtPrivateKey: next.jwtPrivateKey,
    jwtKeySource: next.jwtKeySource,
    keyGraceMs: next.keyGraceMs,
    notificationToken: next.notificationToken,
    logLevel: next.logLevel,
    drainMs: next.drainMs,
    limits: {
      ...running.limits,
      maxConnections: next.limits.maxConnections,
      maxConnectionsPerAddress: next.limits.maxConnectionsPerAddress,
      maxConnectionsPerUser: next.limits.maxConnectionsPerUser,
      maxEventBodyBytes: next.limits.maxEventBodyBytes,
      sendQueueBytes: next.limits.sendQueueBytes,
      maxLibrariesPerConnection: next.limits.maxLibrariesPerConnection,
      subscribeTimeoutMs: next.limits.subscribeTimeoutMs,
      maxFailedSubscribesPerMinute: next.limits.maxFailedSubscribesPerMinute,
    },
  };
  // Optional (absent: the default), so it is only present when set.
  if (next.gapRefreshWindowMs === undefined) delete config.gapRefreshWindowMs;
  else config.gapRefreshWindowMs = next.gapRefreshWindowMs;
  if (next.longPollWaitMs === undefined) delete config.longPollWaitMs;
  else config.longPollWaitMs = next.longPollWaitMs;
  return {
    config,
    applied: LIVE.filter(changed(running, next)).map((s) => s.name),
    needsRestart: RESTART.filter(changed(running, next)).map((s) => s.name),
  };
}
