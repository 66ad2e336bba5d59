import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody } from '../http/request-body.js';
import type { Outgoing } from '../protocol/outgoing.js';
import type { ClientAddress } from './client-address.js';
import { admit, badRequest, corsHeaders, parsedOrRefused } from './fallback-admission.js';
import { parsePollRequest, type FallbackRequest } from './fallback-request.js';
import { HttpSubscriber, planOrRefuse, type HttpSubscriberContext, type SubscribePlan } from './http-subscriber.js';

export interface LongPollEndpointOptions extends HttpSubscriberContext {
  /** Libraries one poll may name (max_libraries_per_connection). */
  maxLibraries: number;
  /** Largest request body (max_frame_bytes, the size of a WebSocket subscribe). */
  maxBodyBytes: number;
  /** An answer is sent as soon as this many bytes of messages are waiting (send_queue_bytes). */
  sendQueueBytes: number;
  /** How long a poll with nothing to answer waits for the next message. */
  waitMs: number;
}

export type LiveLongPollSettings = Pick<LongPollEndpointOptions, 'maxLibraries' | 'maxBodyBytes' | 'sendQueueBytes' | 'waitMs'>;

/**
 * `POST /notification/poll`: long polling, the last resort for clients that can hold neither
 * a WebSocket nor a stream. The body names the libraries with their tokens and the cursor of
 * the previous answer; the answer carries every message after it at once, or waits (bounded)
 * for the next one: `{"cursor": "...", "messages": [<positioned frames>]}` (docs/fallbacks.md).
 */
export class LongPollEndpoint {
  readonly pending = new Set<LongPoll>();

  constructor(private options: LongPollEndpointOptions) {}

  reconfigure(settings: LiveLongPollSettings): void {
    this.options = { ...this.options, ...settings };
  }

  handle(request: IncomingMessage, response: ServerResponse): void {
    const { admission, maxBodyBytes } = this.options;
    const client = admit(request, response, 'POST', admission);
    if (client === null) return;
    readBody(request, maxBodyBytes, {
      body: (body) => this.#serve(request, response, client, body.toString('utf8')),
      tooLarge: () => {
        badRequest(request, response, admission, `the body is larger than ${maxBodyBytes} bytes: name fewer libraries per poll`);
        request.resume();
      },
    });
    request.on('error', (err) => admission.logger.debug({ err }, 'poll request aborted'));
  }

  /** Answers every waiting poll with what it has (its client polls again, elsewhere or after the restart). */
  close(): void {
    for (const poll of this.pending) poll.answer();
  }

  #serve(request: IncomingMessage, response: ServerResponse, client: ClientAddress, body: string): void {
    const { admission, maxLibraries } = this.options;
    const parsed = parsedOrRefused(request, response, admission, () => parsePollRequest(body, maxLibraries));
    if (parsed === null) return;
    const plan = planOrRefuse(request, response, this.options, parsed, client);
    if (plan === null) return;
    admission.metrics.fallbackRequest('long-poll');
    const poll = new LongPoll(this.options, request, response, client, parsed, (answered) => this.pending.delete(answered));
    this.pending.add(poll);
    poll.start(plan);
  }
}

class LongPoll extends HttpSubscriber {
  readonly #frames: Buffer[] = [];
  /** Libraries the request had a cursor for. */
  readonly #resumed: ReadonlySet<string>;
  #bytes = 0;
  #answered = false;
  #timer: NodeJS.Timeout | undefined;
  #soon: NodeJS.Immediate | undefined;

  constructor(
    private readonly options: LongPollEndpointOptions,
    private readonly request: IncomingMessage,
    private readonly response: ServerResponse,
    client: ClientAddress,
    parsed: FallbackRequest,
    private readonly onAnswered: (poll: LongPoll) => void,
  ) {
    super(options, client, parsed);
    this.#resumed = new Set(parsed.cursor.keys());
    response.on('close', () => {
      // The client gave up before the answer: nothing was sent, its cursor has not moved.
      if (!this.#answered) this.#finish();
    });
  }

  start(plan: SubscribePlan): void {
    this.subscribeAll(plan);
    if (!this.#answered && this.#soon === undefined) this.#timer = setTimeout(() => this.answer(), this.options.waitMs);
  }

  protected deliver({ frame, kind, repoId }: Outgoing): void {
    if (this.#answered) return;
    this.#frames.push(frame);
    this.#bytes += frame.length + 1;
    // Anything is news but the `subscribed` that ends a resumed library's replay: it only
    // confirms the cursor. A first poll's `subscribed` gives the client its starting cursor.
    const news = kind !== 'subscribed' || repoId === undefined || !this.#resumed.has(repoId);
    if (news || this.#bytes >= this.options.sendQueueBytes) {
      // Whatever else the same turn delivers (the rest of a replay) goes into the same answer.
      this.#soon ??= setImmediate(() => this.answer());
    }
  }

  answer(): void {
    if (this.#answered) return;
    this.#finish();
    this.response.writeHead(200, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      ...corsHeaders(this.request, this.options.admission.origins),
    });
    this.response.end(`{"cursor":${JSON.stringify(this.cursorText)},"messages":[${this.#frames.join(',')}]}`);
  }

  #finish(): void {
    this.#answered = true;
    clearTimeout(this.#timer);
    if (this.#soon !== undefined) clearImmediate(this.#soon);
    this.leave();
    this.onAnswered(this);
  }
}
