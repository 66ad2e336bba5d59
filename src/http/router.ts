import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

export type RequestHandler = (request: IncomingMessage, response: ServerResponse) => void;
export type UpgradeHandler = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** Exact paths (the query string is ignored) and what answers them. */
export interface Route {
  paths: readonly string[];
  request: RequestHandler;
  /** Absent: an upgrade on these paths is answered 404. */
  upgrade?: UpgradeHandler;
}

/** One lookup from a path to its handler, for plain requests and upgrades alike. */
export class Router {
  readonly #routes = new Map<string, Route>();

  constructor(routes: readonly Route[]) {
    for (const route of routes) {
      for (const path of route.paths) {
        if (this.#routes.has(path)) throw new Error(`two routes for ${path}`);
        this.#routes.set(path, route);
      }
    }
  }

  readonly request: RequestHandler = (request, response) => {
    const route = this.#routes.get(pathOf(request.url));
    if (route !== undefined) route.request(request, response);
    else answerText(response, 404, 'not found');
  };

  readonly upgrade: UpgradeHandler = (request, socket, head) => {
    const upgrade = this.#routes.get(pathOf(request.url))?.upgrade;
    if (upgrade !== undefined) upgrade(request, socket, head);
    else answerRaw(socket, 404, 'Not Found');
  };
}

function pathOf(url: string | undefined): string {
  return (url ?? '/').split('?', 1)[0]!;
}

/** A plain-text answer: `text` and a newline, or no body when `text` is empty. */
export function answerText(response: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  const body = text === '' ? '' : `${text}\n`;
  response.writeHead(status, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

/** Answers 405 to any method but GET and HEAD; true when it did. */
export function refusedUnlessGet(request: IncomingMessage, response: ServerResponse): boolean {
  if (request.method === 'GET' || request.method === 'HEAD') return false;
  answerText(response, 405, 'use GET', { allow: 'GET, HEAD' });
  return true;
}

/** Answers an HTTP request on a socket no response owns (an upgrade, a client error), then closes it. */
export function answerRaw(socket: Duplex, status: number, message: string, retryAfterSeconds?: number): void {
  const body = `${message}\n`;
  const retry = retryAfterSeconds === undefined ? '' : `Retry-After: ${retryAfterSeconds}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n${retry}Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
