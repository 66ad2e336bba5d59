/**
 * Events travel between nodes over one Redis pub/sub channel. A node hands each event posted
 * to it to a Redis script that numbers it in its library, keeps it in the library's history
 * and publishes it (redis-history.ts); every node, this one included, hands the events to its
 * Hub as they come back over the channel, so all nodes deliver one library's events in one
 * order, the order of their positions. An event of this node that cannot come back that way
 * (the subscription is down) is delivered here when Redis has answered the script.
 *
 * Two connections: pub/sub needs one of its own. The publishing one has no offline queue and
 * does not resend after a reconnect: an event accepted while Redis is away is delivered on
 * this node only, without a position, never late and out of order on the others. The
 * subscribing one subscribes again on every reconnect; the backplane counts as connected only
 * when both are up. When it is back after an outage, `rejoined` is called.
 */
import { Redis } from 'ioredis';

import { DEFAULT_HISTORY_LIMITS, type HistoryLimits } from '../history/event-history.js';
import type { Position } from '../history/position.js';
import type { Logger } from '../log.js';
import type { LibraryEvent } from '../protocol/event.js';
import { emptyBackplaneStats, type Backplane, type BackplaneGap, type BackplaneState, type DeliverEvent } from './backplane.js';
import { BackplaneMessageError, decodeBackplaneMessage, type BackplaneMessage } from './backplane-message.js';
import { OriginSequences } from './origin-sequences.js';
import { DEFAULT_RECONNECT_POLICY, reconnectDelay, type ReconnectPolicy } from './reconnect-delay.js';
import { defineHistoryCommands, RedisHistory } from './redis-history.js';

export interface RedisBackplaneOptions {
  /** `redis://` or `rediss://`, with credentials: never logged. */
  url: string;
  /** The URL with the password masked, for the log. */
  displayUrl: string;
  channel: string;
  /** Prefix of this deployment's history keys, `seafile-notification:{<tag>}:`; default derived from the channel. */
  keyPrefix?: string;
  /** How much history each library keeps in Redis. */
  history?: HistoryLimits;
  /** Called when the backplane is whole again after this node or another was cut off. */
  onGap?: (gap: BackplaneGap) => void;
  /** The libraries this node's subscribers follow (a cluster primary asks its workers: a promise, which may reject). */
  followedLibraries?: () => Iterable<string> | Promise<Iterable<string>>;
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

/** A gap notice names at most this many libraries; past it, `all`. */
const MAX_GAP_LIBRARIES = 10_000;
/** Nodes' clocks differ a little: an event stamped this much before the loss still counts as during it. */
const CLOCK_MARGIN_MS = 1_000;

/** An event of this node, from its acceptance until this node's Hub has it. */
interface OwnEvent {
  seq: number;
  event: LibraryEvent;
  /** null: the script has not answered; `local`: deliver it here only, as it is; `numbered`: it has its position. */
  outcome: null | 'local' | 'numbered';
}

export class RedisBackplane implements Backplane {
  readonly kind = 'redis';
  readonly nodeId: string;
  readonly stats = emptyBackplaneStats();
  readonly history: RedisHistory;
  readonly #options: RedisBackplaneOptions;
  /** Where a node back from an outage names the libraries whose events only it had. */
  readonly #gapChannel: string;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #publisher: Redis;
  readonly #subscriber: Redis;
  readonly #sequences: OriginSequences;
  #state: BackplaneState = 'connecting';
  #subscribed = false;
  #seq = 0;
  /** This node's events not yet handed to its Hub, oldest first. */
  readonly #own: OwnEvent[] = [];
  /** The last of this node's events handed to its Hub. */
  #ownDelivered = 0;
  /** Libraries of the events accepted here while cut off (only here); `all` past MAX_GAP_LIBRARIES. */
  #alone: Set<string> | 'all' = new Set();
  /** The history's epoch as last seen before an outage: a different one after it means Redis lost the history. */
  #epoch: string | null = null;
  /** The epoch read when the publishing connection was last checked. */
  #epochNow: string | null = null;
  /** The publishing connection may run the history scripts (an ACL may refuse them). */
  #publisherChecked = false;
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
    defineHistoryCommands(this.#publisher);
    this.#publisher.on('ready', () => void this.#checkPublisher());
    this.history = new RedisHistory({
      redis: this.#publisher,
      keyPrefix: options.keyPrefix ?? `${options.channel.replace(/:events:([^:]+)$/, ':{$1}')}:`,
      channel: options.channel,
      limits: options.history ?? DEFAULT_HISTORY_LIMITS,
      logger: this.#logger,
      now: this.#now,
    });
    this.#gapChannel = `${options.channel}:gaps`;
    this.#subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      if (channel.toString() === this.#gapChannel) this.#receiveGap(message);
      else this.#receive(message);
    });
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
    // Counted even when not shared, so that other nodes can tell how many they missed.
    const seq = ++this.#seq;
    const own: OwnEvent = { seq, event, outcome: null };
    this.#own.push(own);
    if (this.#state !== 'connected' || this.#publisher.status !== 'ready') {
      this.stats.eventsNotShared++;
      this.#acceptedAlone(event.repoId);
      own.outcome = 'local';
      this.#settle();
      return;
    }
    const message: BackplaneMessage = { origin: this.nodeId, seq, acceptedAt: this.#now(), event };
    this.history.numberAndPublish(message).then(
      (position: Position) => {
        this.stats.eventsShared++;
        own.event = { ...event, position };
        own.outcome = 'numbered';
        this.#settle();
      },
      (err: unknown) => {
        // The connection went away under it; the state change is logged once by #update.
        this.stats.eventsNotShared++;
        this.#logger.debug({ err, repoId: event.repoId, seq }, 'backplane: event not shared');
        this.#acceptedAlone(event.repoId);
        own.outcome = 'local';
        this.#settle();
      },
    );
  }

