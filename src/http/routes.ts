import type { StatusEndpoint, StatusResource } from './status-endpoint.js';
import { answerHealth, type Readiness } from './health.js';
import { answerPing } from './ping.js';
import { answerText, type RequestHandler, type Route, type UpgradeHandler } from './router.js';

/**
 * Seahub posts comment updates to NOTIFICATION_SERVER_URL + "/events", the public URL, and the
 * Seafile 13 cluster template gives seaf-server that URL too: a proxy may pass the prefix on.
 */
export const EVENTS_PATHS = ['/events', '/events/', '/notification/events', '/notification/events/'];

export interface Endpoints {
  events: RequestHandler;
  websocket: UpgradeHandler;
  sse: RequestHandler;
  longPoll: RequestHandler;
  metrics: RequestHandler;
  readiness: () => Readiness;
  /** Null when the status page is off. */
  status: StatusEndpoint | null;
}

/** Every path the public listener answers. */
export function publicRoutes(endpoints: Endpoints): Route[] {
  const { status } = endpoints;
  const statusRoute = (resource: StatusResource): RequestHandler =>
    status === null
      ? (_request, response) => answerText(response, 404, 'not found: the status page is off (set NOTIFICATION_SERVER_ADMIN_TOKEN)')
      : (request, response) => status.handle(resource, request, response);
  return [
    { paths: ['/ping', '/ping/', '/notification/ping', '/notification/ping/'], request: answerPing },
    { paths: EVENTS_PATHS, request: endpoints.events },
    // Behind nginx the client connects to /notification, which the documented rules rewrite to /.
    {
      paths: ['/', '/notification', '/notification/'],
      request: (_request, response) => answerText(response, 426, 'this is the notification server: connect with a WebSocket', { upgrade: 'websocket' }),
      upgrade: endpoints.websocket,
    },
    // The fallbacks for clients without a WebSocket; proxies forward them like /notification/ping.
    { paths: ['/sse', '/notification/sse'], request: endpoints.sse },
    { paths: ['/poll', '/notification/poll'], request: endpoints.longPoll },
    // Operations endpoints, deliberately not under /notification: the documented proxy rules do
    // not forward them, so they are reached from inside (Prometheus, the orchestrator).
    { paths: ['/metrics'], request: endpoints.metrics },
    { paths: ['/health/live'], request: (request, response) => answerHealth('live', request, response) },
    { paths: ['/health/ready'], request: (request, response) => answerHealth(endpoints.readiness(), request, response) },
    { paths: ['/status', '/status/'], request: statusRoute('page') },
    { paths: ['/status/app.js'], request: statusRoute('script') },
    { paths: ['/status/feed'], request: statusRoute('feed') },
  ];
}
