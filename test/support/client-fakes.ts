/** A hand-driven clock and WebSocket for the client's unit tests. */
import type { Clock, TimerHandle, WebSocketConstructor, WebSocketLike } from '#client';

interface Timer {
  id: number;
  at: number;
  callback: () => void;
}

/** Lets promise callbacks (a token provider's answer) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Timers that fire only when the test advances time. */
export class FakeClock implements Clock {
  #now = Date.UTC(2026, 0, 1);
  #nextId = 1;
  readonly #timers = new Map<number, Timer>();

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle as number);
  }

  /** The delays of the pending timers, soonest first. */
  pending(): number[] {
    return [...this.#timers.values()].map((timer) => timer.at - this.#now).sort((a, b) => a - b);
  }

  /** Moves time forward, firing each due timer at its own time and settling promises after it. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      const due = [...this.#timers.values()].filter((timer) => timer.at <= target).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (due === undefined) break;
      this.#timers.delete(due.id);
      this.#now = due.at;
      due.callback();
      await settle();
    }
    this.#now = target;
    await settle();
  }

  /** Fires the next pending timer (whatever its delay) and returns the delay it had. */
  async fireNext(): Promise<number> {
    const next = this.pending()[0];
    if (next === undefined) throw new Error('no pending timer');
    await this.advance(next);
    return next;
  }
}

export interface SentMessage {
  type: string;
  content: { repos: Array<{ id: string; jwt_token?: string; [field: string]: unknown }> };
}

/** One client connection, driven from the server's side by the test. */
export class FakeSocket implements WebSocketLike {
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly sent: string[] = [];
  closedByClient: { code: number | undefined; reason: string | undefined } | undefined;
  readonly #pingListeners: Array<() => void> = [];

  constructor(
    readonly url: string,
    reportsPings: boolean,
  ) {
    if (reportsPings) this.on = (_event, listener) => this.#pingListeners.push(listener);
  }

  on?: (event: 'ping', listener: () => void) => unknown;

  send(data: string): void {
    if (this.closedByClient !== undefined) throw new Error('send after close');
    this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
  }

  get messages(): SentMessage[] {
    return this.sent.map((text) => JSON.parse(text) as SentMessage);
  }

  /** The libraries and tokens of the subscribe messages sent so far. */
  get subscribed(): Array<{ id: string; token: string | undefined }> {
    return this.messages
      .filter((message) => message.type === 'subscribe')
      .flatMap((message) => message.content.repos.map((repo) => ({ id: repo.id, token: repo.jwt_token })));
  }

  accept(): void {
    this.onopen?.({});
  }

  /** The connection fails or ends (a refused handshake looks the same: 1006). */
  drop(code = 1006, reason = ''): void {
    this.onclose?.({ code, reason });
  }

  deliver(type: string, content: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify({ type, content }) });
  }

  deliverRaw(data: unknown): void {
    this.onmessage?.({ data });
  }

  ping(): void {
    for (const listener of this.#pingListeners) listener();
  }
}

/** A WebSocket class whose instances the test drives; `reportsPings` makes it look like `ws`. */
export function fakeWebSocket(options: { reportsPings?: boolean } = {}): { WebSocket: WebSocketConstructor; sockets: FakeSocket[]; last(): FakeSocket } {
  const sockets: FakeSocket[] = [];
  const WebSocket = class extends FakeSocket {
    constructor(url: string) {
      super(url, options.reportsPings ?? false);
      sockets.push(this);
    }
  };
  return {
    WebSocket,
    sockets,
    last: () => {
      const socket = sockets.at(-1);
      if (socket === undefined) throw new Error('no socket was opened');
      return socket;
    },
  };
}

/** A deterministic jitter source cycling through the given values. */
export function cyclingRandom(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

/** One request the client made through FakeFetch, answered by the test. */
export class FakeRequest {
  #resolve!: (response: Response) => void;
  #reject!: (error: unknown) => void;
  #stream: ReadableStreamDefaultController<Uint8Array> | undefined;
  readonly response: Promise<Response>;
  aborted = false;

  constructor(
    readonly url: URL,
    readonly init: RequestInit,
  ) {
    this.response = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    init.signal?.addEventListener('abort', () => {
      this.aborted = true;
      const error = new DOMException('aborted', 'AbortError');
      this.#reject(error);
      try {
        this.#stream?.error(error);
      } catch {
        // Already closed.
      }
    });
  }

  /** The JSON body of a POST. */
  get body(): { cursor: string; repos: Array<{ id: string; jwt_token: string }> } {
    return JSON.parse(String(this.init.body)) as { cursor: string; repos: Array<{ id: string; jwt_token: string }> };
  }

  /** Starts a 200 text/event-stream answer that the test writes with push() and ends with end(). */
  openStream(): void {
    const body = new ReadableStream<Uint8Array>({ start: (controller) => void (this.#stream = controller) });
    this.#resolve(new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } }));
  }

  push(text: string): void {
    this.#stream!.enqueue(new TextEncoder().encode(text));
  }

  end(): void {
    this.#stream!.close();
  }

  answer(status: number, body: unknown): void {
    this.#resolve(new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } }));
  }

  fail(message: string): void {
    this.#reject(new TypeError(message));
  }
}

/** A `fetch` whose requests the test answers; the client's reachability pings are answered by themselves. */
export class FakeFetch {
  readonly requests: FakeRequest[] = [];
  /** The status `/ping` answers with; null: the network is down. */
  pingStatus: number | null = 200;
  readonly pings: string[] = [];
  readonly fetch = (url: string, init: RequestInit): Promise<Response> => {
    if (new URL(url).pathname.endsWith('/ping')) {
      this.pings.push(url);
      if (this.pingStatus === null) return Promise.reject(new TypeError('fetch failed'));
      return Promise.resolve(new Response('{"ret": "pong"}\n', { status: this.pingStatus }));
    }
    const request = new FakeRequest(new URL(url), init);
    this.requests.push(request);
    return request.response;
  };

  last(): FakeRequest {
    const request = this.requests.at(-1);
    if (request === undefined) throw new Error('no request was made');
    return request;
  }
}
