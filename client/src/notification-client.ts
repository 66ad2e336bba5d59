import { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { parseServerMessage, type LibraryEvents, type Position, type Resync, type ServerMessage } from './events.js';
import type { FetchFunction } from './http-subscription-transport.js';
import { longPollTransport } from './long-poll-transport.js';
import { sseTransport } from './sse-transport.js';
import { tokenExpiry } from './token-expiry.js';
import { endpointUrl, type CloseInfo, type Transport, type TransportFactory } from './transport.js';
import { globalWebSocket, webSocketTransport, type WebSocketConstructor } from './websocket-transport.js';

/**
 * `connecting`: the first connection is being opened. `open`: connected; subscriptions are
 * (re)sent. `reconnecting`: the connection failed or was lost; the next attempt is scheduled
 * or under way. `closed`: close() was called; nothing happens any more.
 */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface NotificationClientOptions {
  /** The server: `wss://seafile.example.com/notification` (http(s) URLs are turned into ws(s)). */
  url: string;
  /** A fresh subscriber token (JWT) for a library; called again whenever one is needed. */
  tokenProvider: (repoId: string) => Promise<string>;
  /** The WebSocket class: required in Node 20 (pass the `ws` package's), the global one otherwise. */
  WebSocket?: WebSocketConstructor;
  /** `fetch` for the SSE and long-poll fallbacks: the global one by default. */
  fetch?: FetchFunction;
  /**
   * Offer the positions extension on the WebSocket, so that a reconnect replays what was
   * missed (default true). The `ws` package refuses a server that does not echo it: set
   * false against a stock server there.
   */
  positions?: boolean;
  /** The transports in order of preference; default WebSocket, then SSE, then long polling. */
  transports?: TransportFactory[];
  /** One transport instead of the list (for tests and custom wires). */
  transport?: TransportFactory;
  /**
   * Failures in a row of one transport before the client asks the server's ping (default 2):
   * if it answers, and one more attempt fails with the server still answering, the next
   * transport is tried.
   */
  fallbackAfter?: number;
  /**
   * On a fallback, try the first transport again in the background this often (default 5 min;
   * 0: never): if it opens, the client moves over to it, resuming from its positions.
   */
  upgradeAfterMs?: number;
  /** Reconnect delays: full jitter under min(maxMs, initialMs * 2^attempt). Default 1 s to 30 s. */
  backoff?: Partial<BackoffOptions>;
  /** A connection open this long resets the reconnect backoff (default 10 s). */
  stableAfterMs?: number;
  /** Refresh a token this long before its `exp` (default 60 s; at most half its remaining life). */
  tokenRefreshMarginMs?: number;
  /**
   * With a transport that reports pings (Node's `ws`): drop the connection after this long
   * without any inbound traffic (default 60 s; the server pings idle clients every 20 s).
   * 0 disables it. Browsers do not report pings: there the browser's own close event decides.
   */
  idleTimeoutMs?: number;
  /** For tests. */
  clock?: Clock;
  /** For tests: the jitter source, uniform in [0, 1). */
  random?: () => number;
}

export type NotificationClientErrorKind =
  /** The token provider threw, rejected or returned no token; retried with backoff. */
  | 'token-provider'
  /** The server refused or expired a library's token (`jwt-expired`); a new one is fetched. */
  | 'token-rejected'
  /** The connection could not be opened or was lost; reconnecting. */
  | 'connection'
  /** The server sent something that is not a valid message; it was ignored. */
  | 'bad-message'
  /** The server answered `{"type": "error"}` (e.g. a message type it does not know). */
  | 'server-error';

/** Something went wrong that the client handles itself; reported for logs and diagnostics. */
export class NotificationClientError extends Error {
  constructor(
    readonly kind: NotificationClientErrorKind,
    message: string,
    readonly repoId?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'NotificationClientError';
  }
}

export interface NotificationClientEvents extends LibraryEvents {
  /** Every message from the server, unknown types included, before any typed event. */
  event: ServerMessage;
  /** Events of this library were missed and cannot be replayed: re-read its state (locks, listing). */
  resync: Resync;
  state: ConnectionState;
  error: NotificationClientError;
}

export type NotificationClientEventName = keyof NotificationClientEvents;

type Listener<N extends NotificationClientEventName> = (payload: NotificationClientEvents[N]) => void;

interface Library {
  readonly repoId: string;
  token: string | undefined;
  /** The token's `exp` in Unix ms, when it has one. */
  expiresAt: number | undefined;
  /** Bumped by every new subscribe attempt: an older attempt's late token is dropped. */
  attempt: number;
  /** Token failures and rejections in a row. */
  readonly retry: Backoff;
  /** A pending token refresh or retry. */
  timer: TimerHandle | undefined;
  /** When the last subscribe was sent. */
  subscribedAt: number | undefined;
  /** The position of the last event (or subscribe answer) received: where a reconnect resumes. */
  position: Position | undefined;
}

const DEFAULTS = { stableAfterMs: 10_000, tokenRefreshMarginMs: 60_000, idleTimeoutMs: 60_000, fallbackAfter: 2, upgradeAfterMs: 300_000 } as const;
/** Never refresh a token sooner than this after fetching it, however short its life. */
const MIN_REFRESH_MS = 1000;

/**
 * A subscriber of the Seafile notification server that stays subscribed: it reconnects
 * forever with capped, jittered backoff, resubscribes every library after each reconnect,
 * fetches a new token on `jwt-expired` and refreshes tokens before they expire.
 */
export class NotificationClient {
  readonly #url: string;
  readonly #tokenProvider: (repoId: string) => Promise<string>;
  readonly #transports: readonly TransportFactory[];
  readonly #fallbackAfter: number;
  /** The transport in use, and how often it failed in a row. */
  #transportIndex = 0;
  #failuresInRow = 0;
  /**
   * The server answered its ping after the transport had failed `fallbackAfter` times: the
   * attempt under way, made after that answer, decides whether the transport is what fails.
   */
  #confirming = false;
  #openedAt = 0;
  /** Whether the server answers its ping; undefined when there is no fetch to ask with. */
  readonly #reachable: (() => Promise<boolean>) | undefined;
  /** A reachability check in flight: the next attempt waits for its verdict. */
  #probing: Promise<void> | undefined;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #backoffOptions: BackoffOptions;
  readonly #backoff: Backoff;
  readonly #stableAfterMs: number;
  readonly #refreshMarginMs: number;
  readonly #idleTimeoutMs: number;
  readonly #listeners = new Map<NotificationClientEventName, Set<(payload: never) => void>>();
  readonly #libraries = new Map<string, Library>();

  #state: ConnectionState = 'connecting';
  #transport: Transport | undefined;
  /** Bumped by every connection attempt: callbacks of an abandoned connection are ignored. */
  #connection = 0;
  #open = false;
  /** Whether subscriptions may be sent on the current connection (see Transport.subscribesBeforeOpen). */
  #ready = false;
  #reconnectTimer: TimerHandle | undefined;
  #stableTimer: TimerHandle | undefined;
  #upgradeTimer: TimerHandle | undefined;
  readonly #upgradeAfterMs: number;
  #idleTimer: TimerHandle | undefined;
  #lastInbound = 0;
  /** Whether anything arrived over the current connection (see #lost). */
  #heard = false;

  constructor(options: NotificationClientOptions) {
    this.#url = checkUrl(options.url);
    if (typeof options.tokenProvider !== 'function') throw new TypeError('tokenProvider must be a function (repoId) => Promise<string>');
    this.#tokenProvider = options.tokenProvider;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#backoffOptions = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.#backoff = new Backoff(this.#backoffOptions, this.#random);
    this.#stableAfterMs = nonNegative('stableAfterMs', options.stableAfterMs ?? DEFAULTS.stableAfterMs);
    this.#refreshMarginMs = nonNegative('tokenRefreshMarginMs', options.tokenRefreshMarginMs ?? DEFAULTS.tokenRefreshMarginMs);
    this.#idleTimeoutMs = nonNegative('idleTimeoutMs', options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs);
    this.#fallbackAfter = Math.max(1, nonNegative('fallbackAfter', options.fallbackAfter ?? DEFAULTS.fallbackAfter));
    this.#upgradeAfterMs = nonNegative('upgradeAfterMs', options.upgradeAfterMs ?? DEFAULTS.upgradeAfterMs);
    this.#transports = options.transports ?? (options.transport !== undefined ? [options.transport] : defaultTransports(options));
    if (this.#transports.length === 0) throw new TypeError('transports must name at least one transport');
    const fetchFunction = options.fetch ?? (globalThis as { fetch?: FetchFunction }).fetch;
    this.#reachable = fetchFunction === undefined ? undefined : () => answersPing(fetchFunction, this.#url, this.#clock);
    this.#connect();
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** The transport in use or being tried: "websocket", "sse" or "long-poll". */
  get transport(): string {
    return this.#transports[this.#transportIndex]!.name;
  }

  /** The last position received for a library, if the server hands them out. */
  positionOf(repoId: string): Position | undefined {
    return this.#libraries.get(repoId)?.position;
  }

  /** The libraries the client keeps subscribed, in the order they were added. */
  get subscriptions(): string[] {
    return [...this.#libraries.keys()];
  }

  /** Follows a library from now on, across reconnects, until unsubscribe(). */
  subscribe(repoId: string): void {
    if (typeof repoId !== 'string' || repoId === '') throw new TypeError('subscribe needs a library id (repo_id)');
    if (this.#state === 'closed' || this.#libraries.has(repoId)) return;
    const library: Library = {
      repoId,
      token: undefined,
      expiresAt: undefined,
      attempt: 0,
      retry: new Backoff(this.#backoffOptions, this.#random),
      timer: undefined,
      subscribedAt: undefined,
      position: undefined,
    };
    this.#libraries.set(repoId, library);
    void this.#subscribeLibrary(library, true);
  }

  unsubscribe(repoId: string): void {
    const library = this.#libraries.get(repoId);
    if (library === undefined) return;
    this.#libraries.delete(repoId);
    this.#clearTimer(library.timer);
    if (this.#ready) this.#transport?.unsubscribe(repoId);
  }

  /** Adds a listener; returns a function that removes it. */
  on<N extends NotificationClientEventName>(name: N, listener: Listener<N>): () => void {
    let set = this.#listeners.get(name);
    if (set === undefined) this.#listeners.set(name, (set = new Set()));
    set.add(listener as (payload: never) => void);
    return () => this.off(name, listener);
  }

  off<N extends NotificationClientEventName>(name: N, listener: Listener<N>): void {
    this.#listeners.get(name)?.delete(listener as (payload: never) => void);
  }

  /** Closes the connection for good and stops every timer. */
  close(): void {
    if (this.#state === 'closed') return;
    for (const library of this.#libraries.values()) this.#clearTimer(library.timer);
    this.#libraries.clear();
    this.#dropConnection();
    this.#clearTimer(this.#reconnectTimer);
    this.#transport?.close(1000, 'client closed');
    this.#transport = undefined;
    this.#setState('closed');
  }

  #connect(): void {
    const connection = ++this.#connection;
    const current = () => connection === this.#connection && this.#state !== 'closed';
    try {
      this.#transport = this.#transports[this.#transportIndex]!.open(
        this.#url,
        {
          onOpen: () => current() && this.#opened(),
          onMessage: (text) => current() && this.#received(text),
          onActivity: () => {
            if (!current()) return;
            this.#lastInbound = this.#clock.now();
            this.#heard = true;
          },
          onClose: (info) => current() && this.#lost(info),
          positionOf: (repoId) => this.#libraries.get(repoId)?.position,
        },
        this.#clock,
      );
    } catch (error) {
      this.#transport = undefined;
      this.#lost({ code: 0, reason: error instanceof Error ? error.message : String(error) });
      return;
    }
    if (this.#transport.subscribesBeforeOpen) {
      this.#lastInbound = this.#clock.now();
      this.#heard = false;
      // A request that never gets an answer (a proxy holding it) is given up like a silent connection.
      if (this.#idleTimeoutMs > 0) this.#watchIdle(this.#idleTimeoutMs);
      this.#subscribeAll();
    }
  }

  #subscribeAll(): void {
    this.#ready = true;
    for (const library of this.#libraries.values()) void this.#subscribeLibrary(library, true);
  }

  #opened(): void {
    this.#open = true;
    const subscribed = this.#transport?.subscribesBeforeOpen === true;
    this.#openedAt = this.#clock.now();
    if (!subscribed) {
      this.#lastInbound = this.#openedAt;
      this.#heard = false;
    }
    this.#setState('open');
    if (this.#state !== 'open') return; // a state listener closed the client
    this.#stableTimer = this.#clock.setTimeout(() => this.#backoff.reset(), this.#stableAfterMs);
    if (this.#transportIndex !== 0 && this.#upgradeAfterMs > 0) this.#scheduleUpgrade();
    if (subscribed) return; // subscribed, and watched, since the connection was made
    if (this.#idleTimeoutMs > 0 && this.#transport?.reportsActivity === true) this.#watchIdle(this.#idleTimeoutMs);
    this.#subscribeAll();
  }

  /** Dead-peer detection for transports that report the server's pings. */
  #watchIdle(delayMs: number): void {
    this.#idleTimer = this.#clock.setTimeout(() => {
      const silentFor = this.#clock.now() - this.#lastInbound;
      if (silentFor < this.#idleTimeoutMs) {
        this.#watchIdle(this.#idleTimeoutMs - silentFor);
        return;
      }
      this.#transport?.close(4001, 'no traffic from the server');
      this.#lost({ code: 4001, reason: `no traffic from the server for ${silentFor} ms` });
    }, delayMs);
  }

  #lost(info: CloseInfo): void {
    const wasOpen = this.#open;
    const transport = this.transport;
    // A transport that reports traffic must have carried some to count as working: an SSE
    // stream that a buffering proxy holds back is open, yet nothing ever arrives through it.
    const silent = this.#transport?.reportsActivity === true && !this.#heard;
    this.#chooseTransport(wasOpen && !silent && this.#clock.now() - this.#openedAt >= this.#stableAfterMs);
    this.#dropConnection();
    this.#transport = undefined;
    for (const library of this.#libraries.values()) {
      this.#clearTimer(library.timer);
      library.timer = undefined;
    }
    const delay = this.#backoff.next();
    const what = wasOpen ? 'connection lost' : 'cannot connect';
    this.#setState('reconnecting');
    const next = this.transport === transport ? '' : ` over ${this.transport}`;
    const checking = this.#probing === undefined ? '' : ' (checking whether the server answers before falling back)';
    this.#emit(
      'error',
      new NotificationClientError('connection', `${what} (${transport}: ${info.code}${info.reason ? ` ${info.reason}` : ''}): retrying${next} in ${delay} ms${checking}`),
    );
    if (this.#state !== 'reconnecting') return; // an error listener closed the client
    this.#reconnectTimer = this.#clock.setTimeout(() => {
      this.#reconnectTimer = undefined;
      const probing = this.#probing;
      if (probing === undefined) this.#connect();
      else void probing.then(() => this.#state === 'reconnecting' && this.#transport === undefined && this.#reconnectTimer === undefined && this.#connect());
    }, delay);
  }

  /**
   * A connection that held `stableAfterMs` sends the next attempt back to the preferred
   * transport. Otherwise a transport hands over to the next (after the last, to the first) only
   * when an attempt of it failed between two answers of the server's ping: a server that is
   * down, or a network that is gone, fails every transport alike. The ping goes out after
   * `fallbackAfter` failures in a row; the attempt made after its answer decides, since the
   * failures before it may date from before the network came back.
   */
  #chooseTransport(heldStable: boolean): void {
    const confirming = this.#confirming;
    this.#confirming = false;
    if (heldStable) {
      this.#transportIndex = 0;
      this.#failuresInRow = 0;
      return;
    }
    if (this.#transports.length === 1 || (!confirming && ++this.#failuresInRow < this.#fallbackAfter)) return;
    this.#failuresInRow = 0;
    const reachable = this.#reachable;
    if (reachable === undefined) {
      this.#fallBack();
      return;
    }
    const probing: Promise<void> = reachable().then((answers) => {
      if (this.#probing !== probing) return;
      this.#probing = undefined;
      if (!answers || this.#state !== 'reconnecting') return;
      if (confirming) this.#fallBack();
      else this.#confirming = true;
    });
    this.#probing = probing;
  }

  /** On a fallback: tries the preferred transport on the side, without disturbing the connection in use. */
  #scheduleUpgrade(): void {
    this.#upgradeTimer = this.#clock.setTimeout(() => {
      this.#upgradeTimer = undefined;
      const connection = this.#connection;
      let settled = false;
      let probe: Transport | undefined;
      const settle = (opened: boolean): void => {
        if (settled) return;
        settled = true;
        probe?.close(1000, 'only checking');
        if (connection !== this.#connection || this.#state !== 'open') return;
        if (opened) this.#moveToPreferred();
        else this.#scheduleUpgrade();
      };
      try {
        probe = this.#transports[0]!.open(
          this.#url,
          { onOpen: () => settle(true), onClose: () => settle(false), onMessage: () => {}, onActivity: () => {}, positionOf: () => undefined },
          this.#clock,
        );
      } catch {
        settle(false);
      }
    }, this.#upgradeAfterMs);
  }

  /** The preferred transport works again: leave the fallback for it; the libraries resume from their positions. */
  #moveToPreferred(): void {
    const fallback = this.#transport;
    this.#dropConnection();
    this.#transport = undefined;
    fallback?.close(1000, 'moving to the preferred transport');
    for (const library of this.#libraries.values()) {
      this.#clearTimer(library.timer);
      library.timer = undefined;
    }
    this.#transportIndex = 0;
    this.#failuresInRow = 0;
    this.#confirming = false;
    this.#connect();
  }

  #fallBack(): void {
    this.#transportIndex = (this.#transportIndex + 1) % this.#transports.length;
  }

  #dropConnection(): void {
    this.#open = false;
    this.#ready = false;
    this.#connection++;
    this.#clearTimer(this.#stableTimer);
    this.#clearTimer(this.#idleTimer);
    this.#clearTimer(this.#upgradeTimer);
    this.#stableTimer = this.#idleTimer = this.#upgradeTimer = undefined;
  }

  #received(text: string): void {
    this.#lastInbound = this.#clock.now();
    this.#heard = true;
    const { message, event } = parseServerMessage(text);
    if (message?.position !== undefined && !this.#advance(message.content['repo_id'], message.position)) return;
    if (message !== null) this.#emit('event', message);
    switch (event.kind) {
      case 'subscribed':
        this.#advance(event.repoId, event.position);
        break;
      case 'resync': {
        const library = this.#libraries.get(event.repoId);
        if (library === undefined) break;
        library.position = event.position ?? undefined;
        this.#emit('resync', { repo_id: event.repoId, reason: event.reason, position: event.position });
        break;
      }
      case 'library':
        this.#emit(event.name, event.content as never);
        break;
      case 'jwt-expired':
        this.#tokenRejected(event.repoId);
        break;
      case 'malformed':
        this.#emit('error', new NotificationClientError('bad-message', `ignored a server message: ${event.reason}`));
        break;
      case 'other':
        if (message?.type === 'error') {
          const detail = typeof message.content['message'] === 'string' ? message.content['message'] : JSON.stringify(message.content);
          this.#emit('error', new NotificationClientError('server-error', `the server answered: ${detail}`));
        }
        break;
    }
  }

  /**
   * `jwt-expired`: the token is dropped and a new one fetched. Rejections in a row back off
   * like reconnects, so a provider that keeps handing out bad tokens is asked at most a few
   * times a minute; a subscription that held for a while resets that backoff.
   */
  /**
   * Records a library's new position; false when the event was delivered already (a replay
   * overlapping what an earlier connection had delivered): it is dropped, not dispatched twice.
   */
  #advance(repoId: unknown, position: Position): boolean {
    const library = typeof repoId === 'string' ? this.#libraries.get(repoId) : undefined;
    if (library === undefined) return true;
    const last = library.position;
    if (last !== undefined && last.epoch === position.epoch && position.offset <= last.offset) return false;
    library.position = position;
    return true;
  }

  #tokenRejected(repoId: string): void {
    const library = this.#libraries.get(repoId);
    if (library === undefined) return;
    library.token = undefined;
    library.expiresAt = undefined;
    const now = this.#clock.now();
    if (library.subscribedAt !== undefined && now - library.subscribedAt >= this.#stableAfterMs) library.retry.reset();
    const delay = library.retry.next();
    this.#emit('error', new NotificationClientError('token-rejected', `the server refused or expired the token of library ${repoId}: fetching a new one in ${delay} ms`, repoId));
    this.#retryLater(library, delay);
  }

  #retryLater(library: Library, delayMs: number): void {
    library.attempt++; // a fetch in flight is now stale
    this.#clearTimer(library.timer);
    library.timer = this.#clock.setTimeout(() => {
      library.timer = undefined;
      void this.#subscribeLibrary(library, false);
    }, delayMs);
  }

  /**
   * Sends the library's subscribe with a token: the cached one when `reuseToken` and it is
   * not about to expire, else a fresh one from the provider. Only on an open connection:
   * opening one subscribes every library.
   */
  async #subscribeLibrary(library: Library, reuseToken: boolean): Promise<void> {
    if (!this.#ready) return;
    const attempt = ++library.attempt;
    const connection = this.#connection;
    this.#clearTimer(library.timer);
    library.timer = undefined;
    const stale = () => this.#libraries.get(library.repoId) !== library || library.attempt !== attempt || connection !== this.#connection;

    const previousExpiry = library.expiresAt;
    const reusable =
      reuseToken &&
      library.token !== undefined &&
      (library.expiresAt === undefined || library.expiresAt - this.#refreshMarginMs > this.#clock.now());
    if (!reusable) {
      let token: unknown;
      try {
        token = await this.#tokenProvider(library.repoId);
      } catch (error) {
        if (stale()) return;
        this.#tokenProviderFailed(library, error instanceof Error ? error.message : String(error), error);
        return;
      }
      if (stale()) return;
      if (typeof token !== 'string' || token === '') {
        this.#tokenProviderFailed(library, `returned ${token === '' ? 'an empty string' : typeof token}, not a token`);
        return;
      }
      library.token = token;
      library.expiresAt = tokenExpiry(token);
    }
    const token = library.token!;
    const since = library.position;
    this.#transport!.subscribe(since === undefined ? { repoId: library.repoId, token } : { repoId: library.repoId, token, since });
    const now = this.#clock.now();
    library.subscribedAt = now;
    // A provider that hands out the same token again would otherwise be asked ever faster as exp nears.
    const renewed = reusable || previousExpiry === undefined || library.expiresAt === undefined || library.expiresAt > previousExpiry;
    if (library.expiresAt !== undefined && library.expiresAt > now && renewed) {
      const life = library.expiresAt - now;
      const refreshIn = Math.max(MIN_REFRESH_MS, life - Math.min(this.#refreshMarginMs, life / 2));
      library.timer = this.#clock.setTimeout(() => {
        library.timer = undefined;
        void this.#subscribeLibrary(library, false);
      }, refreshIn);
    }
  }

  #tokenProviderFailed(library: Library, reason: string, cause?: unknown): void {
    const delay = library.retry.next();
    this.#emit(
      'error',
      new NotificationClientError('token-provider', `the token provider failed for library ${library.repoId} (${reason}): retrying in ${delay} ms`, library.repoId, { cause }),
    );
    this.#retryLater(library, delay);
  }

  #setState(state: ConnectionState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit('state', state);
  }

  #emit<N extends NotificationClientEventName>(name: N, payload: NotificationClientEvents[N]): void {
    const listeners = this.#listeners.get(name);
    if (listeners === undefined) return;
    for (const listener of [...listeners]) {
      try {
        (listener as Listener<N>)(payload);
      } catch (error) {
        // A broken listener must not break the connection; surface it like an uncaught error.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  #clearTimer(handle: TimerHandle | undefined): void {
    if (handle !== undefined) this.#clock.clearTimeout(handle);
  }
}

