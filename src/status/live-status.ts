import type { Position } from '../history/position.js';
import type { LibraryEvent } from '../protocol/event.js';

/** Levels read once a second from their owners. */
export interface StatusLevels {
  connections(): number;
  subscriptions(): number;
  subscribedLibraries(): number;
  /** Subscribers of one library now. */
  followersOf(repoId: string): number;
}

/** One second of the server's life. */
export interface StatusPoint {
  /** Unix milliseconds at the end of the second. */
  at: number;
  connections: number;
  subscriptions: number;
  libraries: number;
  /** Events delivered (or found without recipients) in this second. */
  events: number;
  /** Delivery latency percentiles in this second, milliseconds; null without events. */
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
}

export interface TailEntry {
  at: number;
  repoId: string;
  type: string;
  recipients: number;
  /** The event's position: under --workers every worker sees the same event with the same one (whole-status.ts). */
  position?: Position;
}

export interface BusyLibrary {
  repoId: string;
  /** Events in the busy window (the last minute). */
  events: number;
  subscribers: number;
}

export interface StatusUpdate {
  point: StatusPoint;
  /** Entries added since the previous update, oldest first. */
  tail: TailEntry[];
  busiest: BusyLibrary[];
}

export interface StatusSnapshot {
  points: StatusPoint[];
  tail: TailEntry[];
  busiest: BusyLibrary[];
}

export interface LiveStatusOptions {
  now?: () => number;
  historySeconds?: number;
  tailSize?: number;
  busyWindowSeconds?: number;
  busiestCount?: number;
  /** Latency samples and distinct libraries kept per second; past it the rest are not sampled. */
  maxPerSecond?: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

const NO_LEVELS: StatusLevels = { connections: () => 0, subscriptions: () => 0, subscribedLibraries: () => 0, followersOf: () => 0 };

/**
 * What the status page shows: a second-by-second history of levels, event rate and delivery
 * latency, the busiest libraries of the last minute and a tail of recent events. Fed once per
 * event by the hub (never per subscriber); `tick()` closes a second. Memory is bounded by the
 * options, whatever the event rate.
 */
export class LiveStatus {
  #levels: StatusLevels = NO_LEVELS;
  readonly #options: Required<LiveStatusOptions>;

  readonly #points: StatusPoint[] = [];
  readonly #tail: TailEntry[] = [];
  #newInTail = 0;
  #events = 0;
  #latencies: number[] = [];
  #busyNow = new Map<string, number>();
  readonly #busyPast: Array<Map<string, number>> = [];

  constructor(options: LiveStatusOptions = {}) {
    this.#options = { now: Date.now, historySeconds: 120, tailSize: 50, busyWindowSeconds: 60, busiestCount: 10, maxPerSecond: 10_000, ...options };
  }

  /** Where the levels come from; called once the hub and the endpoint exist. */
  readLevelsFrom(levels: StatusLevels): void {
    this.#levels = levels;
  }

  eventDelivered(event: LibraryEvent, recipients: number, latencySeconds: number): void {
    this.#events++;
    if (this.#latencies.length < this.#options.maxPerSecond) this.#latencies.push(latencySeconds * 1000);
    const seen = this.#busyNow.get(event.repoId);
    if (seen !== undefined) this.#busyNow.set(event.repoId, seen + 1);
    else if (this.#busyNow.size < this.#options.maxPerSecond) this.#busyNow.set(event.repoId, 1);
    const entry: TailEntry = { at: this.#options.now(), repoId: event.repoId, type: event.type, recipients };
    if (event.position !== undefined) entry.position = event.position;
    this.#tail.push(entry);
    if (this.#tail.length > this.#options.tailSize) this.#tail.shift();
    this.#newInTail = Math.min(this.#newInTail + 1, this.#options.tailSize);
  }

  /** Closes the current second and returns what changed. */
  tick(): StatusUpdate {
    const sorted = this.#latencies.sort((a, b) => a - b);
    const point: StatusPoint = {
      at: this.#options.now(),
      connections: this.#levels.connections(),
      subscriptions: this.#levels.subscriptions(),
      libraries: this.#levels.subscribedLibraries(),
      events: this.#events,
      latencyP50Ms: sorted.length === 0 ? null : percentile(sorted, 0.5),
      latencyP99Ms: sorted.length === 0 ? null : percentile(sorted, 0.99),
    };
    this.#points.push(point);
    if (this.#points.length > this.#options.historySeconds) this.#points.shift();
    this.#busyPast.push(this.#busyNow);
    if (this.#busyPast.length > this.#options.busyWindowSeconds) this.#busyPast.shift();
    const tail = this.#newInTail === 0 ? [] : this.#tail.slice(-this.#newInTail);
    this.#events = 0;
    this.#latencies = [];
    this.#busyNow = new Map();
    this.#newInTail = 0;
    return { point, tail, busiest: this.busiest() };
  }

  snapshot(): StatusSnapshot {
    return { points: [...this.#points], tail: [...this.#tail], busiest: this.busiest() };
  }

  /** The libraries with the most events in the busy window, closed seconds only. */
  busiest(): BusyLibrary[] {
    const totals = new Map<string, number>();
    for (const second of this.#busyPast) {
      for (const [repoId, count] of second) totals.set(repoId, (totals.get(repoId) ?? 0) + count);
    }
    return [...totals]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, this.#options.busiestCount)
      .map(([repoId, events]) => ({ repoId, events, subscribers: this.#levels.followersOf(repoId) }));
  }
}
