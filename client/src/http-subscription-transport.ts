import type { Clock, TimerHandle } from './clock.js';
import { encodeCursor, type CloseInfo, type SubscribeEntry, type Transport, type TransportHandlers } from './transport.js';

/** `fetch` as the HTTP transports use it: the global one, or a test's. */
export type FetchFunction = (url: string, init: RequestInit) => Promise<Response>;

export interface HttpTransportOptions {
  fetch?: FetchFunction;
  clock: Clock;
}

/**
 * What SSE and long polling share: neither can add a library to a request in flight, so the
 * transport keeps the set of libraries and starts a new request whenever it changes, with the
 * cursor of every library's last position: the server replays what the old request had not
 * delivered yet, and nothing is lost. Changes made in one turn (a reconnect subscribes every
 * library) are batched into one request.
 */
export abstract class HttpSubscriptionTransport implements Transport {
  /** Keep-alive comments (SSE) and poll answers prove the connection is alive. */
  readonly reportsActivity = true;
  readonly subscribesBeforeOpen = true;
  protected readonly entries = new Map<string, SubscribeEntry>();
  protected readonly fetch: FetchFunction;
  #controller: AbortController | undefined;
  #restartTimer: TimerHandle | undefined;
  #done = false;
  #opened = false;

  constructor(
    protected readonly baseUrl: string,
    protected readonly handlers: TransportHandlers,
    protected readonly options: HttpTransportOptions,
  ) {
    const fetchFunction = options.fetch ?? (globalThis as { fetch?: FetchFunction }).fetch;
    if (fetchFunction === undefined) throw new TypeError('no global fetch here: pass one as the fetch option');
    // Called as a plain function: a browser's fetch throws "Illegal invocation" on any other `this`.
    this.fetch = (url, init) => fetchFunction(url, init);
  }

  subscribe(entry: SubscribeEntry): void {
    this.entries.set(entry.repoId, entry);
    this.#scheduleRestart();
  }

  unsubscribe(repoId: string): void {
    if (this.entries.delete(repoId)) this.#scheduleRestart();
  }

  close(): void {
    this.#done = true;
    this.#abort();
  }

  protected get done(): boolean {
    return this.#done;
  }

  /** The server answered: the connection is open (reported once). */
  protected opened(): void {
    if (this.#opened || this.#done) return;
    this.#opened = true;
    this.handlers.onOpen();
  }

  /** Starts the request for the current libraries; `signal` aborts it when they change. */
  protected abstract start(signal: AbortSignal): Promise<void>;

  protected cursor(): string {
    return encodeCursor(this.entries.keys(), this.handlers.positionOf);
  }

  /** Passes a server message on; a library whose token was refused leaves the set until it is subscribed again. */
  protected deliver(text: string): void {
    if (this.#done) return;
    const repoId = expiredRepo(text);
    if (repoId !== undefined) this.entries.delete(repoId);
    this.handlers.onMessage(text);
  }

  /** The connection is over: reported once, unless the transport was closed or restarted on purpose. */
  protected fail(signal: AbortSignal, info: CloseInfo): void {
    if (this.#done || signal.aborted) return;
    this.#done = true;
    this.#abort();
    this.handlers.onClose(info);
  }

  #scheduleRestart(): void {
    if (this.#done || this.#restartTimer !== undefined) return;
    this.#restartTimer = this.options.clock.setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#done) return;
      this.#controller?.abort();
      this.#controller = undefined;
      // Nothing to follow, nothing that could fail: open.
      if (this.entries.size === 0) {
        this.opened();
        return;
      }
      const controller = new AbortController();
      this.#controller = controller;
      this.start(controller.signal).catch((error: unknown) => {
        this.fail(controller.signal, { code: 0, reason: error instanceof Error ? error.message : String(error) });
      });
    }, 0);
  }

  #abort(): void {
    if (this.#restartTimer !== undefined) this.options.clock.clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    this.#controller?.abort();
    this.#controller = undefined;
  }
}

function expiredRepo(text: string): string | undefined {
  if (!text.startsWith('{"type":"jwt-expired"')) return undefined;
  try {
    const repoId = (JSON.parse(text) as { content?: { repo_id?: unknown } }).content?.repo_id;
    return typeof repoId === 'string' ? repoId : undefined;
  } catch {
    return undefined;
  }
}
