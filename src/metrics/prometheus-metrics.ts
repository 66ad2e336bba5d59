import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BackplaneState, BackplaneStats } from '../backplane/backplane.js';
import type { PublisherAuthFailure, PublisherKind } from '../auth/publisher-auth.js';
import type { SubscribeFailure } from '../auth/subscriber-token.js';
import type { GroupCacheStats } from '../groups/cached-group-directory.js';
import { RESYNC_REASONS, type ResyncReason } from '../history/event-history.js';
import type { LibraryEvent } from '../protocol/event.js';
import { CLOSE_REASONS, type CloseReason } from '../transport/close-codes.js';
import type { EventRejection, FallbackTransport, Metrics, RequestRefusal, SubscribeLimit, UndeliveredReason } from './metrics.js';

/** Levels read from their owners at scrape time, so that the hot path never updates a gauge. */
export interface MetricLevels {
  connections(): number;
  /** SSE streams open and long polls waiting now. */
  fallbacks(): Record<FallbackTransport, number>;
  subscriptions(): number;
  subscribedLibraries(): number;
  /** Null when no group database is configured. */
  groupLookups(): GroupCacheStats | null;
  /** How events travel between nodes, and whether that works now. */
  backplane(): BackplaneLevels;
}

/** The backplane's state, and its counters since start (Redis only). */
export interface BackplaneLevels {
  kind: string;
  state: BackplaneState;
  stats?: Readonly<BackplaneStats>;
}

const NO_LEVELS: MetricLevels = {
  connections: () => 0,
  fallbacks: () => ({ sse: 0, 'long-poll': 0 }),
  subscriptions: () => 0,
  subscribedLibraries: () => 0,
  groupLookups: () => null,
  backplane: () => ({ kind: 'memory', state: 'connected' }),
};

const BACKPLANE_STATES: readonly BackplaneState[] = ['connecting', 'connected', 'reconnecting', 'closed'];

const BACKPLANE_OUTCOMES = {
  shared: 'eventsShared',
  held: 'eventsHeld',
  'held-too-long': 'eventsHeldTooLong',
  'not-shared': 'eventsNotShared',
  received: 'eventsReceived',
  missed: 'eventsMissed',
  duplicate: 'duplicatesDropped',
  malformed: 'malformedMessages',
} satisfies Record<string, keyof BackplaneStats>;

/**
 * `notification_backplane_state` and the backplane's counters, all named `notification_backplane_*`:
 * this process's backplane (under --workers, the primary's: cluster/whole-server-figures.ts).
 */
export function backplaneStateGauge(registers: Registry[], read: () => BackplaneLevels): void {
  const counter = (name: string, help: string, value: (stats: Readonly<BackplaneStats>) => number): void => {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        const { stats } = read();
        if (stats !== undefined) this.inc(value(stats));
      },
    });
  };
  counter('notification_backplane_disconnects_total', 'Times this node lost its Redis connection after having had it (a Redis restart, a failover, a network cut).', (s) => s.disconnects);
  counter('notification_backplane_outage_seconds_total', 'Time this node spent without Redis, over every outage that has ended.', (s) => s.outageMs / 1000);
  counter('notification_backplane_libraries_lost_total', 'Libraries whose newest events Redis lost in a failover (a replica promoted before it received them); their positioned clients were told to resync (history-lost).', (s) => s.librariesLost);
  new Counter({
    name: 'notification_backplane_events_total',
    help: 'Events through the backplane, by outcome: shared (numbered by Redis and sent to every node), held (accepted while Redis was away and held for it), held-too-long (held past redis_failover_hold: this node only), not-shared (this node only, held-too-long included), received (from other nodes), missed (other nodes\' events that never arrived), duplicate (a repeat of one delivered already: dropped), malformed (a message that could not be read: dropped).',
    labelNames: ['outcome'],
    registers,
    collect() {
      this.reset();
      const { stats } = read();
      if (stats === undefined) return;
      for (const [outcome, key] of Object.entries(BACKPLANE_OUTCOMES)) this.inc({ outcome }, stats[key]);
    },
  });
  new Gauge({
    name: 'notification_backplane_state',
    help: 'The backplane (kind: memory or redis) by state: 1 for the state it is in now, 0 for the others. With Redis, anything but connected means events posted to other nodes do not reach this one.',
    labelNames: ['kind', 'state'],
    registers,
    collect() {
      const { kind, state } = read();
      this.reset();
      for (const each of BACKPLANE_STATES) this.set({ kind, state: each }, each === state ? 1 : 0);
    },
  });
}

