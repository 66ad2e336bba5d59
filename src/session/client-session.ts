/**
 * One client's session, whatever carries it: a WebSocket, an SSE stream or a long poll. Every
 * rule of a client lives here, written once: token checks, the library and user caps, the
 * refused-subscribe allowance, the subscribe deadline, and the cursor of positioned messages.
 * A transport extends it with two things only: how a message is written (its encoding) and
 * how the session ends when a rule ends it (a close code, or an HTTP status).
 */
import type { VerificationKeys } from '../auth/key-ring.js';
import { SubscribeRefused, verifySubscriberToken, type SubscriberGrant } from '../auth/subscriber-token.js';
import type { LiveSettings } from '../config/settings.js';
import type { Hub } from '../hub/hub.js';
import type { Subscriber } from '../hub/subscriber.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { SubscribeEntry } from '../protocol/client-message.js';
import { encodeError, encodeJwtExpired } from '../protocol/event.js';
import type { Outgoing } from '../protocol/outgoing.js';
import type { ClientAddress } from '../transport/client-address.js';
import type { Cursor } from './cursor.js';
import { FailureAllowance, FailuresPerAddress } from './failure-allowance.js';

/** What every session shares: the hub, the key, and the live limits. */
export class Sessions {
  readonly hub: Hub;
  /** A KeyRing follows key rotations (SIGHUP) for sessions already open. */
  readonly key: VerificationKeys;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly now: () => number;
  /** Read when they apply: a reload may change them. */
  readonly live: Pick<LiveSettings, 'limits'>;
  /** Refused tokens per client address, for requests (each one new, unlike a connection). */
  readonly failures: FailuresPerAddress;
  #nextId = 1;

  constructor(options: Pick<Sessions, 'hub' | 'key' | 'logger' | 'metrics' | 'now' | 'live'>) {
    ({ hub: this.hub, key: this.key, logger: this.logger, metrics: this.metrics, now: this.now, live: this.live } = options);
    this.failures = new FailuresPerAddress(this.live, this.now);
  }

  nextId(): number {
    return this.#nextId++;
  }
}

/** A rule that ends a session; each transport tells its client in its own way. */
export type SessionEnd = 'failed-subscribes' | 'user-cap' | 'subscribe-timeout';

/**
 * A connection (a WebSocket) has its own refused-subscribe allowance and must subscribe in time;
 * a request (an SSE stream, a long poll) is one of many sharing its client address's allowance.
 */
export type SessionKind = 'connection' | 'request';

export abstract class ClientSession implements Subscriber {
  readonly id: number;
  /** Connections only; a request takes from its client address's (Sessions.failures). */
  readonly #allowance: FailureAllowance | null;
  /** Closes a connection that has not subscribed anything in time; cleared by its first subscription. */
  #deadline: NodeJS.Timeout | undefined;

  constructor(
    protected readonly sessions: Sessions,
    /** The client address (trusted_proxies) whose caps and allowance this session counts against. */
    readonly client: ClientAddress,
    kind: SessionKind,
    readonly positioned: boolean,
    /** Requests only: where each library stands, moved by every positioned message sent. */
    readonly cursor: Cursor | null = null,
  ) {
    this.id = sessions.nextId();
    const { limits } = sessions.live;
    this.#allowance = kind === 'connection' ? new FailureAllowance(limits.maxFailedSubscribesPerMinute, sessions.now()) : null;
    if (kind === 'connection' && limits.subscribeTimeoutMs > 0) {
      this.#deadline = setTimeout(() => this.#noSubscription(limits.subscribeTimeoutMs), limits.subscribeTimeoutMs);
      this.#deadline.unref();
    }
  }

  /** Encodes a complete message for the client and writes or queues it; never blocks. */
  protected abstract write(message: Outgoing): void;
  /** A rule ended the session: tell the client why, in the transport's way, and leave. */
  protected abstract end(why: SessionEnd): void;

  send(message: Outgoing): void {
    if (this.cursor !== null && message.repoId !== undefined && message.position !== undefined) this.cursor.set(message.repoId, message.position);
    this.write(message);
  }

  get remote(): string {
    return this.client.address;
  }

  get libraries(): number {
    return this.sessions.hub.librariesOf(this);
  }

