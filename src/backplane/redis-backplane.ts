/**
 * Events travel between nodes over Redis pub/sub. A script numbers each event in its library,
 * keeps it in the history and publishes it (redis-history.ts); every node, this one included,
 * delivers the events as they come back over the channel, so all nodes deliver one library's
 * events in the order of their positions. Pub/sub needs a connection of its own; the publishing
 * one neither queues nor resends across a reconnect.
 *
 * While Redis is away (a failover), this node's events are held in order within `hold`, then
 * delivered here only, without a position: never late and out of order on the others. Back on
 * Redis, the history is reconciled before anything is published. Redis Cluster: a sharded
 * channel per lane, all subscribed; a lost shard counts as Redis away. See docs/cluster.md.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';

import { PendingQuestions } from '../cluster/rpc.js';
import type { RedisConnection } from '../config/config.js';

import type { HistoryLimits } from '../history/event-history.js';
import type { Position } from '../history/position.js';
import type { Logger } from '../log.js';
import type { LibraryEvent } from '../protocol/event.js';
import { BackplaneStats, NO_RECEIVER, type Backplane, type BackplaneGap, type BackplaneReceiver, type BackplaneState } from './backplane.js';
import { decodeGapNotice, encodeGapNotice } from './gap-notice.js';
import { BackplaneMessageError, decodeBackplaneMessage, type BackplaneMessage } from './backplane-message.js';
import { OriginSequences } from './origin-sequences.js';
import { reconnectDelay } from './reconnect-delay.js';
import { clusterLayout, inBatches, RedisHistory, singleLayout, type KeyLayout } from './redis-history.js';

export interface RedisBackplaneOptions {
  /** One Redis, a primary found through Sentinel, or a Redis Cluster; credentials included: never logged. */
  connection: RedisConnection;
  /** Events accepted while Redis is away wait this long and up to this many bytes for it to come back (a failover); 0 ms: not at all. */
  hold?: { ms: number; bytes: number };
  /** The URL with the password masked, for the log. */
  displayUrl: string;
  /** `seafile-notification:events:<tag>`; the history keys are `seafile-notification:{<tag>}:…`. */
  channel: string;
  history?: HistoryLimits;
  /** A connection whose Redis does not answer for this long is dropped and reopened. */
  timeoutMs: number;
  nodeId: string;
  logger: Logger;
}

type Role = 'publisher' | 'subscriber';
type Connection = Redis | Cluster;

/** A gap notice names at most this many libraries; past it, `all`. */
const MAX_GAP_LIBRARIES = 10_000;
/** Nodes' clocks differ a little: an event stamped this much before the loss still counts as during it. */
const CLOCK_MARGIN_MS = 1_000;
/** Past this, messages arriving while rejoining are dropped: positioned clients catch up from the history, desktop clients are refreshed. */
const MAX_INCOMING_WHILE_REJOINING = 100_000;
/** Libraries whose last position is remembered for the check after a failover; past it, the least recent are forgotten. */
const MAX_SEEN_LIBRARIES = 100_000;
/** The soonest a held event is looked at again for expiry. */
const HOLD_RECHECK_MS = 100;
/** Libraries whose missed events are read at once after an outage. */
const CATCH_UP_BATCH = 500;

/** An event of this node, from its acceptance until this node's Hub has it. */
interface OwnEvent {
  /** In the order this node accepted its events. */
  n: number;
  lane: number;
  /** In its lane: what other nodes read. */
  seq: number;
  event: LibraryEvent;
  /** null: the script has not answered; `local`: deliver it here only, as it is; `numbered`: it has its position. */
  outcome: null | 'local' | 'numbered';
  /** When it was accepted: a held event older than the hold is delivered here only. */
  at: number;
}

