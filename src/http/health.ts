import type { IncomingMessage, ServerResponse } from 'node:http';

export type Health = 'live' | 'ready';

function json(request: IncomingMessage, response: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  response.end(request.method === 'HEAD' ? undefined : text);
}

/**
 * `GET /health/live`: 200 while the process runs and serves HTTP.
 * `GET /health/ready`: 200 while new WebSockets are accepted, 503 from SIGTERM on (draining),
 * so that a load balancer stops sending clients here before the last ones are closed.
 */
export function answerHealth(which: Health, draining: boolean, request: IncomingMessage, response: ServerResponse): void {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    response.end('use GET\n');
    return;
  }
  if (which === 'live') json(request, response, 200, { status: 'live' });
  else if (draining) json(request, response, 503, { status: 'draining' });
  else json(request, response, 200, { status: 'ready' });
}
