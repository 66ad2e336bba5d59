import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Outgoing } from '../protocol/outgoing.js';
import type { ClientAddress } from './client-address.js';
import { admit, corsHeaders, parsedOrRefused } from './fallback-admission.js';
import { parseSseRequest, type FallbackRequest } from './fallback-request.js';
import { HttpSubscriber, planOrRefuse, type HttpSubscriberContext, type SubscribePlan } from './http-subscriber.js';

export interface SseEndpointOptions extends HttpSubscriberContext {
  /** Libraries one stream may follow (max_libraries_per_connection). */
  maxLibraries: number;
  /** Bytes that may wait unsent on one stream (send_queue_bytes); past it the stream is ended. */
  sendQueueBytes: number;
  /** A stream silent this long gets a keep-alive comment (the WebSocket ping interval). */
  keepAliveMs: number;
}

/** What a reload (SIGHUP) may change, for streams opened after it. */
export type LiveSseSettings = Pick<SseEndpointOptions, 'maxLibraries' | 'sendQueueBytes'>;

/** How long a browser's EventSource waits before reconnecting by itself (the `retry:` field). */
const RETRY_MS = 3000;

/**
 * `GET /notification/sse`: a Server-Sent Events stream of one or more libraries, for clients
 * that cannot hold a WebSocket. Every message is the positioned WebSocket frame as `data:`,
 * with the stream's cursor as `id:`, so that a browser reconnecting with Last-Event-ID resumes
 * every library exactly (docs/fallbacks.md).
 */
export class SseEndpoint {
  readonly streams = new Set<SseStream>();
  readonly #keepAlive: NodeJS.Timeout;

  constructor(private options: SseEndpointOptions) {
    this.#keepAlive = setInterval(() => {
      const now = options.now();
      for (const stream of this.streams) stream.keepAlive(now, this.options.keepAliveMs);
    }, Math.max(250, Math.floor(options.keepAliveMs / 2)));
    this.#keepAlive.unref();
  }

  reconfigure(settings: LiveSseSettings): void {
    this.options = { ...this.options, ...settings };
  }

  handle(request: IncomingMessage, response: ServerResponse): void {
    const { admission, maxLibraries } = this.options;
    const client = admit(request, response, 'GET', admission);
    if (client === null) return;
    const lastEventId = request.headers['last-event-id'];
    const parsed = parsedOrRefused(request, response, admission, () =>
      parseSseRequest(new URL(request.url ?? '/', 'http://localhost').searchParams, typeof lastEventId === 'string' ? lastEventId : undefined, maxLibraries),
    );
    if (parsed === null) return;
    const plan = planOrRefuse(request, response, this.options, parsed, client);
    if (plan === null) return;
    admission.metrics.fallbackRequest('sse');
    const stream = new SseStream(this.options, request, response, client, parsed, (ended) => this.streams.delete(ended));
    this.streams.add(stream);
    stream.start(plan);
  }

  /** Ends every stream (their clients reconnect elsewhere or after the restart) and stops the keep-alive timer. */
  close(): void {
    clearInterval(this.#keepAlive);
    for (const stream of this.streams) stream.end('the server is shutting down');
  }
}

class SseStream extends HttpSubscriber {
  #open = true;
  #started = false;
  #lastWrite: number;

  constructor(
    private readonly options: SseEndpointOptions,
    request: IncomingMessage,
    private readonly response: ServerResponse,
    client: ClientAddress,
    parsed: FallbackRequest,
    private readonly onEnd: (stream: SseStream) => void,
  ) {
    super(options, client, parsed);
    this.#lastWrite = options.now();
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // nginx buffers proxied responses unless told not to; SSE needs each event at once.
      'x-accel-buffering': 'no',
      ...corsHeaders(request, options.admission.origins),
    });
    response.on('close', () => this.end('the client went away'));
    // The first bytes flush the headers through any proxy: the client knows it is connected.
    response.write(`retry: ${RETRY_MS}\n: following ${parsed.entries.length} libraries\n\n`);
  }

  start(plan: SubscribePlan): void {
    this.subscribeAll(plan);
    this.#started = true;
    if (this.subscribed === 0) this.end('no library left to follow: every library was refused');
  }

  protected deliver({ frame, kind }: Outgoing): void {
    if (!this.#open) return;
    if (this.response.writableLength + frame.length > this.options.sendQueueBytes) {
      this.options.logger.warn({ subscriber: this.id, remote: this.remote, queuedBytes: this.response.writableLength }, 'SSE client is not reading its messages: send queue overflowed, ending the stream');
      this.end('send queue overflow');
      return;
    }
    // A publisher's raw content may hold line breaks between JSON tokens: one data: line each.
    const text = frame.toString('utf8');
    const data = /[\r\n]/.test(text) ? text.split(/\r\n|\r|\n/).map((line) => `data: ${line}\n`).join('') : `data: ${text}\n`;
    this.response.write(`id: ${this.cursorText}\n${data}\n`);
    this.#lastWrite = this.options.now();
    // The hub expired the last library's token (or it was refused at the start): the client comes back with new ones.
    if (this.#started && kind === 'jwt-expired' && this.subscribed === 0) this.end('no library left to follow');
  }

  keepAlive(now: number, intervalMs: number): void {
    if (this.#open && now - this.#lastWrite >= intervalMs) {
      this.response.write(': keep-alive\n\n');
      this.#lastWrite = now;
    }
  }

  end(why: string): void {
    if (!this.#open) return;
    this.#open = false;
    this.leave();
    this.options.logger.debug({ subscriber: this.id, remote: this.remote }, `SSE stream ended: ${why}`);
    this.response.end();
    this.onEnd(this);
  }
}