export class RedisBackplane implements Backplane {
  readonly kind = 'redis';
  readonly nodeId: string;
  readonly stats = new BackplaneStats();
  readonly history: RedisHistory;
  readonly #options: RedisBackplaneOptions;
  #receiver = NO_RECEIVER;
  readonly #holdLimit: { ms: number; bytes: number };
  readonly #logger: Logger;
  readonly #layout: KeyLayout;
  readonly #publisher: Connection;
  readonly #subscriber: Connection;
  /** Per origin and lane (`origin lane`): in a cluster each lane's channel keeps its own order. */
  readonly #sequences = new OriginSequences();
  #state: BackplaneState = 'connecting';
  #accepted = 0;
  /** Per lane, the last sequence number given to an event of this node. */
  readonly #seq: number[];
  /** This node's events not yet handed to its Hub, oldest first. */
  readonly #own: OwnEvent[] = [];
  /** Per lane, the last of this node's events handed to its Hub. */
  readonly #ownDelivered: number[];
  /** Libraries of the events accepted here while cut off (only here); `all` past MAX_GAP_LIBRARIES. */
  #alone: Set<string> | 'all' = new Set();
  /** Each lane's epoch as last seen before an outage: a different one after it means Redis lost the history. */
  #epoch: string[] | null = null;
  /** The epochs read when the publishing connection was last checked. */
  #epochNow: string[] | null = null;
  /** A cluster connection checked again after a shard went away. */
  readonly #rechecks: Record<Role, NodeJS.Timeout | null> = { publisher: null, subscriber: null };
  /** Checked since its last 'ready': the subscription stands, the publisher may run the scripts (ACL). */
  readonly #checked: Record<Role, boolean> = { publisher: false, subscriber: false };
  #lostAt = 0;
  #notSharedAtLoss = 0;
  #lastError: string | null = null;
  /** start() waiting to be connected (or for a first attempt to fail). */
  readonly #waiters = new PendingQuestions<void>();
  readonly #watchdog: NodeJS.Timeout;
  readonly #probing = new Set<Connection>();
  readonly #attempts: Record<Role, number> = { publisher: 0, subscriber: 0 };
  /** This node's events waiting for Redis to come back, oldest first, and their bytes. */
  readonly #held: OwnEvent[] = [];
  #heldBytes = 0;
  #holdTimer: NodeJS.Timeout | null = null;
  /** Back on Redis, checking the history before anything is published: events wait in #held. */
  #rejoining = false;
  /** The last position this node saw of each library, least recently seen first. */
  readonly #seen = new Map<string, Position>();
  /** Per origin, the sequence numbers delivered from the history after an outage: their live copies are repeats. */
  readonly #caughtUpSeqs = new Map<string, Set<number>>();
  /** Messages that arrived while rejoining, delivered once it is done. */
  readonly #incoming: Array<[Buffer, Buffer]> = [];
  /** Libraries whose backwards offsets are being marked. */
  readonly #checking = new Set<string>();