/**
 * The event types Seafile sends get their own label value; any other type a publisher makes
 * up is counted as `other`, so a publisher cannot grow the number of series without bound.
 */
const EVENT_TYPES = ['repo-update', 'file-lock-changed', 'folder-perm-changed', 'comment-update'] as const;
const KNOWN_EVENT_TYPES: ReadonlySet<string> = new Set(EVENT_TYPES);
const OTHER_TYPE = 'other';

function eventTypeLabel(type: string): string {
  return KNOWN_EVENT_TYPES.has(type) ? type : OTHER_TYPE;
}

/** The members of a union as label values: adding a member to the union breaks the build here. */
function members<T extends string>(all: Record<T, 1>): T[] {
  return Object.keys(all) as T[];
}

const PUBLISHER_KINDS = members<PublisherKind>({ jwt: 1, 'legacy-header': 1, 'static-token': 1 });
const SUBSCRIBE_FAILURES = members<SubscribeFailure>({ malformed: 1, algorithm: 1, signature: 1, expired: 1, 'not-yet-valid': 1, 'wrong-library': 1 });
const PUBLISHER_FAILURES = members<PublisherAuthFailure>({
  missing: 1, malformed: 1, algorithm: 1, signature: 1, expired: 1, 'not-yet-valid': 1, 'subscriber-token': 1,
});
const EVENT_REJECTIONS = members<EventRejection>({ method: 1, 'too-large': 1, invalid: 1 });
const REQUEST_REFUSALS = members<RequestRefusal>({
  origin: 1, 'connection-cap': 1, 'address-cap': 1, draining: 1, 'bad-request': 1, timeout: 1, 'user-cap': 1, 'failed-subscribes': 1,
});
const SUBSCRIBE_LIMITS = members<SubscribeLimit>({ 'library-cap': 1, 'user-cap': 1 });
const FALLBACK_TRANSPORTS = members<FallbackTransport>({ sse: 1, 'long-poll': 1 });
const UNDELIVERED_REASONS = members<UndeliveredReason>({ 'no-database': 1, 'lookup-failed': 1 });

/** 0.1 ms to 1 s: a direct fan-out takes microseconds, one behind a group query milliseconds. */
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** One series of a labelled counter, as a plain number: what the hot path adds to. */
interface Cell {
  readonly labels: Readonly<Record<string, string>>;
  value: number;
}

/**
 * A labelled counter kept as plain numbers, handed to prom-client at scrape time (whose `inc`
 * hashes and validates the labels, even on a bound child). Every series exists from the start,
 * at 0; a key is its label values in `labelNames` order, joined by spaces.
 */
function countsByLabel<K extends string>(
  registers: Registry[],
  keys: readonly K[],
  { name, help, labelNames = ['reason'] }: { name: string; help: string; labelNames?: string[] },
): Map<K, Cell> {
  const cells = new Map<K, Cell>();
  for (const key of keys) {
    const values = key.split(' ');
    const labels = Object.fromEntries(labelNames.map((label, i) => [label, values[i]!]));
    cells.set(key, { labels, value: 0 });
  }
  new Counter({
    name,
    help,
    labelNames,
    registers,
    collect() {
      this.reset();
      for (const cell of cells.values()) this.inc(cell.labels, cell.value);
    },
  });
  return cells;
}

/** The `Metrics` as Prometheus metrics, in a registry of its own, with prom-client's process metrics. */
export class PrometheusMetrics implements Metrics {
  readonly registry = new Registry();
  #levels: MetricLevels = NO_LEVELS;

