/**
 * The seam between "who is connected here" (the Hub) and "how events travel between nodes".
 * A node hands every event it accepts to its backplane; the backplane delivers it to this
 * node's Hub at once and carries it to every other node, whose backplanes hand it to their Hubs.
 *
 * History: the backplane gives every event it accepts its position (a per-library offset in
 * an epoch, src/history/position.ts), in one place for the whole cluster, and keeps the
 * library's recent events where any node can read them (`history`). The memory backplane keeps
 * a ring per library in the process; the Redis one numbers, stores and publishes each event
 * in one script. The event handed to the Hub carries its position.
 */
import type { EventHistory } from '../history/event-history.js';
import type { LibraryEvent } from '../protocol/event.js';

/**
 * `connected`: events reach every node. `connecting` (never connected yet) and `reconnecting`
 * (connection lost): this node still delivers its own events, other nodes miss them.
 */
export type BackplaneState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface BackplaneStats {
  /** Events accepted here and handed to the other nodes. */
  eventsShared: number;
  /** Events accepted here while the backplane was down: delivered on this node only. */
  eventsNotShared: number;
  /** Events from other nodes handed to this node's Hub. */
  eventsReceived: number;
  /** Events another node accepted that never arrived here (its sequence skipped them). */
  eventsMissed: number;
  /** Messages dropped as repeated or older than one already delivered. */
  duplicatesDropped: number;
  /** Messages that could not be decoded. */
  malformedMessages: number;
  /** Times the connection was lost after having been up. */
  disconnects: number;
  /** Events accepted here while Redis was away, held for it to come back (a failover). */
  eventsHeld: number;
  /** Held events that waited longer than the hold: delivered on this node only (also in eventsNotShared). */
  eventsHeldTooLong: number;
  /** Libraries whose newest events Redis lost in a failover (their positioned clients were told to resync). */
  librariesLost: number;
  /** Time spent without Redis, over every outage that ended, in ms. */
  outageMs: number;
}

export interface Backplane {
  /** `memory` (one node) or `redis`. */
  readonly kind: string;
  /** This process, as other nodes see it: unique per start, so a restarted node is a new origin. */
  readonly nodeId: string;
  readonly state: BackplaneState;
  /** Counters since start, read at scrape time (Redis only: the others have nothing to count). */
  readonly stats?: Readonly<BackplaneStats>;
  /**
   * Connects and from then on hands events to `receiver`; resolves once connected, or once the
   * first attempt failed or took `waitMs` (retrying goes on).
   */
  start(waitMs: number, receiver: BackplaneReceiver): Promise<void>;
  /**
   * Gives an event accepted by this node its position and delivers it here and to every other
   * node. An event that cannot be given a position (Redis down) is delivered here only, without one.
   */
  publish(event: LibraryEvent): void;
  /** The recent events of each library, as positioned subscribers recover them. */
  readonly history: EventHistory;
  close(): Promise<void>;
}

/**
 * Events some subscribers of this node may have missed, known once the backplane is whole again:
 * `this-node` was cut off (other nodes' events did not reach it), or `another-node` was and
 * accepted events that reached its own subscribers only, or (`history-lost`) Redis failed over
 * to a replica that lacked the newest events of some libraries. `libraries`: those that had
 * such events, or `all` when that cannot be told.
 */
export interface BackplaneGap {
  cutOff: 'this-node' | 'another-node' | 'history-lost';
  /** The node that was cut off. */
  node: string;
  libraries: ReadonlySet<string> | 'all';
  outageMs: number;
}

/** Where a backplane hands events (its own and other nodes', with their positions) to this node's subscribers. */
export type DeliverEvent = (event: LibraryEvent) => void;

/**
 * This node's side of the backplane, given at start: the subscribers are wired up after the
 * backplane is made (they read its history), so nothing reaches them before.
 */
export interface BackplaneReceiver {
  deliver: DeliverEvent;
  /** Called when the backplane is whole again after this node or another was cut off (Redis). */
  onGap?: (gap: BackplaneGap) => void;
  /**
   * The libraries this node's subscribers follow: after an outage, those that had events meanwhile
   * make the gap. A cluster primary asks its workers (a promise); one that rejects makes the gap `all`.
   */
  followedLibraries?: () => Iterable<string> | Promise<Iterable<string>>;
}

/** Before start: nothing is delivered, because nothing can be published yet. */
export const NO_RECEIVER: BackplaneReceiver = { deliver: () => {} };

export function emptyBackplaneStats(): BackplaneStats {
  return {
    eventsShared: 0,
    eventsNotShared: 0,
    eventsReceived: 0,
    eventsMissed: 0,
    duplicatesDropped: 0,
    malformedMessages: 0,
    disconnects: 0,
    eventsHeld: 0,
    eventsHeldTooLong: 0,
    librariesLost: 0,
    outageMs: 0,
  };
}
