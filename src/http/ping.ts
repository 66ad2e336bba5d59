import type { IncomingMessage, ServerResponse } from 'node:http';
import { refusedUnlessGet } from './router.js';

/** Exactly the stock answer: clients treat any 200 as "a notification server is here". */
const PONG = Buffer.from('{"ret": "pong"}\n');

export function answerPing(request: IncomingMessage, response: ServerResponse): void {
  if (refusedUnlessGet(request, response)) return;
  response.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': PONG.length });
  response.end(request.method === 'HEAD' ? undefined : PONG);
}
