/**
 * The seam between "who is connected here" (the Hub) and "how events travel between nodes": a
 * node hands every event it accepts to its backplane, which gives it its position (one numbering
 * for the whole cluster), keeps it in the history any node can read, and delivers it to every
 * node's Hub, this one included.
 */
import type { EventHistory } from '../history/event-history.js';
import type { LibraryEvent } from '../protocol/event.js';

/** Unless `connected`, this node still delivers its own events but other nodes miss them. */
export type BackplaneState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

export class BackplaneStats {
  /** Events accepted here and handed to the other nodes. */
  eventsShared = 0;
  /** Events accepted here while the backplane was down: delivered on this node only. */
  eventsNotShared = 0;
  /** Events from other nodes handed to this node's Hub. */
  eventsReceived = 0;
  /** Events another node accepted that never arrived here (its sequence skipped them). */
  eventsMissed = 0;
  /** Messages dropped as repeated or older than one already delivered. */
  duplicatesDropped = 0;
  /** Messages that could not be decoded. */
  malformedMessages = 0;
  /** Times the connection was lost after having been up. */
  disconnects = 0;
  /** Events accepted here while Redis was away, held for it to come back (a failover). */
  eventsHeld = 0;
  /** Held events that waited longer than the hold: delivered on this node only (also in eventsNotShared). */
  eventsHeldTooLong = 0;
  /** Libraries whose newest events Redis lost in a failover (their positioned clients were told to resync). */
  librariesLost = 0;
  /** Time spent without Redis, over every outage that ended, in ms. */
  outageMs = 0;
}

export interface Backplane {
  /** `memory` (one node), `redis`, or `ipc` (a cluster worker). */
  readonly kind: string;
  /** This process, as other nodes see it: unique per start, so a restarted node is a new origin. */
  readonly nodeId: string;
  readonly state: BackplaneState;
  /** Counters since start, read at scrape time (Redis only: the others have nothing to count). */
  readonly stats?: Readonly<BackplaneStats>;
  /** Connects, then hands events to `receiver`; resolves once connected, failed once, or after `waitMs`. */
  start(waitMs: number, receiver: BackplaneReceiver): Promise<void>;
  /** Positions an event accepted here and delivers it to every node; unpositioned (Redis down), here only. */
  publish(event: LibraryEvent): void;
  /** The recent events of each library, as positioned subscribers recover them. */
  readonly history: EventHistory;
  close(): Promise<void>;
}

/**
 * Events this node's subscribers may have missed, known once the backplane is whole again: `this-node`
 * or `another-node` was cut off, or Redis failed over to a replica lacking the newest events
 * (`history-lost`). `libraries`: those that had such events, or `all` when that cannot be told.
 */
export interface BackplaneGap {
  cutOff: 'this-node' | 'another-node' | 'history-lost';
  /** The node that was cut off. */
  node: string;
  libraries: ReadonlySet<string> | 'all';
  outageMs: number;
}

/** Given at start: the subscribers are wired up after the backplane is made (they read its history). */
export interface BackplaneReceiver {
  /** Hands events (this node's and others', with their positions) to this node's subscribers. */
  deliver: (event: LibraryEvent) => void;
  onGap?: (gap: BackplaneGap) => void;
  /** What this node's subscribers follow (after an outage); a primary asks its workers, `all` if it fails. */
  followedLibraries?: () => Iterable<string> | Promise<Iterable<string>>;
}

/** Before start: nothing is delivered, because nothing can be published yet. */
export const NO_RECEIVER: BackplaneReceiver = { deliver: () => {} };