  constructor(options: RedisBackplaneOptions) {
    this.#options = options;
    this.nodeId = options.nodeId;
    this.#holdLimit = options.hold ?? { ms: 0, bytes: 0 };
    this.#logger = options.logger.child({ backplane: 'redis' });
    this.#layout =
      options.connection.kind === 'cluster'
        ? clusterLayout(options.channel.replace(/^.*:events:/, ''))
        : singleLayout(options.channel, `${options.channel.replace(/:events:([^:]+)$/, ':{$1}')}:`);
    this.#seq = new Array<number>(this.#layout.lanes).fill(0);
    this.#ownDelivered = new Array<number>(this.#layout.lanes).fill(0);
    this.#publisher = this.#connect('publisher', { enableOfflineQueue: false, autoResendUnfulfilledCommands: false });
    this.#subscriber = this.#connect('subscriber', { autoResubscribe: false });
    this.history = new RedisHistory(this.#publisher, this.#layout, this.#logger, options.history);
    this.#subscriber.on(this.#layout.sharded ? 'smessageBuffer' : 'messageBuffer', (channel: Buffer, message: Buffer) => {
      // Kept while reconnecting: until #rejoin has checked the history, catch-ups could not read it.
      if (this.#state !== 'reconnecting') this.#dispatch(channel, message);
      else if (this.#incoming.length < MAX_INCOMING_WHILE_REJOINING) this.#incoming.push([channel, message]);
    });
    // ioredis subscribes again on the promoted replica by itself; confirmed here before it counts.
    if (this.#subscriber instanceof Cluster) this.#subscriber.on('subscribersReady', () => void this.#subscribe());
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

  async start(waitMs: number, receiver: BackplaneReceiver): Promise<void> {
    this.#receiver = receiver;
    this.#logger.info(
      { node: this.nodeId, channel: this.#options.channel },
      `backplane: connecting to Redis at ${this.#options.displayUrl} as node ${this.nodeId}`,
    );
    if (this.#state !== 'connected') await this.#waiters.ask(() => {}, waitMs, undefined);
    if (this.#state === 'connected') return;
    this.#logger.warn(
      { state: this.#state, error: this.#lastError },
      `backplane: Redis at ${this.#options.displayUrl} not reachable yet (${this.#lastError ?? 'no answer'}): ` +
        'starting anyway, delivering only the events posted to this node until it is',
    );
  }

  publish(event: LibraryEvent): void {
    // Counted even when not shared, so that other nodes can tell how many they missed.
    const lane = this.#layout.laneOf(event.repoId);
    const own: OwnEvent = { n: ++this.#accepted, lane, seq: ++this.#seq[lane]!, event, outcome: null, at: Date.now() };
    this.#own.push(own);
    // Behind held ones, so that they keep their order.
    const behindHeld = this.#rejoining || this.#held.length > 0;
    if (behindHeld || this.#state !== 'connected' || this.#publisher.status !== 'ready') {
      this.#hold(own);
      if (behindHeld && this.#state === 'connected') this.#releaseHeld();
    } else this.#share(own);
  }

  #share(own: OwnEvent): void {
    const { event, seq } = own;
    const message: BackplaneMessage = { origin: this.nodeId, seq, acceptedAt: own.at, event };
    this.history.numberAndPublish(message).then(
      (position: Position) => {
        this.stats.eventsShared++;
        own.event = { ...event, position };
        own.outcome = 'numbered';
        this.#settle();
      },
      (err: unknown) => {
        // Held for the next primary; if the script did run, the origin's sequence drops the repeat.
        this.#logger.debug({ err, repoId: event.repoId, seq }, 'backplane: event not shared yet');
        // Refused by a Redis that looks connected (READONLY: a demoted primary): find the primary again.
        if (this.#holdLimit.ms > 0 && this.#publisher.status === 'ready' && this.#state === 'connected') {
          this.#lastError = err instanceof Error ? err.message : String(err);
          this.#recheck('publisher');
        }
        this.#hold(own);
      },
    );
  }

  /** Holds an event until Redis is back, within the hold; else (or never connected) delivers it here only. */
  #hold(own: OwnEvent): void {
    const hold = this.#holdLimit;
    const bytes = own.event.frame.length;
    const holding = this.#rejoining || (this.#state !== 'connecting' && hold.ms > 0 && this.#heldBytes + bytes <= hold.bytes);
    if (!holding && !(this.#state === 'connected' && this.#held.length > 0)) {
      this.#deliverAlone(own);
      return;
    }
    this.stats.eventsHeld++;
    this.#heldBytes += bytes;
    // A failed script comes back after later events were held: keep the order of acceptance.
    const at = this.#held.findIndex((other) => other.n > own.n);
    if (at < 0) this.#held.push(own);
    else this.#held.splice(at, 0, own);
    this.#holdTimer ??= this.#expireHeldLater();
  }

  #expireHeldLater(): NodeJS.Timeout {
    return setTimeout(() => this.#expireHeld(), Math.max(HOLD_RECHECK_MS, this.#held[0]!.at + this.#holdLimit.ms - Date.now()));
  }

  #deliverAlone(own: OwnEvent): void {
    this.stats.eventsNotShared++;
    if (this.#alone !== 'all') {
      this.#alone.add(own.event.repoId);
      if (this.#alone.size > MAX_GAP_LIBRARIES) this.#alone = 'all';
    }
    own.outcome = 'local';
    this.#settle();
  }

  /** Held events older than the hold are delivered here only, as if there were no hold. */
  #expireHeld(): void {
    this.#holdTimer = null;
    const hold = this.#holdLimit;
    const oldest = Date.now() - hold.ms;
    let expired = 0;
    while (this.#held.length > 0 && this.#held[0]!.at <= oldest && !this.#rejoining) {
      const own = this.#held.shift()!;
      this.#heldBytes -= own.event.frame.length;
      this.stats.eventsHeldTooLong++;
      expired++;
      this.#deliverAlone(own);
    }
    if (expired > 0) {
      this.#logger.warn(
        { events: expired, holdMs: hold.ms },
        `backplane: ${expired} event(s) waited ${hold.ms / 1000} s for Redis to come back: delivered to this node's subscribers only`,
      );
    }
    // While rejoining nothing expires: look again shortly.
    if (this.#held.length > 0) this.#holdTimer = this.#expireHeldLater();
  }

  /** Publishes the held events, oldest first: one connection keeps their order. */
  #releaseHeld(): void {
    if (this.#held.length > 0 && this.#publisher.status === 'ready') {
      this.#heldBytes = 0;
      for (const own of this.#held.splice(0)) this.#share(own);
    }
    if (this.#held.length === 0 && this.#holdTimer !== null) {
      clearTimeout(this.#holdTimer);
      this.#holdTimer = null;
    }
  }

  /** Remembers the newest position seen of a library; one that goes backwards is reported. */
  #saw(repoId: string, position: Position): boolean {
    const before = this.#seen.get(repoId);
    const backwards = before !== undefined && before.epoch === position.epoch && position.offset <= before.offset;
    // Re-inserted: the map is ordered by last sighting, and the newest position is kept.
    this.#seen.delete(repoId);
    this.#seen.set(repoId, backwards ? before : position);
    if (this.#seen.size > MAX_SEEN_LIBRARIES) this.#seen.delete(this.#seen.keys().next().value!);
    return backwards;
  }

  /** Delivers this node's settled events in order; a numbered one waits for #receive while subscribed. */
  #settle(): void {
    while (this.#own.length > 0) {
      const head = this.#own[0]!;
      if (head.outcome === null) return;
      if (head.outcome === 'numbered' && head.seq > this.#ownDelivered[head.lane]! && this.#checked.subscriber) return;
      this.#own.shift();
      this.#deliverOwn(head.lane, head.seq, head.event);
    }
  }

  /** Back after an outage: tell the other nodes what only we had, find what we missed, and say so. */
  async #afterRejoin(outageMs: number, lostAt: number, caughtUp: ReadonlySet<string>): Promise<void> {
    const alone = this.#alone;
    this.#alone = new Set();
    if (alone === 'all' || alone.size > 0) {
      // In the history first, so that a client coming back later is told too.
      await this.history.markUnshared(alone).catch((err: unknown) => {
        this.#logger.warn({ err }, 'backplane: could not mark in the history the events accepted while cut off');
      });
      this.#notify({ cutOff: 'another-node', node: this.nodeId, libraries: alone, outageMs });
    }
    const before = this.#epoch;
    this.#epoch = this.#epochNow;
    let libraries: ReadonlySet<string> | 'all';
    try {
      // A history that lost its epoch, keeps nothing, or expired during the outage cannot tell.
      const { limits } = this.history;
      if (before === null || before.join() !== this.#epoch?.join() || limits.size === 0 || outageMs >= limits.ttlMs) libraries = 'all';
      else {
        // Those caught up from the history missed nothing.
        const changed = await this.history.changedSince(await (this.#receiver.followedLibraries?.() ?? []), lostAt - CLOCK_MARGIN_MS);
        for (const repoId of caughtUp) changed.delete(repoId);
        libraries = changed;
      }
    } catch (err) {
      this.#logger.debug({ err }, 'backplane: could not read what changed during the outage');
      libraries = 'all';
    }
    if (this.#state === 'closed') return;
    this.#receiver.onGap?.({ cutOff: 'this-node', node: this.nodeId, libraries, outageMs });
  }

  #dispatch(channel: Buffer, message: Buffer): void {
    if (channel.toString() === this.#layout.gapChannel) this.#receiveGap(message);
    else this.#receive(message);
  }

  #receiveGap(bytes: Buffer): void {
    const gap = decodeGapNotice(bytes);
    if (gap === null) {
      this.stats.malformedMessages++;
      return;
    }
    const { node, libraries: list, outageMs } = gap;
    if (node === this.nodeId) return;
    if (gap.cutOff === 'history-lost') {
      this.#logger.info({ node, libraries: list === 'all' ? 'all' : list.size }, `backplane: node ${node} found history lost in a Redis failover`);
    } else {
      this.#logger.info(
        { node, libraries: list === 'all' ? 'all' : list.size, outageMs },
        `backplane: node ${node} was cut off for ${(outageMs / 1000).toFixed(1)} s and accepted events for ${list === 'all' ? 'many' : list.size} librar${list !== 'all' && list.size === 1 ? 'y' : 'ies'} that never reached this node`,
      );
    }
    this.#receiver.onGap?.(gap);
  }

  #deliverOwn(lane: number, seq: number, event: LibraryEvent): void {
    if (seq <= this.#ownDelivered[lane]!) return;
    this.#ownDelivered[lane] = seq;
    if (event.position !== undefined) this.#saw(event.repoId, event.position);
    this.#receiver.deliver(event);
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#setState('closed');
    clearInterval(this.#watchdog);
    if (this.#holdTimer !== null) clearTimeout(this.#holdTimer);
    for (const timer of Object.values(this.#rechecks)) if (timer !== null) clearTimeout(timer);
    this.#publisher.disconnect();
    this.#subscriber.disconnect();
  }

  #connect(role: Role, options: { enableOfflineQueue?: boolean; autoResendUnfulfilledCommands?: boolean; autoResubscribe?: boolean }): Connection {
    const redis = openRedis(this.#options.connection, {
      ...options,
      connectionName: `notification-server:${role}`,
      connectTimeout: this.#options.timeoutMs,
      // Also bounds the handshake: a Redis that accepts but never answers is retried.
      commandTimeout: this.#options.timeoutMs,
      // A connection dropped for not answering would otherwise wait 2 s more for a goodbye.
      disconnectTimeout: 0,
      // Fail a command once, at the loss; nothing is queued across a reconnect.
      maxRetriesPerRequest: 0,
      // Counted until the whole backplane is connected, not from each 'ready' as ioredis does: a
      // connection refused after getting ready (no permission to subscribe) would retry in a tight loop.
      retryStrategy: () => {
        const attempt = ++this.#attempts[role];
        const delay = reconnectDelay(attempt);
        // One line per attempt of the subscriber suffices: the publisher retries alongside it.
        if (role === 'subscriber' && this.#state !== 'closed') {
          this.#logger.warn(
            { attempt, delayMs: delay, error: this.#lastError },
            `backplane: not connected to Redis (${this.#lastError ?? 'connection closed'}), reconnecting: attempt ${attempt} in ${delay} ms`,
          );
        }
        return delay;
      },
    }, this.#options.timeoutMs);
    redis.on('error', (err: Error) => {
      this.#lastError = err.message === 'Command timed out' ? `no answer within ${this.#options.timeoutMs} ms` : err.message;
      this.#logger.debug({ role, err: err.message }, 'backplane: Redis connection error');
    });
    redis.on('ready', () => this.#update());
    redis.on('ready', () => void (role === 'publisher' ? this.#checkPublisher() : this.#subscribe()));
    if (redis instanceof Cluster) redis.on('-node', (node: Redis) => this.#shardLost(role, redis, node));
    // ioredis gives up for good (`end`) on a connect attempt cut short (Sentinel announcing the
    // failover while it asks where the primary is): start it again.
    redis.on('end', () => {
      if (this.#state === 'closed') return;
      this.#logger.debug({ role }, 'backplane: ioredis gave up on the connection; starting it again');
      setTimeout(() => {
        if (this.#state !== 'closed' && redis.status === 'end') redis.connect().catch(() => {});
      }, reconnectDelay(++this.#attempts[role])).unref();
    });
    redis.on('close', () => {
      this.#checked[role] = false;
      // Numbered events of ours will not come back over it: deliver them now.
      if (role === 'subscriber') this.#settle();
      this.#update();
      // A first attempt that failed will not be helped by waiting: start now, retry meanwhile.
      if (this.#state === 'connecting') this.#waiters.settleAll();
    });
    return redis;
  }

  /** Runs the read script once: a Redis that refuses it (ACL) is treated like one that refuses the subscription. */
  async #checkPublisher(): Promise<void> {
    try {
      this.#epochNow = await this.history.epochs();
      this.#checked.publisher = true;
      this.#update();
    } catch (err) {
      this.#refused('publisher', 'the history script', err);
    }
  }

  /** Refused (an ACL, Redis still loading, a shard down): retried through the backoff. */
  #refused(role: Role, what: string, err: unknown): void {
    this.#lastError = err instanceof Error ? err.message : String(err);
    const redis = role === 'publisher' ? this.#publisher : this.#subscriber;
    if (redis.status === 'ready' && this.#state !== 'closed') {
      this.#logger.debug({ error: this.#lastError }, `backplane: Redis refused ${what}`);
      this.#recheck(role);
    }
  }

  /** Finds the primary again: by reconnecting, or on a cluster (healthy shards kept) by checking later. */
  #recheck(role: Role): void {
    const redis = role === 'publisher' ? this.#publisher : this.#subscriber;
    if (!(redis instanceof Cluster)) {
      redis.disconnect(true);
      return;
    }
    this.#checked[role] = false;
    this.#update();
    if (this.#rechecks[role] !== null || this.#state === 'closed') return;
    const delay = reconnectDelay(++this.#attempts[role]);
    this.#rechecks[role] = setTimeout(() => {
      this.#rechecks[role] = null;
      void (role === 'publisher' ? this.#checkPublisher() : this.#subscribe());
    }, delay);
  }

  /** A cluster node that held slots went away: its shard is down until a replica is promoted. */
  #shardLost(role: Role, cluster: Cluster, node: Redis): void {
    const key = `${node.options.host}:${node.options.port}`;
    if (this.#state === 'closed' || !cluster.slots.some((keys) => keys[0] === key)) return;
    this.#lastError = `lost the cluster node at ${key}`;
    this.#recheck(role);
    // After #recheck has marked it unchecked, as on `close`: ours on that shard will not come back.
    if (role === 'subscriber') this.#settle();
  }

  /** Tells the other nodes' clients, as the gap channel carries it (gap-notice.ts). */
  #notify(gap: BackplaneGap): void {
    const { gapChannel, sharded } = this.#layout;
    const notice = encodeGapNotice(gap);
    (sharded ? this.#publisher.spublish(gapChannel, notice) : this.#publisher.publish(gapChannel, notice)).catch((err: unknown) => {
      this.#logger.debug({ err, cutOff: gap.cutOff }, 'backplane: the gap notice was not sent');
    });
  }

  #probe(redis: Connection): void {
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
      const channels = [...Array.from({ length: this.#layout.lanes }, (_, lane) => this.#layout.channel(lane)), this.#layout.gapChannel];
      // SSUBSCRIBE takes channels of one slot at a time.
      if (this.#subscriber instanceof Cluster) await Promise.all(channels.map((channel) => this.#subscriber.ssubscribe(channel)));
      else await this.#subscriber.subscribe(...channels);
      this.#checked.subscriber = true;
      this.#update();
    } catch (err) {
      this.#refused('subscriber', 'the subscription', err);
    }
  }

  /** Derives the state from both connections and logs each change once. */
  #update(): void {
    if (this.#state === 'closed') return;
    const up = this.#bothUp();
    if (up && this.#state === 'connecting') {
      this.#setState('connected');
      this.#epoch ??= this.#epochNow;
      this.#logger.info({ node: this.nodeId }, `backplane: connected to Redis at ${this.#options.displayUrl}`);
    } else if (up && this.#state === 'reconnecting' && !this.#rejoining) {
      void this.#rejoin();
    } else if (!up && this.#state === 'connected') {
      this.#setState('reconnecting');
      this.stats.disconnects++;
      this.#lostAt = Date.now();
      this.#notSharedAtLoss = this.stats.eventsNotShared;
      this.#logger.warn(
        { error: this.#lastError },
        `backplane: lost Redis at ${this.#options.displayUrl} (${this.#lastError ?? 'connection closed'}): ` +
          (this.#holdLimit.ms > 0
            ? `holding the events posted to this node for up to ${this.#holdLimit.ms / 1000} s until it is back`
            : 'delivering only the events posted to this node until it is back'),
      );
    }
  }

  /** Back up: marks what a promoted replica lost before publishing anything, then releases the held. */
  async #rejoin(): Promise<void> {
    this.#rejoining = true;
    let lost: Set<string>;
    try {
      lost = await this.history.reconcile(this.#seen);
    } catch (err) {
      this.#rejoining = false;
      this.#refused('publisher', 'the history check after reconnecting', err);
      return;
    }
    const missed = await this.#readMissed(lost);
    this.#rejoining = false;
    if (this.#state !== 'reconnecting' || !this.#bothUp()) {
      this.#update();
      return;
    }
    this.#setState('connected');
    // Before this node's held events: what others published meanwhile, then what arrived since resubscribing.
    const caughtUp = this.#deliverMissed(missed);
    for (const [channel, message] of this.#incoming.splice(0)) this.#dispatch(channel, message);
    const held = this.#held.length;
    this.#releaseHeld();
    const notShared = this.stats.eventsNotShared - this.#notSharedAtLoss;
    const outageMs = Date.now() - this.#lostAt;
    this.stats.outageMs += outageMs;
    if (lost.size > 0) {
      this.stats.librariesLost += lost.size;
      this.#logger.warn(
        { libraries: lost.size },
        `backplane: Redis no longer holds the newest events of ${lost.size} librar${lost.size === 1 ? 'y' : 'ies'} ` +
          '(a replica promoted before it received them): their positioned clients are told to resync',
      );
    }
    void this.#afterRejoin(outageMs, this.#lostAt, caughtUp);
    this.#logger.info(
      { outageMs, eventsHeld: held, eventsNotShared: notShared, librariesLost: lost.size, librariesCaughtUp: caughtUp.size },
      `backplane: back on Redis after ${(outageMs / 1000).toFixed(1)} s; ${held} held event(s) published now; ` +
        `${caughtUp.size} librar${caughtUp.size === 1 ? 'y' : 'ies'} caught up from the history; ` +
        `${notShared} event(s) accepted meanwhile reached this node's subscribers only`,
    );
  }

  /**
   * With a hold: the other nodes' events missed while away, per followed library with a known last
   * position and history not lost. One whose history does not reach back is left out (refreshed).
   */
  async #readMissed(lost: ReadonlySet<string>): Promise<Array<[string, BackplaneMessage[]]>> {
    const missed: Array<[string, BackplaneMessage[]]> = [];
    // Without a hold (one Redis, usually away for longer) desktop clients are refreshed instead.
    if (this.#holdLimit.ms === 0) return missed;
    try {
      const followed = new Set(await (this.#receiver.followedLibraries?.() ?? []));
      const candidates = [...this.#seen].filter(([repoId]) => followed.has(repoId) && !lost.has(repoId));
      const reads = await inBatches(candidates, CATCH_UP_BATCH, ([repoId, since]) =>
        this.history.missedMessages(repoId, since),
      );
      for (const [[repoId], messages] of reads) if (messages !== null) missed.push([repoId, messages]);
    } catch (err) {
      this.#logger.debug({ err }, 'backplane: could not read what this node missed');
    }
    return missed;
  }

  /** Delivers what #readMissed found, library by library in offset order; returns the libraries caught up. */
  #deliverMissed(missed: Array<[string, BackplaneMessage[]]>): Set<string> {
    this.#caughtUpSeqs.clear();
    for (const [repoId, messages] of missed) {
      for (const message of messages) {
        // Ours come back through #own, in the order this node accepted them.
        if (message.origin === this.nodeId || message.event.position === undefined) continue;
        const origin = `${message.origin} ${this.#layout.laneOf(repoId)}`;
        let seqs = this.#caughtUpSeqs.get(origin);
        if (seqs === undefined) this.#caughtUpSeqs.set(origin, (seqs = new Set()));
        seqs.add(message.seq);
        this.#saw(repoId, message.event.position);
        this.stats.eventsReceived++;
        this.#receiver.deliver(message.event);
      }
    }
    return new Set(missed.map(([repoId]) => repoId));
  }

  #bothUp(): boolean {
    const { publisher, subscriber } = this.#checked;
    return publisher && subscriber && this.#publisher.status === 'ready' && this.#subscriber.status === 'ready';
  }

  /** Another node numbered on a promoted replica before this one marked what it had seen: mark it, tell. */
  async #wentBackwards(repoId: string, seen: Position): Promise<void> {
    if (this.#checking.has(repoId)) return;
    this.#checking.add(repoId);
    try {
      await this.history.reconcile(new Map([[repoId, seen]])).catch((err: unknown) => {
        this.#logger.debug({ err, repoId }, 'backplane: could not mark the lost history');
      });
      this.stats.librariesLost++;
      this.#logger.warn(
        { repoId, offset: seen.offset },
        `backplane: the offsets of library ${repoId} went backwards (Redis failed over to a replica without its newest events): its positioned clients are told to resync`,
      );
      const gap: BackplaneGap = { cutOff: 'history-lost', node: this.nodeId, libraries: new Set([repoId]), outageMs: 0 };
      this.#notify(gap);
      if (this.#state !== 'closed') this.#receiver.onGap?.(gap);
    } finally {
      this.#checking.delete(repoId);
    }
  }

  #setState(state: BackplaneState): void {
    this.#state = state;
    if (state === 'connected') {
      this.#attempts.publisher = 0;
      this.#attempts.subscriber = 0;
      this.#lastError = null;
    }
    if (state === 'connected' || state === 'closed') this.#waiters.settleAll();
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
    const position = message.event.position;
    const lane = this.#layout.laneOf(message.event.repoId);
    if (position !== undefined && this.#epoch !== null) this.#epoch[lane] = position.epoch;
    if (message.origin === this.nodeId) {
      // Ours, numbered and back: delivered in the cluster's order, unless it already was here.
      if (message.seq > this.#ownDelivered[lane]!) {
        if (position !== undefined) this.#checkOrder(message.event.repoId, position);
        this.#deliverOwn(lane, message.seq, message.event);
        this.#settle();
      } else this.stats.duplicatesDropped++;
      return;
    }
    const origin = `${message.origin} ${lane}`;
    const caught = this.#caughtUpSeqs.get(origin);
    // One delivered from the history after an outage is a repeat as well.
    const caughtUp = caught?.delete(message.seq) === true;
    const verdict = this.#sequences.check(origin, message.seq);
    if (caughtUp || !verdict.deliver) {
      this.stats.duplicatesDropped++;
      return;
    }
    let missed = verdict.missed;
    if (missed > 0 && caught !== undefined) {
      // Skipped over on the channel, but delivered from the history.
      const earlier = [...caught].filter((seq) => seq < message.seq);
      for (const seq of earlier) caught.delete(seq);
      missed = Math.max(0, missed - earlier.length);
    }
    if (missed > 0) {
      this.stats.eventsMissed += missed;
      this.#logger.info(
        { origin: message.origin, missed },
        `backplane: ${missed} event(s) accepted by node ${message.origin} while the backplane was down never reached this node`,
      );
    }
    this.stats.eventsReceived++;
    if (position !== undefined) this.#checkOrder(message.event.repoId, position);
    this.#receiver.deliver(message.event);
  }

  #checkOrder(repoId: string, position: Position): void {
    const before = this.#seen.get(repoId);
    if (this.#saw(repoId, position) && before !== undefined) void this.#wentBackwards(repoId, before);
  }
}

/** At a URL, wherever the sentinels say the primary is (asked on each reconnect), or a cluster. */
function openRedis(connection: RedisConnection, options: RedisOptions, timeoutMs: number): Connection {
  switch (connection.kind) {
    case 'single':
      return new Redis(connection.url, options);
    case 'sentinel':
      return new Redis({
        ...options,
        sentinels: connection.sentinels,
        name: connection.name,
        username: connection.username ?? undefined,
        password: connection.password ?? undefined,
        sentinelUsername: connection.sentinelUsername ?? undefined,
        sentinelPassword: connection.sentinelPassword ?? undefined,
        db: connection.db,
        sentinelCommandTimeout: timeoutMs,
        failoverDetector: true,
        // TLS to the primary as to the sentinels: ioredis uses `tls` for the former only when told to.
        ...(connection.tls ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
      });
    case 'cluster': {
      const { enableOfflineQueue, retryStrategy, autoResubscribe, ...redisOptions } = options;
      return new Cluster(connection.nodes, {
        enableOfflineQueue,
        clusterRetryStrategy: retryStrategy,
        // One connection per primary for the sharded channels: the subscriber's.
        shardedSubscribers: autoResubscribe === false,
        slotsRefreshTimeout: timeoutMs,
        redisOptions: {
          ...redisOptions,
          username: connection.username ?? undefined,
          password: connection.password ?? undefined,
          ...(connection.tls ? { tls: {} } : {}),
        },
      });
    }
    default: {
      const unknown: never = connection;
      throw new Error(`unknown Redis connection: ${JSON.stringify(unknown)}`);
    }
  }
}
