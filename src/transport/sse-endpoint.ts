import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Outgoing } from '../protocol/outgoing.js';
import type { ClientAddress } from './client-address.js';
import { parseSseRequest } from './fallback-request.js';
import { FallbackEndpoint, RequestSession, type FallbackContext, type RequestCall } from './fallback-session.js';

export interface SseEndpointOptions extends FallbackContext {
  /** A stream silent this long gets a keep-alive comment (the WebSocket ping interval). */
  keepAliveMs: number;
}

/** How long a browser's EventSource waits before reconnecting by itself (the `retry:` field). */
const RETRY_MS = 3000;

/**
 * `GET /notification/sse`: a Server-Sent Events stream of one or more libraries, for clients
 * that cannot hold a WebSocket. Every message is the positioned WebSocket frame as `data:`,
 * with the stream's cursor as `id:`, so that a browser reconnecting with Last-Event-ID resumes
 * every library exactly (docs/fallbacks.md).
 */
export class SseEndpoint extends FallbackEndpoint<SseEndpointOptions> {
  readonly streams = new Set<SseStream>();
  readonly #keepAlive: NodeJS.Timeout;

  constructor(options: SseEndpointOptions) {
    super(options, 'GET', 'sse');
    this.#keepAlive = setInterval(() => {
      const now = options.sessions.now();
      for (const stream of this.streams) stream.keepAlive(now, this.options.keepAliveMs);
    }, Math.max(250, Math.floor(options.keepAliveMs / 2)));
    this.#keepAlive.unref();
  }

  protected serve(request: IncomingMessage, response: ServerResponse, client: ClientAddress): void {
    const header = request.headers['last-event-id'];
    const lastEventId = typeof header === 'string' ? header : undefined;
    const query = new URL(request.url ?? '/', 'http://localhost').searchParams;
    this.open({ request, response, client }, (max) => parseSseRequest(query, lastEventId, max));
  }

  protected session(call: RequestCall): SseStream {
    return new SseStream(this.options, call, this.streams);
  }

  /** Ends every stream (their clients reconnect elsewhere or after the restart) and stops the keep-alive timer. */
  close(): void {
    clearInterval(this.#keepAlive);
    for (const stream of this.streams) stream.endStream('the server is shutting down');
  }
}

/** An SSE stream: encodes each message as an event, keeps the stream alive, ends it when nothing is left to follow. */
export class SseStream extends RequestSession {
  /** Messages of the subscribe, held until it is known the request gets a stream and not a 429. */
  #held: Outgoing[] | null = [];
  #open = true;
  #lastWrite = 0;
  /** send_queue_bytes as it was when the stream opened: past it the stream is ended. */
  readonly #sendQueueBytes = this.sessions.live.limits.sendQueueBytes;

  constructor(
    options: SseEndpointOptions,
    call: RequestCall,
    private readonly streams: Set<SseStream>,
  ) {
    super(options, call);
  }

  start(libraries: number): void {
    this.response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // nginx buffers proxied responses unless told not to; SSE needs each event at once.
      'x-accel-buffering': 'no',
      ...this.cors,
    });
    this.response.on('close', () => this.endStream('the client went away'));
    // The first bytes flush the headers through any proxy: the client knows it is connected.
    this.response.write(`retry: ${RETRY_MS}\n: following ${libraries} libraries\n\n`);
    this.#lastWrite = this.sessions.now();
    this.streams.add(this);
    const held = this.#held!;
    this.#held = null;
    for (const message of held) if (this.#open) this.#writeEvent(message);
    if (this.libraries === 0) this.endStream('no library left to follow: every library was refused');
  }

  protected write(message: Outgoing): void {
    if (this.#held !== null) this.#held.push(message);
    else if (this.#open) {
      this.#writeEvent(message);
      // The hub expired the last library's token: the client comes back with new ones.
      if (message.kind === 'jwt-expired' && this.libraries === 0) this.endStream('no library left to follow');
    }
  }

  #writeEvent({ frame }: Outgoing): void {
    if (this.response.writableLength + frame.length > this.#sendQueueBytes) {
      this.sessions.logger.warn({ subscriber: this.id, remote: this.remote, queuedBytes: this.response.writableLength }, 'SSE client is not reading its messages: send queue overflowed, ending the stream');
      this.endStream('send queue overflow');
      return;
    }
    // A publisher's raw content may hold line breaks between JSON tokens: one data: line each.
    const text = frame.toString('utf8');
    const data = /[\r\n]/.test(text) ? text.split(/\r\n|\r|\n/).map((line) => `data: ${line}\n`).join('') : `data: ${text}\n`;
    this.response.write(`id: ${this.cursorText}\n${data}\n`);
    this.#lastWrite = this.sessions.now();
  }

  keepAlive(now: number, intervalMs: number): void {
    if (this.#open && now - this.#lastWrite >= intervalMs) {
      this.response.write(': keep-alive\n\n');
      this.#lastWrite = now;
    }
  }

  protected stop(): void {
    this.#open = false;
    this.#held = null;
    this.leave();
    this.streams.delete(this);
  }

  endStream(why: string): void {
    if (!this.#open) return;
    this.stop();
    this.sessions.logger.debug({ subscriber: this.id, remote: this.remote }, `SSE stream ended: ${why}`);
    this.response.end();
  }
}
