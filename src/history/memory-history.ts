/**
 * One node's history, in the process: a ring of the latest events per library. The epoch is
 * drawn at start, so a restarted server tells every returning client its history is lost.
 */
import type { LibraryEvent } from '../protocol/event.js';
import { judgeRecovery, type EventHistory, type HistoryLimits, type HistoryRead } from './event-history.js';
import { newEpoch, type Position } from './position.js';

interface Held {
  event: LibraryEvent;
  at: number;
}

/** A library's newest offset and its held events, oldest first, in a ring. */
interface LibraryHistory {
  top: number;
  ring: Array<Held | undefined>;
  /** Index of the oldest held event in `ring`. */
  start: number;
  count: number;
}

export class MemoryHistory implements EventHistory {
  readonly epoch: string;
  /** Kept for every library that had an event: offsets must never restart within an epoch. */
  readonly #libraries = new Map<string, LibraryHistory>();
  #held = 0;
  #nextSweep = 0;

  constructor(
    private readonly limits: HistoryLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.epoch = newEpoch();
  }

  /** Returns the event with the library's next position, and keeps it. */
  append(event: LibraryEvent): LibraryEvent {
    const library = this.#library(event.repoId);
    const positioned: LibraryEvent = { ...event, position: { epoch: this.epoch, offset: ++library.top } };
    this.#keep(library, positioned);
    return positioned;
  }

  #library(repoId: string): LibraryHistory {
    let library = this.#libraries.get(repoId);
    if (library === undefined) {
      library = { top: 0, ring: [], start: 0, count: 0 };
      this.#libraries.set(repoId, library);
    }
    return library;
  }

  #keep(library: LibraryHistory, positioned: LibraryEvent): void {
    const { size } = this.limits;
    if (size === 0) return;
    const now = this.now();
    this.#sweep(now);
    this.#expire(library, now);
    const held = { event: positioned, at: now };
    const { ring } = library;
    if (library.count < ring.length) {
      ring[(library.start + library.count) % ring.length] = held;
      library.count++;
      this.#held++;
    } else if (ring.length < size) {
      // Full but allowed to grow: lay it out oldest first again, then append.
      if (library.start !== 0) library.ring = [...ring.slice(library.start), ...ring.slice(0, library.start)];
      library.start = 0;
      library.ring.push(held);
      library.count++;
      this.#held++;
    } else {
      ring[library.start] = held;
      library.start = (library.start + 1) % ring.length;
    }
  }

  async read(repoId: string, since: Position | null): Promise<HistoryRead> {
    return this.readNow(repoId, since);
  }

  /** `read`, at once: the memory history has nothing to wait for. */
  readNow(repoId: string, since: Position | null): HistoryRead {
    const library = this.#libraries.get(repoId);
    if (library === undefined) return judgeRecovery({ epoch: this.epoch, top: 0, events: [] }, since);
    this.#expire(library, this.now());
    const events: LibraryEvent[] = [];
    for (let i = 0; i < library.count; i++) events.push(library.ring[(library.start + i) % library.ring.length]!.event);
    return judgeRecovery({ epoch: this.epoch, top: library.top, events }, since);
  }

  /** Events held in all. */
  get size(): number {
    return this.#held;
  }

  /** Libraries nobody publishes to any more still let their events age out, once in a while. */
  #sweep(now: number): void {
    if (now < this.#nextSweep) return;
    this.#nextSweep = now + Math.max(1000, this.limits.ttlMs / 4);
    for (const library of this.#libraries.values()) this.#expire(library, now);
  }

  #expire(library: LibraryHistory, now: number): void {
    const oldest = now - this.limits.ttlMs;
    while (library.count > 0 && library.ring[library.start]!.at <= oldest) {
      library.ring[library.start] = undefined;
      library.start = (library.start + 1) % library.ring.length;
      library.count--;
      this.#held--;
    }
  }
}
