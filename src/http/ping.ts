import type { IncomingMessage, ServerResponse } from 'node:http';

/** Exactly the stock answer: clients treat any 200 as "a notification server is here". */
const PONG = Buffer.from('{"ret": "pong"}\n');

export function answerPing(request: IncomingMessage, response: ServerResponse): void {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    response.end('use GET\n');
    return;
  }
  response.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': PONG.length });
  response.end(request.method === 'HEAD' ? undefined : PONG);
}
