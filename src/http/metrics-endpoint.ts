import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import { answerText, refusedUnlessGet } from './router.js';

/** Where the text comes from: this process's registry, or under --workers the whole server's (cluster/worker-figures.ts). */
export interface MetricsExposition {
  exposition(): Promise<{ contentType: string; body: string }>;
}

/**
 * True when a reverse proxy forwarded the request (docs/metrics.md): a prefix rule like nginx's
 * `location /notification` would also forward `/notificationmetrics` to `/metrics`.
 */
function forwardedByProxy(request: IncomingMessage): boolean {
  const { headers } = request;
  return headers['x-forwarded-for'] !== undefined || headers['forwarded'] !== undefined || headers['x-real-ip'] !== undefined;
}

/** `GET /metrics`: the Prometheus text format, to direct requests only. */
export function answerMetrics(metrics: MetricsExposition | null, logger: Logger, request: IncomingMessage, response: ServerResponse): void {
  if (metrics === null) {
    answerText(response, 404, 'not found: metrics are turned off (NOTIFICATION_SERVER_METRICS)');
    return;
  }
  if (forwardedByProxy(request)) {
    answerText(response, 404, 'not found: metrics are served to direct requests only, not through a proxy');
    return;
  }
  if (refusedUnlessGet(request, response)) return;
  metrics.exposition().then(
    ({ contentType, body }) => {
      response.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      response.end(request.method === 'HEAD' ? undefined : body);
    },
    (err: unknown) => {
      logger.error({ err }, 'collecting metrics failed');
      answerText(response, 500, 'collecting metrics failed');
    },
  );
}
