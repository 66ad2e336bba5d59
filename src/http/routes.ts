/** Which handler a request path belongs to; the query string is ignored. */
export type Route =
  | 'ping'
  | 'events'
  | 'websocket'
  | 'sse'
  | 'long-poll'
  | 'metrics'
  | 'health-live'
  | 'health-ready'
  | 'status-page'
  | 'status-script'
  | 'status-feed'
  | 'not-found';

export function routeOf(url: string | undefined): Route {
  const path = (url ?? '/').split('?', 1)[0]!;
  switch (path) {
    case '/ping':
    case '/ping/':
    case '/notification/ping':
    case '/notification/ping/':
      return 'ping';
    // Seahub posts comment updates to NOTIFICATION_SERVER_URL + "/events", the public URL, and the
    // Seafile 13 cluster template gives seaf-server that URL too: a proxy may pass the prefix on.
    case '/events':
    case '/events/':
    case '/notification/events':
    case '/notification/events/':
      return 'events';
    // Behind nginx the client connects to /notification, which the documented rules rewrite to /.
    case '/':
    case '/notification':
    case '/notification/':
      return 'websocket';
    // The fallbacks for clients without a WebSocket; proxies forward them like /notification/ping.
    case '/sse':
    case '/notification/sse':
      return 'sse';
    case '/poll':
    case '/notification/poll':
      return 'long-poll';
    // Operations endpoints, deliberately not under /notification: the documented proxy rules do
    // not forward them, so they are reached from inside (Prometheus, the orchestrator).
    case '/metrics':
      return 'metrics';
    case '/health/live':
      return 'health-live';
    case '/health/ready':
      return 'health-ready';
    case '/status':
    case '/status/':
      return 'status-page';
    case '/status/app.js':
      return 'status-script';
    case '/status/feed':
      return 'status-feed';
    default:
      return 'not-found';
  }
}
