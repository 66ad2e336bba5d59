import type { IncomingMessage, ServerResponse } from 'node:http';
import { refusedUnlessGet } from './router.js';

/** `no-primary`: a --workers worker whose primary (the sequencer of every worker's events) is gone. */
export type Readiness = 'ready' | 'draining' | 'no-primary';

/**
 * `GET /health/live` and `/health/ready` (docs/metrics.md). Ready turns 503 from SIGTERM on, so
 * that a load balancer stops sending clients here before the last ones are closed.
 */
export function answerHealth(status: Readiness | 'live', request: IncomingMessage, response: ServerResponse): void {
  if (refusedUnlessGet(request, response)) return;
  const text = `${JSON.stringify({ status })}\n`;
  response.writeHead(status === 'live' || status === 'ready' ? 200 : 503, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  response.end(request.method === 'HEAD' ? undefined : text);
}