/** WebSocket, then SSE and long polling over fetch, as far as this environment has them. */
function defaultTransports(options: NotificationClientOptions): TransportFactory[] {
  const transports: TransportFactory[] = [];
  const WebSocketClass = options.WebSocket ?? globalWebSocket();
  if (WebSocketClass !== undefined) transports.push(webSocketTransport(WebSocketClass, { positions: options.positions ?? true }));
  const fetchFunction = options.fetch ?? (globalThis as { fetch?: FetchFunction }).fetch;
  if (fetchFunction !== undefined) transports.push(sseTransport({ fetch: fetchFunction }), longPollTransport({ fetch: fetchFunction }));
  if (transports.length === 0) {
    throw new TypeError('neither WebSocket nor fetch here: pass one, e.g. `WebSocket` from the ws package, as the WebSocket option');
  }
  return transports;
}

/** Whether `<url>/ping` answers 200 within 5 s: the server is up, only the transport failed. */
async function answersPing(fetchFunction: FetchFunction, baseUrl: string, clock: Clock): Promise<boolean> {
  const controller = new AbortController();
  const timer = clock.setTimeout(() => controller.abort(), 5000);
  try {
    const response = await fetchFunction(endpointUrl(baseUrl, 'ping', 'http').href, { cache: 'no-store', signal: controller.signal });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  } finally {
    clock.clearTimeout(timer);
  }
}

function checkUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`url must be an absolute ws://, wss://, http:// or https:// URL, got ${JSON.stringify(url)}`);
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(parsed.protocol)) {
    throw new TypeError(`url must use ws:, wss:, http: or https:, got ${parsed.protocol}`);
  }
  return parsed.href;
}

function nonNegative(name: string, value: number): number {
  if (!(value >= 0) || !Number.isFinite(value)) throw new RangeError(`${name} must be a finite number >= 0, got ${value}`);
  return value;
}
