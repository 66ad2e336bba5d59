import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import type { LiveStatus, StatusUpdate } from '../status/live-status.js';
import { STATUS_HTML, STATUS_SCRIPT } from '../status/status-page.js';
import type { WholeStatus } from '../status/whole-status.js';
import { answerText, refusedUnlessGet } from './router.js';

export interface StatusEndpointOptions {
  /** The admin token: the password of HTTP Basic auth (any user name), or a Bearer token. */
  token: string;
  status: LiveStatus;
  logger: Logger;
  /** Under --workers: the page shows the whole server, merged from every worker's figures. */
  whole?: WholeStatus;
}

export type StatusResource = 'page' | 'script' | 'feed';

const REALM = 'Basic realm="notification server status", charset="UTF-8"';

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** The secret a request presents: the Basic password or the Bearer token; null without one. */
function presented(request: IncomingMessage): string | null {
  const header = request.headers.authorization ?? '';
  const [scheme, value] = header.trim().split(/\s+/, 2);
  if (value === undefined) return null;
  if (scheme!.toLowerCase() === 'bearer') return value;
  if (scheme!.toLowerCase() !== 'basic') return null;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? null : decoded.slice(colon + 1);
}

/**
 * `GET /status` (the page), `/status/app.js` (its script) and `/status/feed` (server-sent
 * events: a snapshot, then one update a second) for admins holding the admin token.
 */
export class StatusEndpoint {
  readonly #tokenDigest: Buffer;
  readonly #feeds = new Set<ServerResponse>();
  readonly #timer: NodeJS.Timeout;
  /** Under --workers: closed seconds waiting for the other workers' figures, oldest first. */
  #unsent: StatusUpdate[] = [];
  #merging = false;

  constructor(private readonly options: StatusEndpointOptions) {
    this.#tokenDigest = digest(options.token);
    this.#timer = setInterval(() => this.#tick(), 1000);
    this.#timer.unref();
  }

  handle(resource: StatusResource, request: IncomingMessage, response: ServerResponse): void {
    if (refusedUnlessGet(request, response)) return;
    const { status, whole } = this.options;
    const secret = presented(request);
    // Digests have one length, so the comparison takes the same time whatever was sent.
    if (secret === null || !timingSafeEqual(digest(secret), this.#tokenDigest)) {
      if (secret !== null) this.options.logger.warn({ remote: request.socket.remoteAddress }, 'status page: wrong admin token');
      answerText(response, 401, 'the status page needs the admin token (NOTIFICATION_SERVER_ADMIN_TOKEN) as the password', { 'www-authenticate': REALM });
      return;
    }
    const common = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
    switch (resource) {
      case 'page':
        response.writeHead(200, {
          ...common,
          'content-type': 'text/html; charset=utf-8',
          'content-security-policy': "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'",
          'referrer-policy': 'no-referrer',
        });
        response.end(request.method === 'HEAD' ? undefined : STATUS_HTML);
        return;
      case 'script':
        response.writeHead(200, { ...common, 'content-type': 'text/javascript; charset=utf-8' });
        response.end(request.method === 'HEAD' ? undefined : STATUS_SCRIPT);
        return;
      case 'feed':
        response.writeHead(200, { ...common, 'content-type': 'text/event-stream; charset=utf-8', 'x-accel-buffering': 'no' });
        if (whole === undefined) this.#open(response, status.snapshot());
        else {
          // The updates start once the snapshot is written, so the page sees the seconds in order.
          void whole.snapshot(status.snapshot()).then((snapshot) => {
            if (!response.destroyed) this.#open(response, snapshot);
          });
        }
    }
  }

  close(): void {
    clearInterval(this.#timer);
    for (const feed of this.#feeds) feed.end();
    this.#feeds.clear();
  }

  #open(response: ServerResponse, snapshot: object): void {
    response.write(`retry: 2000\ndata: ${JSON.stringify({ kind: 'snapshot', ...snapshot })}\n\n`);
    this.#feeds.add(response);
    response.on('close', () => this.#feeds.delete(response));
  }

  #tick(): void {
    const { status, whole } = this.options;
    const update = status.tick();
    if (this.#feeds.size === 0) return;
    if (whole === undefined) this.#send(update);
    else {
      this.#unsent.push(update);
      if (!this.#merging) void this.#mergeUnsent(whole);
    }
  }

  /** One gathering at a time: seconds closed while the workers answer wait for the next one. */
  async #mergeUnsent(whole: WholeStatus): Promise<void> {
    this.#merging = true;
    while (this.#unsent.length > 0) {
      const seconds = this.#unsent;
      this.#unsent = [];
      for (const second of await whole.updates(seconds)) this.#send(second);
    }
    this.#merging = false;
  }

  #send(update: object): void {
    const message = `data: ${JSON.stringify({ kind: 'update', ...update })}\n\n`;
    for (const feed of this.#feeds) feed.write(message);
  }
}
