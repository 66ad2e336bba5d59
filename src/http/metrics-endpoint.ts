import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.js';

/** Where the text comes from: this process's registry, or under --workers the whole server's (cluster/worker-figures.ts). */
export interface MetricsExposition {
  exposition(): Promise<{ contentType: string; body: string }>;
}

/**
 * True when a reverse proxy forwarded the request: nginx and Apache, as documented, add
 * `X-Forwarded-For`. A prefix rule like nginx's `location /notification` also forwards
 * `/notificationmetrics` to `/metrics`, so such requests are treated as coming from outside.
 */
export function forwardedByProxy(request: IncomingMessage): boolean {
  const { headers } = request;
  return headers['x-forwarded-for'] !== undefined || headers['forwarded'] !== undefined || headers['x-real-ip'] !== undefined;
}

function notFound(response: ServerResponse, why: string): void {
  response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
  response.end(`not found: ${why}\n`);
}

/**
 * `GET /metrics`: the Prometheus text format, to direct requests only; 404 when metrics are
 * turned off or the request came through a proxy.
 */
export function answerMetrics(metrics: MetricsExposition | null, logger: Logger, request: IncomingMessage, response: ServerResponse): void {
  if (metrics === null) {
    notFound(response, 'metrics are turned off (NOTIFICATION_SERVER_METRICS)');
    return;
  }
  if (forwardedByProxy(request)) {
    notFound(response, 'metrics are served to direct requests only, not through a proxy');
    return;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    response.end('use GET\n');
    return;
  }
  metrics.exposition().then(
    ({ contentType, body }) => {
      response.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      response.end(request.method === 'HEAD' ? undefined : body);
    },
    (err: unknown) => {
      logger.error({ err }, 'collecting metrics failed');
      response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      response.end('collecting metrics failed\n');
    },
  );
}
