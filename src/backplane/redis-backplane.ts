/**
 * Events travel between nodes over one Redis pub/sub channel. A node delivers the events
 * posted to it at once, then publishes them; it ignores its own when they come back, and
 * hands every other node's to its Hub in the order that node published them.
 *
 * Two connections: pub/sub needs one of its own. The publishing one has no offline queue and
 * does not resend after a reconnect: an event accepted while Redis is away is delivered on
 * this node only, never late and out of order on the others. The subscribing one subscribes
 * again on every reconnect; the backplane counts as connected only when both are up.
 */
import { Redis } from 'ioredis';

import type { EventHistory, HistoryRead } from '../history/event-history.js';
import type { Logger } from '../log.js';
import type { LibraryEvent } from '../protocol/event.js';
import { emptyBackplaneStats, type Backplane, type BackplaneState, type DeliverEvent } from './backplane.js';
import { BackplaneMessageError, decodeBackplaneMessage, encodeBackplaneMessage } from './backplane-message.js';
import { OriginSequences } from './origin-sequences.js';
import { DEFAULT_RECONNECT_POLICY, reconnectDelay, type ReconnectPolicy } from './reconnect-delay.js';

export interface RedisBackplaneOptions {
  /** `redis://` or `rediss://`, with credentials: never logged. */
  url: string;
  /** The URL with the password masked, for the log. */
  displayUrl: string;
  channel: string;
  /** A connection whose Redis does not answer for this long is dropped and reopened. */
  timeoutMs: number;
  nodeId: string;
  deliver: DeliverEvent;
  logger: Logger;
  reconnect?: ReconnectPolicy;
  now?: () => number;
  random?: () => number;
}

type Role = 'publisher' | 'subscriber';

export class RedisBackplane implements Backplane {
  readonly kind = 'redis';
  readonly nodeId: string;
  readonly stats = emptyBackplaneStats();
  readonly history: EventHistory = {
    read: async (): Promise<HistoryRead> => ({ kind: 'resync', reason: 'history-unavailable', position: null }),
  };
  readonly #options: RedisBackplaneOptions;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #publisher: Redis;
  readonly #subscriber: Redis;
  readonly #sequences: OriginSequences;
  #state: BackplaneState = 'connecting';
  #subscribed = false;
  #seq = 0;
  #lostAt = 0;
  #notSharedAtLoss = 0;
  #lastError: string | null = null;
  #waiters: Array<() => void> = [];
  readonly #watchdog: NodeJS.Timeout;
  readonly #probing = new Set<Redis>();
  readonly #attempts: Record<Role, number> = { publisher: 0, subscriber: 0 };