  readonly #opened: Counter;
  readonly #closed: Map<CloseReason, Cell>;
  /** Keyed by `<endpoint> <reason>`. */
  readonly #authFailures: Map<string, Cell>;
  readonly #expired: Counter;
  readonly #limited: Map<SubscribeLimit, Cell>;
  readonly #rejected: Map<EventRejection, Cell>;
  /** Keyed by `<type label> <source>`. */
  readonly #accepted: Map<string, Cell>;
  readonly #sent: Counter;
  readonly #latency = new Map<string, { observe(value: number): void }>();
  readonly #undelivered: Map<UndeliveredReason, Cell>;
  readonly #refused: Map<RequestRefusal, Cell>;
  readonly #fallbackRequests: Map<FallbackTransport, Cell>;
  readonly #recoveries: Counter;
  readonly #replayed: Counter;
  readonly #resyncs: Map<ResyncReason, Cell>;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    // Arrow functions cannot be used for collect (prom-client binds `this`), so capture the owner.
    const metrics = this;
    const level = (name: string, help: string, read: (levels: MetricLevels) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(metrics.#levels));
        },
      });
    };
    const counter = (name: string, help: string): Counter => new Counter({ name, help, registers });

    level('notification_connections', 'WebSocket connections open now.', (levels) => levels.connections());
    this.#opened = counter('notification_connections_opened_total', 'WebSocket connections accepted since start.');
    this.#closed = countsByLabel(registers, CLOSE_REASONS, {
      name: 'notification_connections_closed_total',
      help: 'WebSocket connections ended since start, by why: normal (the client closed), going-away (shutdown), dead-peer, queue-overflow (4000, a client not reading), subscribe-timeout (4001), failed-subscribes (4002), user-cap (4003), malformed (1007), binary (1003), too-big (1009), protocol-error (1002), abnormal (no close frame).',
    });

    new Gauge({
      name: 'notification_fallback_requests_open',
      help: 'Clients without a WebSocket now: SSE streams open (transport="sse") and long polls waiting for an answer (transport="long-poll").',
      labelNames: ['transport'],
      registers,
      collect() {
        const open = metrics.#levels.fallbacks();
        for (const transport of FALLBACK_TRANSPORTS) this.set({ transport }, open[transport]);
      },
    });
    this.#fallbackRequests = countsByLabel(registers, FALLBACK_TRANSPORTS, {
      name: 'notification_fallback_requests_total',
      help: 'SSE streams opened and long polls accepted since start (after the origin, connection-cap and request checks; refusals are in notification_requests_refused_total).',
      labelNames: ['transport'],
    });

    backplaneStateGauge(registers, () => metrics.#levels.backplane());

    level('notification_subscriptions', 'Library subscriptions held now, over all connections.', (levels) => levels.subscriptions());
    level('notification_subscribed_libraries', 'Distinct libraries with at least one subscriber now.', (levels) => levels.subscribedLibraries());
    this.#expired = counter(
      'notification_subscriptions_expired_total',
      'Subscriptions ended because their token expired (the client was sent jwt-expired).',
    );
    this.#limited = countsByLabel(registers, SUBSCRIBE_LIMITS, {
      name: 'notification_subscribes_limited_total',
      help: 'Libraries of subscribe messages refused, although their token was valid, because of a limit (the client is sent an error message): library-cap (max_libraries_per_connection), user-cap (max_connections_per_user).',
    });
    // One counter, two endpoints with reasons of their own.
    const authFailures = [
      ...SUBSCRIBE_FAILURES.map((reason) => `subscribe ${reason}`),
      ...PUBLISHER_FAILURES.map((reason) => `events ${reason}`),
    ];
    this.#authFailures = countsByLabel(registers, authFailures, {
      name: 'notification_auth_failures_total',
      help: 'Refused credentials: endpoint "subscribe" (one library of a subscribe message, answered jwt-expired) or "events" (a publisher, answered 401/403), by reason.',
      labelNames: ['endpoint', 'reason'],
    });

    this.#rejected = countsByLabel(registers, EVENT_REJECTIONS, {
      name: 'notification_events_rejected_total',
      help: 'POST /events requests refused other than for their credentials: method (405), too-large (413), invalid (400).',
    });
    const types = [...EVENT_TYPES, OTHER_TYPE];
    const accepted = types.flatMap((type) => PUBLISHER_KINDS.map((source) => `${type} ${source}`));
    this.#accepted = countsByLabel(registers, accepted, {
      name: 'notification_events_accepted_total',
      help: 'Events accepted on POST /events, by type (Seafile\'s four, else "other") and source (how the publisher authenticated: jwt, legacy-header, static-token).',
      labelNames: ['type', 'source'],
    });
    const latency = new Histogram({
      name: 'notification_delivery_latency_seconds',
      help: 'From an event accepted to its frame handed to the socket of every recipient, group lookup included; observed once per event that had at least one recipient.',
      labelNames: ['type'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    for (const type of types) {
      latency.zero({ type });
      this.#latency.set(type, latency.labels({ type }));
    }
    this.#sent = counter(
      'notification_messages_sent_total',
      'Event messages handed to subscribers\' sockets (one per recipient per event).',
    );

    this.#undelivered = countsByLabel(registers, UNDELIVERED_REASONS, {
      name: 'notification_group_events_undelivered_total',
      help: 'Group-targeted folder-perm-changed events delivered to nobody because the group\'s members could not be known: no-database, lookup-failed.',
    });
    this.#refused = countsByLabel(registers, REQUEST_REFUSALS, {
      name: 'notification_requests_refused_total',
      help: 'HTTP requests turned away before they became a WebSocket, an SSE stream or a long poll: origin (403), connection-cap (503), address-cap (429, max_connections_per_address), draining (503), bad-request (400), timeout (408, headers not complete in time); SSE and long polling only: user-cap (429, max_connections_per_user), failed-subscribes (429, max_failed_subscribes_per_minute per client address).',
    });
    this.#recoveries = counter(
      'notification_recoveries_total',
      'Positioned subscriptions that recovered from a position (subscribe with since, or a catch-up after a backplane gap) and were answered subscribed.',
    );
    this.#replayed = counter(
      'notification_events_replayed_total',
      'Missed events sent to positioned subscriptions in their recoveries, before subscribed.',
    );
    this.#resyncs = countsByLabel(registers, RESYNC_REASONS, {
      name: 'notification_resyncs_total',
      help: 'Positioned subscriptions told to resync, by why: epoch-changed, history-gone, unknown-position, history-unavailable, too-far-behind, events-not-shared, history-lost.',
    });
    new Counter({
      name: 'notification_group_lookups_total',
      help: 'Group member lookups: hit (answered from the cache or by joining a query in flight), miss (a database query was made).',
      labelNames: ['result'],
      registers,
      collect() {
        const stats = metrics.#levels.groupLookups();
        this.reset();
        this.inc({ result: 'hit' }, stats?.hits ?? 0);
        this.inc({ result: 'miss' }, stats?.misses ?? 0);
      },
    });
    new Counter({
      name: 'notification_group_lookup_failures_total',
      help: 'Group database queries that failed (the events waiting on them reached nobody).',
      registers,
      collect() {
        this.reset();
        this.inc(metrics.#levels.groupLookups()?.failures ?? 0);
      },
    });
  }

  /** Where the levels come from; called once the hub and the endpoint exist. */
  readLevelsFrom(levels: MetricLevels): void {
    this.#levels = levels;
  }

  /** The text exposition format, for `GET /metrics`. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  connectionOpened(): void {
    this.#opened.inc();
  }

  connectionClosed(reason: CloseReason): void {
    this.#closed.get(reason)!.value++;
  }

  subscribeRefused(reason: SubscribeFailure): void {
    this.#authFailures.get(`subscribe ${reason}`)!.value++;
  }

  subscribeLimited(reason: SubscribeLimit): void {
    this.#limited.get(reason)!.value++;
  }

  subscriptionExpired(): void {
    this.#expired.inc();
  }

  publisherRefused(reason: PublisherAuthFailure): void {
    this.#authFailures.get(`events ${reason}`)!.value++;
  }

  eventRejected(reason: EventRejection): void {
    this.#rejected.get(reason)!.value++;
  }

  eventAccepted(type: string, source: PublisherKind): void {
    this.#accepted.get(`${eventTypeLabel(type)} ${source}`)!.value++;
  }

  eventDelivered(event: LibraryEvent, recipients: number, latencySeconds: number): void {
    if (recipients === 0) return;
    this.#sent.inc(recipients);
    this.#latency.get(eventTypeLabel(event.type))!.observe(latencySeconds);
  }

  groupEventUndelivered(reason: UndeliveredReason): void {
    this.#undelivered.get(reason)!.value++;
  }

  requestRefused(reason: RequestRefusal): void {
    this.#refused.get(reason)!.value++;
  }

  fallbackRequest(transport: FallbackTransport): void {
    this.#fallbackRequests.get(transport)!.value++;
  }

  recovered(replayed: number): void {
    this.#recoveries.inc();
    if (replayed > 0) this.#replayed.inc(replayed);
  }

  resynced(reason: ResyncReason): void {
    this.#resyncs.get(reason)!.value++;
  }
}
