/** Which handler a request path belongs to; the query string is ignored. */
export type Route = 'ping' | 'events' | 'websocket' | 'not-found';

export function routeOf(url: string | undefined): Route {
  const path = (url ?? '/').split('?', 1)[0]!;
  switch (path) {
    case '/ping':
    case '/ping/':
    case '/notification/ping':
    case '/notification/ping/':
      return 'ping';
    case '/events':
    case '/events/':
      return 'events';
    // Behind nginx the client connects to /notification, which the documented rules rewrite to /.
    case '/':
    case '/notification':
    case '/notification/':
      return 'websocket';
    default:
      return 'not-found';
  }
}