  /**
   * Subscribes each library its token grants and answers the others (`jwt-expired`, `error`).
   * False when a rule ended the session instead: its refused subscribes ran out, or the user cap
   * refused every library it holds a valid token for (kept, it would hold only a socket).
   */
  subscribe(entries: readonly SubscribeEntry[]): boolean {
    const { hub, key, metrics, logger } = this.sessions;
    const now = this.sessions.now();
    let refusedForUser = false;
    for (const entry of entries) {
      if (this.#overLibraryLimit(entry.repoId)) continue;
      let grant: SubscriberGrant;
      try {
        grant = verifySubscriberToken(entry.token ?? '', entry.repoId, key, now);
      } catch (err) {
        if (!(err instanceof SubscribeRefused)) throw err;
        metrics.subscribeRefused(err.reason);
        logger.debug({ connection: this.id, remote: this.remote, repoId: entry.repoId, reason: err.reason }, `subscribe refused: ${err.message}`);
        if (!this.#takeFailure(now)) return this.#endBy('failed-subscribes');
        this.send(encodeJwtExpired(entry.repoId));
        continue;
      }
      if (this.#overUserLimit(grant)) {
        refusedForUser = true;
        continue;
      }
      hub.subscribe(this, grant, this.positioned ? entry.since : undefined);
      clearTimeout(this.#deadline);
    }
    if (refusedForUser && this.libraries === 0) return this.#endBy('user-cap');
    return true;
  }

  unsubscribe(repoIds: readonly string[]): void {
    for (const repoId of repoIds) this.sessions.hub.unsubscribe(this, repoId);
  }

  /** Leaves the hub: every subscription of the session ends. Transports call it once they are closing. */
  protected leave(): void {
    clearTimeout(this.#deadline);
    this.sessions.hub.removeSubscriber(this);
  }

  #endBy(why: SessionEnd): false {
    this.end(why);
    return false;
  }

  /** A new library past the per-session limit is refused with an `error` message; the session stays. */
  #overLibraryLimit(repoId: string): boolean {
    const max = this.sessions.live.limits.maxLibrariesPerConnection;
    if (this.sessions.hub.follows(this, repoId) || this.libraries < max) return false;
    this.sessions.metrics.subscribeLimited('library-cap');
    this.sessions.logger.debug({ connection: this.id, repoId, max }, 'subscribe refused: library limit reached');
    this.send(encodeError(`subscribe refused: this connection already follows ${max} libraries, the server's limit; unsubscribe one first`, repoId));
    return true;
  }

  /**
   * A session counts for a user from its first subscription under that name; one more than
   * max_connections_per_user is refused with an `error`. A counted one may follow more libraries.
   */
  #overUserLimit({ username, repoId }: SubscriberGrant): boolean {
    const { hub, metrics, logger } = this.sessions;
    const max = this.sessions.live.limits.maxConnectionsPerUser;
    if (max === 0 || hub.holdsUser(this, username) || hub.subscribersOfUser(username) < max) return false;
    metrics.subscribeLimited('user-cap');
    logger.warn({ connection: this.id, remote: this.remote, repoId, max }, 'subscribe refused: the user already holds as many connections as max_connections_per_user allows');
    this.send(encodeError(`subscribe refused: this user already has ${max} connections open, the server's limit; close one first`, repoId));
    return true;
  }

  /**
   * False when the allowance of refused subscribes is empty. Ending, not slowing down: such a
   * client is misconfigured or probing, and stock clients come back only after 60 s.
   */
  #takeFailure(now: number): boolean {
    const perMinute = this.sessions.live.limits.maxFailedSubscribesPerMinute;
    const allowed = this.#allowance === null ? this.sessions.failures.take(this.client) : perMinute === 0 || this.#allowance.take(now, perMinute);
    if (!allowed) this.sessions.logger.warn({ connection: this.id, remote: this.remote, perMinute }, 'too many refused subscribes (bad or expired tokens): ending the session');
    return allowed;
  }

  #noSubscription(timeoutMs: number): void {
    if (this.libraries > 0) return;
    this.sessions.logger.debug({ connection: this.id, remote: this.remote, timeoutMs }, 'no subscription in time: closing');
    this.end('subscribe-timeout');
  }
}
