import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LiveSettings } from '../config/settings.js';
import { readBody } from '../http/request-body.js';
import type { Outgoing } from '../protocol/outgoing.js';
import type { ClientAddress } from './client-address.js';
import { parsePollRequest } from './fallback-request.js';
import { badRequest, FallbackEndpoint, RequestSession, type FallbackContext, type RequestCall } from './fallback-session.js';

export interface LongPollEndpointOptions extends FallbackContext {
  /** Largest request body (max_frame_bytes, the size of a WebSocket subscribe). */
  maxBodyBytes: number;
  /** long_poll_wait: how long a poll with nothing to answer waits for the next message. */
  live: { readonly config: Pick<LiveSettings['config'], 'longPollWaitMs'> };
}

/**
 * `POST /notification/poll`: long polling, the last resort for clients that can hold neither
 * a WebSocket nor a stream. The body names the libraries with their tokens and the cursor of
 * the previous answer; the answer carries every message after it at once, or waits (bounded)
 * for the next one: `{"cursor": "...", "messages": [<positioned frames>]}` (docs/fallbacks.md).
 */
export class LongPollEndpoint extends FallbackEndpoint<LongPollEndpointOptions> {
  readonly pending = new Set<LongPoll>();

  constructor(options: LongPollEndpointOptions) {
    super(options, 'POST', 'long-poll');
  }

  protected serve(request: IncomingMessage, response: ServerResponse, client: ClientAddress): void {
    const { admission, maxBodyBytes, sessions } = this.options;
    readBody(request, maxBodyBytes, {
      body: (body) =>
        this.open({ request, response, client }, (max) => parsePollRequest(body.toString('utf8'), max)),
      tooLarge: () => {
        badRequest(request, response, admission, `the body is larger than ${maxBodyBytes} bytes: name fewer libraries per poll`);
        request.resume();
      },
    });
    request.on('error', (err) => sessions.logger.debug({ err }, 'poll request aborted'));
  }

  protected session(call: RequestCall): LongPoll {
    return new LongPoll(this.options, call, this.pending);
  }

  /** Answers every waiting poll with what it has (its client polls again, elsewhere or after the restart). */
  close(): void {
    for (const poll of this.pending) poll.answer();
  }
}

/** A long poll: collects the messages for one answer, and answers at the first news or when its wait is over. */
export class LongPoll extends RequestSession {
  readonly #frames: Buffer[] = [];
  /** Libraries the request had a cursor for. */
  readonly #resumed: ReadonlySet<string>;
  #bytes = 0;
  /** send_queue_bytes as it was when the poll came in: an answer is sent once this many bytes wait. */
  readonly #sendQueueBytes = this.sessions.live.limits.sendQueueBytes;
  #answered = false;
  #timer: NodeJS.Timeout | undefined;
  #soon: NodeJS.Immediate | undefined;

  constructor(
    private readonly options: LongPollEndpointOptions,
    call: RequestCall,
    private readonly pending: Set<LongPoll>,
  ) {
    super(options, call);
    this.#resumed = new Set(call.parsed.cursor.keys());
  }

  /** Waits for news (bounded), unless the subscribe already brought some. */
  start(): void {
    this.pending.add(this);
    this.response.on('close', () => {
      // The client gave up before the answer: nothing was sent, its cursor has not moved.
      if (!this.#answered) this.stop();
    });
    if (this.#soon === undefined) this.#timer = setTimeout(() => this.answer(), this.options.live.config.longPollWaitMs);
  }

  protected write({ frame, kind, repoId }: Outgoing): void {
    if (this.#answered) return;
    this.#frames.push(frame);
    this.#bytes += frame.length + 1;
    // Anything is news but the `subscribed` that ends a resumed library's replay: it only
    // confirms the cursor. A first poll's `subscribed` gives the client its starting cursor.
    const news = kind !== 'subscribed' || repoId === undefined || !this.#resumed.has(repoId);
    if (news || this.#bytes >= this.#sendQueueBytes) {
      // Whatever else the same turn delivers (the rest of a replay) goes into the same answer.
      this.#soon ??= setImmediate(() => this.answer());
    }
  }

  answer(): void {
    if (this.#answered) return;
    this.stop();
    this.response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', ...this.cors });
    this.response.end(`{"cursor":${JSON.stringify(this.cursorText)},"messages":[${this.#frames.join(',')}]}`);
  }

  protected stop(): void {
    this.#answered = true;
    clearTimeout(this.#timer);
    if (this.#soon !== undefined) clearImmediate(this.#soon);
    this.leave();
    this.pending.delete(this);
  }
}
