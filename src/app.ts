/** The composition root: wires config, hub, transports and routes, and owns start, stop and reload. */
import type { AddressInfo } from 'node:net';
import { KeyRing } from './auth/key-ring.js';
import { openBackplane, type ViaPrimary } from './backplane/open-backplane.js';
import { describeEventsListen, type Config } from './config/config.js';
import { planReload, type ReloadPlan } from './config/reload-plan.js';
import { LiveSettings } from './config/settings.js';
import { openGroupDirectory } from './groups/open-group-directory.js';
import { EventEndpoint } from './http/event-endpoint.js';
import { createHttpServer, listen } from './http/listen.js';
import { answerText, Router, type RequestHandler } from './http/router.js';
import { EVENTS_PATHS, publicRoutes } from './http/routes.js';
import { recoverFromGap } from './hub/gap-recovery.js';
import { Hub } from './hub/hub.js';
import type { Logger } from './log.js';
import { Observers } from './observers.js';
import { Admission } from './session/admission.js';
import { Sessions } from './session/client-session.js';
import { LongPollEndpoint } from './transport/long-poll-endpoint.js';
import { SseEndpoint } from './transport/sse-endpoint.js';
import { StockClientRefresh } from './transport/stock-refresh.js';
import { WebSocketEndpoint } from './transport/websocket-endpoint.js';

export interface RunningServer {
  readonly address: AddressInfo;
  readonly websockets: WebSocketEndpoint;
  /** Refuses new WebSockets, closes open ones over the drain window while still answering HTTP, then stops. */
  stop(): Promise<void>;
  /** Takes over what of `next` can change live (SIGHUP), keeping connections; returns what was applied. */
  reload(next: Config): ReloadPlan;
}

export interface StartOptions {
  /** Set in a cluster worker: events travel through the primary. */
  viaPrimary?: ViaPrimary;
}

const BACKPLANE_START_WAIT_MS = 5_000;

export async function startServer(config: Config, logger: Logger, { viaPrimary }: StartOptions = {}): Promise<RunningServer> {
  const now = Date.now;
  const key = Buffer.from(config.jwtPrivateKey, 'utf8');
  const keys = new KeyRing(key, now);
  // Components read what a reload may change from here, when they apply it (config/settings.ts).
  const live = new LiveSettings(config);
  const { limits } = config;
  const groups = config.groupDatabase === null ? null : openGroupDirectory(config.groupDatabase, config.groupCacheTtlMs, config.groupLookupTimeoutMs);
  const observers = new Observers(config, logger, viaPrimary);
  const metrics = observers.counting;
  const backplane = openBackplane(config.backplane, { key, logger, history: config.history, viaPrimary });
  const hub = new Hub({ groups, logger, metrics, now, history: backplane.history });
  const sessions = new Sessions({ hub, key: keys, logger, metrics, now, live });
  const admission = new Admission({ sessions, allowedOrigins: config.allowedOrigins, trustedProxies: config.trustedProxies });
  const websockets = new WebSocketEndpoint({
    sessions,
    admission,
    maxFrameBytes: limits.maxFrameBytes,
    pingIntervalMs: config.pingIntervalMs,
    deadPeerMs: config.deadPeerMs,
  });
  const sse = new SseEndpoint({ sessions, admission, keepAliveMs: config.pingIntervalMs });
  const polls = new LongPollEndpoint({ sessions, admission, live, maxBodyBytes: limits.maxFrameBytes });
  const refresh = new StockClientRefresh({ hub, websockets, logger, live });
  const events = new EventEndpoint({ backplane, key: keys, live, logger, metrics, now });
  observers.readLevelsFrom({
    connections: () => websockets.connections.size,
    fallbacks: () => ({ sse: sse.streams.size, 'long-poll': polls.pending.size }),
    subscriptions: () => hub.subscriptions,
    subscribedLibraries: () => hub.libraries,
    followersOf: (repoId) => hub.followerCount(repoId),
    groupLookups: () => groups?.stats ?? null,
    backplane: () => backplane,
  });

  const publishEvent: RequestHandler = (request, response) => events.handle(request, response);
  const publicRouter = new Router(publicRoutes({
    // With events_listen set, the public listener has no /events at all.
    events:
      config.eventsListen === null
        ? publishEvent
        : (_request, response) => answerText(response, 404, 'not found: events are published on the internal listener (events_listen)'),
    websocket: (request, socket, head) => websockets.handleUpgrade(request, socket, head),
    sse: (request, response) => sse.handle(request, response),
    longPoll: (request, response) => polls.handle(request, response),
    metrics: observers.answerMetrics,
    // A worker without its primary has nobody to number its events (it is about to stop).
    readiness: () =>
      admission.draining ? 'draining' : viaPrimary !== undefined && (!viaPrimary.channel.connected || backplane.state === 'closed') ? 'no-primary' : 'ready',
    status: observers.statusPage,
  }));
  const httpOptions = { headerTimeoutMs: limits.headerTimeoutMs, logger, metrics };
  const server = createHttpServer(publicRouter, httpOptions);
  const eventsServer = config.eventsListen === null ? null : createHttpServer(new Router([{ paths: EVENTS_PATHS, request: publishEvent }]), httpOptions);

  // Joining the cluster first means a node behind the load balancer misses no event; a Redis
  // that is down does not keep the node from serving its own events.
  await backplane.start(BACKPLANE_START_WAIT_MS, {
    deliver: (event) => hub.publish(event),
    followedLibraries: () => hub.followedLibraries(),
    onGap: (gap) => recoverFromGap(gap, hub, refresh),
  });
  try {
    await listen(server, { kind: 'tcp', host: config.host, port: config.port });
    if (eventsServer !== null && config.eventsListen !== null) {
      await listen(eventsServer, config.eventsListen, viaPrimary === undefined);
      logger.info({ eventsListen: describeEventsListen(config.eventsListen) }, `POST /events is served on ${describeEventsListen(config.eventsListen)} only`);
    }
  } catch (err) {
    server.close();
    await backplane.close();
    throw err;
  }

  return {
    address: server.address() as AddressInfo,
    websockets,
    async stop() {
      if (admission.draining) return;
      admission.drain();
      // Fallback clients hold no connection worth spreading out: they come back through their own backoff.
      sse.close();
      polls.close();
      // Keep listening while draining: /health/ready answers 503 and new WebSockets are refused.
      await websockets.drain(live.config.drainMs);
      observers.close();
      server.close();
      eventsServer?.close();
      eventsServer?.closeAllConnections();
      await backplane.close();
      hub.close();
      server.closeAllConnections();
      await groups?.close();
    },
    reload(next) {
      const plan = planReload(live.config, next);
      live.replace(plan.config);
      // The key ring and the logger keep state of their own; every other live setting is read from `live`.
      // The backplane channel stays derived from the start-up key: nodes rotated one after
      // the other keep meeting on it.
      keys.rotate(Buffer.from(plan.config.jwtPrivateKey, 'utf8'), plan.config.keyGraceMs);
      logger.level = plan.config.logLevel;
      return plan;
    },
  };
}