  constructor(options: RedisBackplaneOptions) {
    this.#options = options;
    this.nodeId = options.nodeId;
    this.#now = options.now ?? Date.now;
    this.#logger = options.logger.child({ backplane: 'redis' });
    this.#sequences = new OriginSequences(this.#now);
    this.#publisher = this.#connect('publisher', { enableOfflineQueue: false, autoResendUnfulfilledCommands: false });
    this.#subscriber = this.#connect('subscriber', { autoResubscribe: false });
    this.#subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => this.#receive(message));
    this.#subscriber.on('ready', () => this.#subscribe());
    // A frozen Redis or a dead link closes no socket: only an unanswered PING tells.
    this.#watchdog = setInterval(() => {
      this.#probe(this.#publisher);
      this.#probe(this.#subscriber);
    }, options.timeoutMs);
    this.#watchdog.unref();
  }

  get state(): BackplaneState {
    return this.#state;
  }

  async start(waitMs: number): Promise<void> {
    this.#logger.info(
      { node: this.nodeId, channel: this.#options.channel },
      `backplane: connecting to Redis at ${this.#options.displayUrl} as node ${this.nodeId}`,
    );
    if (await this.#untilConnected(waitMs)) return;
    this.#logger.warn(
      { state: this.#state, error: this.#lastError },
      `backplane: Redis at ${this.#options.displayUrl} not reachable yet (${this.#lastError ?? 'no answer'}): ` +
        'starting anyway, delivering only the events posted to this node until it is',
    );
  }

  async #untilConnected(waitMs: number): Promise<boolean> {
    if (this.#state !== 'connected') {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, waitMs);
      });
      clearTimeout(timer);
    }
    return this.#state === 'connected';
  }

  publish(event: LibraryEvent): void {
    this.#options.deliver(event);
    // Counted even when not shared, so that other nodes can tell how many they missed.
    const seq = ++this.#seq;
    if (this.#state !== 'connected' || this.#publisher.status !== 'ready') {
      this.stats.eventsNotShared++;
      return;
    }
    const message = encodeBackplaneMessage({ origin: this.nodeId, seq, acceptedAt: this.#now(), event });
    this.#publisher.publish(this.#options.channel, message).then(
      () => this.stats.eventsShared++,
      (err: unknown) => {
        // The connection went away under it; the state change is logged once by #update.
        this.stats.eventsNotShared++;
        this.#logger.debug({ err, repoId: event.repoId, seq }, 'backplane: event not shared');
      },
    );
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#setState('closed');
    clearInterval(this.#watchdog);
    this.#publisher.disconnect();
    this.#subscriber.disconnect();
  }

  #connect(role: Role, options: { enableOfflineQueue?: boolean; autoResendUnfulfilledCommands?: boolean; autoResubscribe?: boolean }): Redis {
    const policy = this.#options.reconnect ?? DEFAULT_RECONNECT_POLICY;
    const redis = new Redis(this.#options.url, {
      ...options,
      connectionName: `notification-server:${role}`,
      connectTimeout: this.#options.timeoutMs,
      // Also bounds the handshake: a Redis that accepts but never answers is retried.
      commandTimeout: this.#options.timeoutMs,
      // A connection dropped for not answering would otherwise wait 2 s more for a goodbye.
      disconnectTimeout: 0,
      // Fail a command once, at the loss; nothing is queued across a reconnect.
      maxRetriesPerRequest: 0,
      // ioredis counts from 1 again after every 'ready'; a connection that gets ready and is then
      // refused (a subscription without permission) would retry in a tight loop. Count until the
      // backplane as a whole is connected instead.
      retryStrategy: () => {
        const attempt = ++this.#attempts[role];
        const delay = reconnectDelay(attempt, policy, this.#options.random);
        // One line per attempt of the subscriber suffices: the publisher retries alongside it.
        if (role === 'subscriber' && this.#state !== 'closed') {
          this.#logger.warn(
            { attempt, delayMs: delay, error: this.#lastError },
            `backplane: not connected to Redis (${this.#lastError ?? 'connection closed'}), reconnecting: attempt ${attempt} in ${delay} ms`,
          );
        }
        return delay;
      },
    });
    redis.on('error', (err: Error) => {
      this.#lastError = err.message === 'Command timed out' ? `no answer within ${this.#options.timeoutMs} ms` : err.message;
      this.#logger.debug({ role, err: err.message }, 'backplane: Redis connection error');
    });
    redis.on('ready', () => this.#update());
    redis.on('close', () => {
      if (role === 'subscriber') this.#subscribed = false;
      this.#update();
      // A first attempt that failed will not be helped by waiting: start now, retry meanwhile.
      if (this.#state === 'connecting') this.#wake();
    });
    return redis;
  }

  #probe(redis: Redis): void {
    if (redis.status !== 'ready' || this.#probing.has(redis)) return;
    this.#probing.add(redis);
    redis.ping().then(
      () => this.#probing.delete(redis),
      () => {
        this.#probing.delete(redis);
        // Failed because the connection already closed: it is reconnecting by itself.
        if (redis.status !== 'ready' || this.#state === 'closed') return;
        this.#lastError = `no answer within ${this.#options.timeoutMs} ms`;
        redis.disconnect(true);
      },
    );
  }

  async #subscribe(): Promise<void> {
    try {
      await this.#subscriber.subscribe(this.#options.channel);
      this.#subscribed = true;
      this.#update();
    } catch (err) {
      this.#lastError = err instanceof Error ? err.message : String(err);
      // Refused (no permission, Redis still loading): retry through the backoff, as for a lost connection.
      // If the connection dropped meanwhile, the next 'ready' subscribes again anyway.
      if (this.#subscriber.status === 'ready' && this.#state !== 'closed') {
        this.#logger.debug({ error: this.#lastError }, 'backplane: Redis refused the subscription');
        this.#subscriber.disconnect(true);
      }
    }
  }

  /** Derives the state from both connections and logs each change once. */
  #update(): void {
    if (this.#state === 'closed') return;
    const up = this.#subscribed && this.#publisher.status === 'ready' && this.#subscriber.status === 'ready';
    if (up && this.#state !== 'connected') {
      const previous = this.#state;
      this.#setState('connected');
      this.#attempts.publisher = 0;
      this.#attempts.subscriber = 0;
      this.#lastError = null;
      if (previous === 'connecting') {
        this.#logger.info({ node: this.nodeId }, `backplane: connected to Redis at ${this.#options.displayUrl}`);
      } else {
        const notShared = this.stats.eventsNotShared - this.#notSharedAtLoss;
        this.#logger.info(
          { outageMs: this.#now() - this.#lostAt, eventsNotShared: notShared },
          `backplane: back on Redis after ${((this.#now() - this.#lostAt) / 1000).toFixed(1)} s; ` +
            `${notShared} event(s) accepted meanwhile reached this node's subscribers only`,
        );
      }
    } else if (!up && this.#state === 'connected') {
      this.#setState('reconnecting');
      this.stats.disconnects++;
      this.#lostAt = this.#now();
      this.#notSharedAtLoss = this.stats.eventsNotShared;
      this.#logger.warn(
        { error: this.#lastError },
        `backplane: lost Redis at ${this.#options.displayUrl} (${this.#lastError ?? 'connection closed'}): ` +
          'delivering only the events posted to this node until it is back',
      );
    }
  }

  #setState(state: BackplaneState): void {
    this.#state = state;
    if (state === 'connected' || state === 'closed') this.#wake();
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  #receive(bytes: Buffer): void {
    let message;
    try {
      message = decodeBackplaneMessage(bytes);
    } catch (err) {
      if (!(err instanceof BackplaneMessageError)) throw err;
      this.stats.malformedMessages++;
      // Once at warn: whatever sends them may send many.
      const level = this.stats.malformedMessages === 1 ? 'warn' : 'debug';
      this.#logger[level](
        { reason: err.message, bytes: bytes.length, count: this.stats.malformedMessages },
        'backplane: dropped a message that is not ours to read (further ones are only counted)',
      );
      return;
    }
    if (message.origin === this.nodeId) return;
    const verdict = this.#sequences.check(message.origin, message.seq);
    if (!verdict.deliver) {
      this.stats.duplicatesDropped++;
      return;
    }
    if (verdict.missed > 0) {
      this.stats.eventsMissed += verdict.missed;
      this.#logger.info(
        { origin: message.origin, missed: verdict.missed },
        `backplane: ${verdict.missed} event(s) accepted by node ${message.origin} while the backplane was down never reached this node`,
      );
    }
    this.stats.eventsReceived++;
    this.#options.deliver(message.event);
  }
}