  /**
   * Hands this node's settled events to its Hub in the order it accepted them: one that Redis
   * numbered normally arrives over the subscription (#receive), and is waited for unless the
   * subscription is down.
   */
  #settle(): void {
    while (this.#own.length > 0) {
      const head = this.#own[0]!;
      if (head.outcome === null) return;
      if (head.outcome === 'numbered' && head.seq > this.#ownDelivered && this.#subscribed) return;
      this.#own.shift();
      this.#deliverOwn(head.seq, head.event);
    }
  }

  #acceptedAlone(repoId: string): void {
    if (this.#alone === 'all') return;
    this.#alone.add(repoId);
    if (this.#alone.size > MAX_GAP_LIBRARIES) this.#alone = 'all';
  }

  /** Back after an outage: tell the other nodes what only we had, find what we missed, and say so. */
  async #afterRejoin(outageMs: number, lostAt: number): Promise<void> {
    const alone = this.#alone;
    this.#alone = new Set();
    if (alone === 'all' || alone.size > 0) {
      // First in the history, so that a client coming back later is told too; then to the nodes' clients now.
      await this.history.markUnshared(alone).catch((err: unknown) => {
        this.#logger.warn({ err }, 'backplane: could not mark in the history the events accepted while cut off');
      });
      const notice = JSON.stringify({ v: 1, node: this.nodeId, outageMs, libraries: alone === 'all' ? 'all' : [...alone] });
      this.#publisher.publish(this.#gapChannel, notice).catch((err: unknown) => {
        this.#logger.debug({ err }, 'backplane: the gap notice was not sent');
      });
    }
    const before = this.#epoch;
    this.#epoch = this.#epochNow;
    let libraries: ReadonlySet<string> | 'all';
    try {
      // A history that lost its epoch, keeps nothing, or expired during the outage cannot tell.
      const limits = this.#options.history ?? DEFAULT_HISTORY_LIMITS;
      if (before === null || before !== this.#epoch || limits.size === 0 || outageMs >= limits.ttlMs) libraries = 'all';
      else libraries = await this.history.changedSince(await (this.#options.followedLibraries?.() ?? []), lostAt - CLOCK_MARGIN_MS);
    } catch (err) {
      this.#logger.debug({ err }, 'backplane: could not read what changed during the outage');
      libraries = 'all';
    }
    if (this.#state === 'closed') return;
    this.#options.onGap?.({ cutOff: 'this-node', node: this.nodeId, libraries, outageMs });
  }

  #receiveGap(bytes: Buffer): void {
    let notice: unknown;
    try {
      notice = JSON.parse(bytes.toString());
    } catch {
      notice = null;
    }
    const record = typeof notice === 'object' && notice !== null ? (notice as Record<string, unknown>) : {};
    const { node, libraries, outageMs } = record;
    const list = libraries === 'all' ? 'all' : Array.isArray(libraries) && libraries.every((l) => typeof l === 'string') ? new Set(libraries as string[]) : null;
    if (record['v'] !== 1 || typeof node !== 'string' || list === null) {
      this.stats.malformedMessages++;
      return;
    }
    if (node === this.nodeId) return;
    const outage = typeof outageMs === 'number' ? outageMs : 0;
    this.#logger.info(
      { node, libraries: list === 'all' ? 'all' : list.size, outageMs: outage },
      `backplane: node ${node} was cut off for ${(outage / 1000).toFixed(1)} s and accepted events for ${list === 'all' ? 'many' : list.size} librar${list !== 'all' && list.size === 1 ? 'y' : 'ies'} that never reached this node`,
    );
    this.#options.onGap?.({ cutOff: 'another-node', node, libraries: list, outageMs: outage });
  }

  #deliverOwn(seq: number, event: LibraryEvent): void {
    if (seq <= this.#ownDelivered) return;
    this.#ownDelivered = seq;
    this.#options.deliver(event);
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
      if (role === 'publisher') this.#publisherChecked = false;
      if (role === 'subscriber') {
        this.#subscribed = false;
        // Numbered events of ours will not come back over it: deliver them now.
        this.#settle();
      }
      this.#update();
      // A first attempt that failed will not be helped by waiting: start now, retry meanwhile.
      if (this.#state === 'connecting') this.#wake();
    });
    return redis;
  }

  /** Runs the read script once: a Redis that refuses it (ACL) is treated like one that refuses the subscription. */
  async #checkPublisher(): Promise<void> {
    try {
      this.#epochNow = await this.history.epoch();
      this.#publisherChecked = true;
      this.#update();
    } catch (err) {
      this.#lastError = err instanceof Error ? err.message : String(err);
      if (this.#publisher.status === 'ready' && this.#state !== 'closed') {
        this.#logger.debug({ error: this.#lastError }, 'backplane: Redis refused the history script');
        this.#publisher.disconnect(true);
      }
    }
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
      await this.#subscriber.subscribe(this.#options.channel, this.#gapChannel);
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
    const up = this.#subscribed && this.#publisherChecked && this.#publisher.status === 'ready' && this.#subscriber.status === 'ready';
    if (up && this.#state !== 'connected') {
      const previous = this.#state;
      this.#setState('connected');
      this.#attempts.publisher = 0;
      this.#attempts.subscriber = 0;
      this.#lastError = null;
      if (previous === 'connecting') {
        this.#epoch ??= this.#epochNow;
        this.#logger.info({ node: this.nodeId }, `backplane: connected to Redis at ${this.#options.displayUrl}`);
      } else {
        const notShared = this.stats.eventsNotShared - this.#notSharedAtLoss;
        const outageMs = this.#now() - this.#lostAt;
        const lostAt = this.#lostAt;
        void this.#afterRejoin(outageMs, lostAt);
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
    if (message.event.position !== undefined) this.#epoch = message.event.position.epoch;
    if (message.origin === this.nodeId) {
      // Ours, numbered and back: delivered in the cluster's order, unless it already was here.
      if (message.seq > this.#ownDelivered) {
        this.#deliverOwn(message.seq, message.event);
        this.#settle();
      } else this.stats.duplicatesDropped++;
      return;
    }
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
