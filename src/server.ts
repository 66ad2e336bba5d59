import { rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { KeyRing } from './auth/key-ring.js';
import type { Backplane } from './backplane/backplane.js';
import { openBackplane, type ViaPrimary } from './backplane/open-backplane.js';
import { DEFAULTS, describeEventsListen, type Config, type EventsListen } from './config/config.js';
import { planReload, type ReloadPlan } from './config/reload-plan.js';
import { WorkerFigures } from './cluster/worker-figures.js';
import { openGroupDirectory } from './groups/open-group-directory.js';
import { EventEndpoint } from './http/event-endpoint.js';
import { answerHealth, type Readiness } from './http/health.js';
import { answerMetrics } from './http/metrics-endpoint.js';
import { answerPing } from './http/ping.js';
import { routeOf } from './http/routes.js';
import { StatusEndpoint } from './http/status-endpoint.js';
import { Hub } from './hub/hub.js';
import type { Logger } from './log.js';
import { bothMetrics, NO_METRICS } from './metrics/metrics.js';
import { PrometheusMetrics } from './metrics/prometheus-metrics.js';
import { LiveStatus } from './status/live-status.js';
import { WholeStatus } from './status/whole-status.js';
import { ConnectionsPerAddress } from './transport/connection-caps.js';
import { FailuresPerAddress } from './transport/failure-allowance.js';
import type { FallbackAdmission } from './transport/fallback-admission.js';
import { LongPollEndpoint } from './transport/long-poll-endpoint.js';
import { OriginPolicy } from './transport/origin-policy.js';
import { SseEndpoint } from './transport/sse-endpoint.js';
import { StockClientRefresh } from './transport/stock-refresh.js';
import { WebSocketEndpoint } from './transport/websocket-endpoint.js';

export interface RunningServer {
  readonly address: AddressInfo;
  readonly hub: Hub;
  /** How events travel between nodes; its `state` says whether this node is in the cluster. */
  readonly backplane: Backplane;
  readonly websockets: WebSocketEndpoint;
  /** The fallbacks for clients without a WebSocket. */
  readonly sse: SseEndpoint;
  readonly polls: LongPollEndpoint;
  readonly events: EventEndpoint;
  /** Null when metrics are turned off. */
  readonly metrics: PrometheusMetrics | null;
  /**
   * Refuses new WebSockets (503) and turns /health/ready to 503, closes every WebSocket over
   * the drain window while still answering HTTP, then stops listening, leaves the backplane and releases the group database.
   */
  stop(): Promise<void>;
  /**
   * Takes over what `next` changes that can change live (SIGHUP): the JWT key (the previous one
   * stays accepted for `keyGraceMs`), the static token, the log level and some limits. Open
   * connections and their subscriptions are kept. Returns what was applied and what was not.
   */
  reload(next: Config): ReloadPlan;
}

const BACKPLANE_START_WAIT_MS = 5_000;

function refuseUpgrade(socket: Duplex, status: number, reason: string, headers: Record<string, string> = {}, message = reason): void {
  const body = `${message}\n`;
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\n${extra}Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** The composition root: wires config, hub, transports and HTTP routes, and owns start and stop. */
export interface StartOptions {
  /** Set in a cluster worker: events travel through the primary (backplane/ipc-backplane.ts). */
  viaPrimary?: ViaPrimary;
}

export async function startServer(config: Config, logger: Logger, options: StartOptions = {}): Promise<RunningServer> {
  const now = Date.now;
  const key = Buffer.from(config.jwtPrivateKey, 'utf8');
  const keys = new KeyRing(key, now);
  let running = config;
  const groups =
    config.groupDatabase === null ? null : openGroupDirectory(config.groupDatabase, config.groupCacheTtlMs, config.groupLookupTimeoutMs);
  const metrics = config.metrics ? new PrometheusMetrics() : null;
  const status = config.adminToken === null ? null : new LiveStatus();
  const counting =
    status === null
      ? (metrics ?? NO_METRICS)
      : bothMetrics(metrics ?? NO_METRICS, { ...NO_METRICS, eventDelivered: (event, n, s) => status.eventDelivered(event, n, s) });
  // The backplane hands events to the hub only once started, and the hub reads its history.
  const backplane = openBackplane(config.backplane, {
    deliver: (event) => hub.publish(event),
    key,
    logger,
    history: config.history,
    viaPrimary: options.viaPrimary,
    followedLibraries: () => hub.index.libraryIds(),
    onGap: (gap) => {
      // Positioned clients catch up from the history; stock desktop clients are sent to re-read their state.
      // Events another node accepted alone are in no history: its libraries' positioned clients start over.
      // A failover that lost a library's newest events from the history: its positioned clients start over.
      if (gap.cutOff === 'this-node') hub.catchUp();
      else hub.resync(gap.libraries, gap.cutOff === 'history-lost' ? 'history-lost' : 'events-not-shared');
      const why =
        gap.cutOff === 'this-node'
          ? 'back on the backplane after missing other nodes\' events'
          : gap.cutOff === 'history-lost'
            ? 'Redis failed over and lost the newest events of their libraries'
            : `node ${gap.node} was cut off and accepted events alone`;
      refresh.refresh(gap.libraries, why);
    },
  });
  const hub = new Hub({ groups, logger, metrics: counting, now, history: backplane.history });
  // One count per client address for every transport: a WebSocket, an SSE stream, a waiting poll.
  const addresses = new ConnectionsPerAddress({ logger, now, max: config.limits.maxConnectionsPerAddress, trustedProxies: config.trustedProxies });
  const failures = new FailuresPerAddress(config.limits.maxFailedSubscribesPerMinute, now);
  const websockets = new WebSocketEndpoint({
    hub,
    key: keys,
    logger,
    metrics: counting,
    maxFrameBytes: config.limits.maxFrameBytes,
    sendQueueBytes: config.limits.sendQueueBytes,
    pingIntervalMs: config.pingIntervalMs,
    deadPeerMs: config.deadPeerMs,
    now,
    connectionLimits: {
      maxLibraries: config.limits.maxLibrariesPerConnection,
      subscribeTimeoutMs: config.limits.subscribeTimeoutMs,
      maxFailedSubscribesPerMinute: config.limits.maxFailedSubscribesPerMinute,
      maxConnectionsPerUser: config.limits.maxConnectionsPerUser,
    },
    maxConnections: config.limits.maxConnections,
    addresses,
    otherConnections: () => sse.streams.size + polls.pending.size,
    allowedOrigins: config.allowedOrigins,
  });
  let draining = false;
  const admission: FallbackAdmission = {
    logger,
    metrics: counting,
    origins: config.allowedOrigins === null ? null : new OriginPolicy(config.allowedOrigins),
    full: () => websockets.connections.size + sse.streams.size + polls.pending.size >= running.limits.maxConnections,
    draining: () => draining,
    addresses,
    failures,
    maxConnectionsPerUser: () => running.limits.maxConnectionsPerUser,
  };
  const fallbackContext = { hub, key: keys, logger, metrics: counting, now, admission, maxLibraries: config.limits.maxLibrariesPerConnection, sendQueueBytes: config.limits.sendQueueBytes };
  const sse = new SseEndpoint({ ...fallbackContext, keepAliveMs: config.pingIntervalMs });
  const polls = new LongPollEndpoint({ ...fallbackContext, maxBodyBytes: config.limits.maxFrameBytes, waitMs: config.longPollWaitMs ?? DEFAULTS.longPollWaitMs });
  const refresh = new StockClientRefresh({ hub, connections: websockets.connections, logger, windowMs: config.gapRefreshWindowMs ?? DEFAULTS.gapRefreshWindowMs });
  const events = new EventEndpoint({
    backplane,
    credentials: { key: keys, staticToken: config.notificationToken },
    maxBodyBytes: config.limits.maxEventBodyBytes,
    logger,
    metrics: counting,
    now,
  });
  metrics?.readLevelsFrom({
    connections: () => websockets.connections.size,
    fallbacks: () => ({ sse: sse.streams.size, 'long-poll': polls.pending.size }),
    subscriptions: () => hub.index.size,
    subscribedLibraries: () => hub.index.libraries,
    groupLookups: () => groups?.stats ?? null,
    backplane: () => ({ kind: backplane.kind, state: backplane.state, stats: backplane.stats }),
  });
  status?.readLevelsFrom({
    connections: () => websockets.connections.size,
    subscriptions: () => hub.index.size,
    subscribedLibraries: () => hub.index.libraries,
    followersOf: (repoId) => hub.index.followers(repoId)?.size ?? 0,
  });
  // Under --workers, /metrics and the status page answer for the whole server (cluster/whole-server-figures.ts).
  const { viaPrimary } = options;
  const figures =
    viaPrimary === undefined
      ? null
      : new WorkerFigures({ ...viaPrimary, metrics, status, followersOf: (repoId) => hub.index.followers(repoId)?.size ?? 0 });
  const exposition = figures ?? metrics;
  const whole =
    figures === null || viaPrimary === undefined
      ? undefined
      : new WholeStatus(viaPrimary.workerId, config.workers, (points, repoIds) => figures.statusShares(points, repoIds));
  const statusPage =
    status === null || config.adminToken === null ? null : new StatusEndpoint({ token: config.adminToken, status, logger, whole });
  // A worker without its primary has nobody to number its events (it is about to stop).
  const readiness = (): Readiness =>
    draining ? 'draining' : viaPrimary !== undefined && (!viaPrimary.channel.connected || backplane.state === 'closed') ? 'no-primary' : 'ready';

  const { headerTimeoutMs } = config.limits;
  const httpOptions = {
    headersTimeout: headerTimeoutMs,
    requestTimeout: Math.max(headerTimeoutMs, 300_000),
    // Node checks the timeouts on this interval (30 s by default), which would let a slow
    // header drip live far past its deadline.
    connectionsCheckingInterval: Math.min(5_000, Math.max(250, Math.floor(headerTimeoutMs / 4))),
  };
  const server = createServer(httpOptions, (request: IncomingMessage, response: ServerResponse) => {
    const route = routeOf(request.url);
    switch (route) {
      case 'ping':
        answerPing(request, response);
        return;
      case 'events':
        if (eventsServer === null) events.handle(request, response);
        else {
          response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
          response.end('not found: events are published on the internal listener (events_listen)\n');
        }
        return;
      case 'metrics':
        answerMetrics(metrics === null ? null : exposition, logger, request, response);
        return;
      case 'health-live':
        answerHealth('live', readiness(), request, response);
        return;
      case 'health-ready':
        answerHealth('ready', readiness(), request, response);
        return;
      case 'status-page':
      case 'status-script':
      case 'status-feed':
        if (statusPage === null) {
          response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
          response.end('not found: the status page is off (set NOTIFICATION_SERVER_ADMIN_TOKEN)\n');
        } else {
          statusPage.handle(route === 'status-page' ? 'page' : route === 'status-script' ? 'script' : 'feed', request, response);
        }
        return;
      case 'sse':
        sse.handle(request, response);
        return;
      case 'long-poll':
        polls.handle(request, response);
        return;
      case 'websocket':
        response.writeHead(426, { upgrade: 'websocket', 'content-type': 'text/plain; charset=utf-8' });
        response.end('this is the notification server: connect with a WebSocket\n');
        return;
      case 'not-found':
        response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
        response.end('not found\n');
    }
  });
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (routeOf(request.url) !== 'websocket') refuseUpgrade(socket, 404, 'Not Found');
    else if (draining) {
      counting.requestRefused('draining');
      refuseUpgrade(socket, 503, 'Service Unavailable', {}, 'the server is shutting down');
    } else {
      const refusal = websockets.refusal(request);
      if (refusal !== null) {
        counting.requestRefused(refusal.why);
        refuseUpgrade(socket, refusal.status, refusal.reason, refusal.headers, refusal.message);
      } else websockets.handleUpgrade(request, socket, head);
    }
  });
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    logger.debug({ err }, 'bad HTTP request');
    // Node reports a request whose headers did not arrive within headersTimeout this way.
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    counting.requestRefused(timedOut ? 'timeout' : 'bad-request');
    if (!socket.writable) socket.destroy();
    else if (timedOut) refuseUpgrade(socket, 408, 'Request Timeout');
    else refuseUpgrade(socket, 400, 'Bad Request');
  });

  // Publishers only: the public port then has no /events (nor /notification/events) at all.
  const eventsServer =
    config.eventsListen === null
      ? null
      : createServer(httpOptions, (request: IncomingMessage, response: ServerResponse) => {
          if (routeOf(request.url) === 'events') events.handle(request, response);
          else {
            response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
            response.end('not found: this listener serves POST /events (and /notification/events) only\n');
          }
        });

  // Joining the cluster first means a node behind the load balancer misses no event; a Redis
  // that is down does not keep the node from serving its own events.
  await backplane.start(BACKPLANE_START_WAIT_MS);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch(async (err: unknown) => {
    await backplane.close();
    throw err;
  });
  if (eventsServer !== null && config.eventsListen !== null) {
    const where = config.eventsListen;
    // Workers share the primary's socket: none may remove the file another one listens on.
    await listenForEvents(eventsServer, where, options.viaPrimary === undefined).catch(async (err: unknown) => {
      server.close();
      await backplane.close();
      throw err;
    });
    logger.info({ eventsListen: describeEventsListen(where) }, `POST /events is served on ${describeEventsListen(where)} only`);
  }
  const address = server.address() as AddressInfo;

  return {
    address,
    hub,
    backplane,
    websockets,
    sse,
    polls,
    events,
    metrics,
    async stop() {
      if (draining) return;
      draining = true;
      // Fallback clients hold no connection worth spreading out: they come back through their own backoff.
      sse.close();
      polls.close();
      // Keep listening while draining: /health/ready answers 503 and new WebSockets are refused.
      await websockets.drain(running.drainMs);
      statusPage?.close();
      figures?.close();
      server.close();
      eventsServer?.close();
      eventsServer?.closeAllConnections();
      await backplane.close();
      hub.close();
      server.closeAllConnections();
      await groups?.close();
    },
    reload(next) {
      const plan = planReload(running, next);
      running = plan.config;
      // The backplane channel stays derived from the start-up key: nodes rotated one after
      // the other keep meeting on it.
      keys.rotate(Buffer.from(running.jwtPrivateKey, 'utf8'), running.keyGraceMs);
      logger.level = running.logLevel;
      refresh.reconfigure(running.gapRefreshWindowMs ?? DEFAULTS.gapRefreshWindowMs);
      events.reconfigure({ staticToken: running.notificationToken, maxBodyBytes: running.limits.maxEventBodyBytes });
      const fallbackLimits = { maxLibraries: running.limits.maxLibrariesPerConnection, sendQueueBytes: running.limits.sendQueueBytes };
      sse.reconfigure(fallbackLimits);
      polls.reconfigure({ ...fallbackLimits, maxBodyBytes: running.limits.maxFrameBytes, waitMs: running.longPollWaitMs ?? DEFAULTS.longPollWaitMs });
      addresses.max = running.limits.maxConnectionsPerAddress;
      failures.reconfigure(running.limits.maxFailedSubscribesPerMinute);
      websockets.reconfigure({
        sendQueueBytes: running.limits.sendQueueBytes,
        maxConnections: running.limits.maxConnections,
        connectionLimits: {
          maxLibraries: running.limits.maxLibrariesPerConnection,
          subscribeTimeoutMs: running.limits.subscribeTimeoutMs,
          maxFailedSubscribesPerMinute: running.limits.maxFailedSubscribesPerMinute,
          maxConnectionsPerUser: running.limits.maxConnectionsPerUser,
        },
      });
      return plan;
    },
  };
}

async function listenForEvents(server: Server, where: EventsListen, removeStaleSocket: boolean): Promise<void> {
  // A socket file left by a server that died would make listen fail with EADDRINUSE.
  if (where.kind === 'unix' && removeStaleSocket) await removeStaleSocketFile(where.path);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (where.kind === 'unix') server.listen(where.path, done);
    else server.listen(where.port, where.host, done);
  });
}

/** Removes a Unix socket file left by a server that died (the cluster primary does it once for its workers). */
export async function removeStaleSocketFile(path: string): Promise<void> {
  await rm(path, { force: true });
}
