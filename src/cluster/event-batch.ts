/**
 * The primary's fan-out of positioned events to its workers: the events sequenced while it
 * handles the messages of one read from its workers' channels leave as ONE `events` message
 * per worker. Node emits those messages on process.nextTick, so a microtask runs after all of
 * them and adds no wait; a flush on setImmediate (one more turn) made `scale` slower, since
 * with one POST in flight most turns hold a single event. Any other
 * message to the workers goes through `send`, which flushes first: a history answer still
 * comes after every event sequenced before it.
 */
import type { LibraryEvent } from '../protocol/event.js';
import { toWire, type PrimaryMessage, type WireEvent } from '../backplane/cluster-messages.js';

/** A worker as the batch sees it (cluster's Worker; a fake in tests). */
export interface BatchTarget {
  isConnected(): boolean;
  send(message: PrimaryMessage): boolean;
}

export class WorkerEventBatch {
  readonly #targets: () => Iterable<BatchTarget>;
  #events: WireEvent[] = [];
  #origins: number[] = [];
  #scheduled = false;
  readonly #flush = (): void => this.flush();

  constructor(targets: () => Iterable<BatchTarget>) {
    this.#targets = targets;
  }

  /** Queues `event` (accepted by worker `origin`, 0 for none) for every worker, in this order. */
  add(event: LibraryEvent, origin: number): void {
    this.#events.push(toWire(event));
    this.#origins.push(origin);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#flush);
  }

  /** Sends the queued events now (a no-op without any). */
  flush(): void {
    this.#scheduled = false;
    if (this.#events.length === 0) return;
    const message: PrimaryMessage = { nsw: 'events', events: this.#events, origins: this.#origins };
    this.#events = [];
    this.#origins = [];
    for (const target of this.#targets()) if (target.isConnected()) target.send(message);
  }

  /** Sends `message` to every worker after the events queued before it. */
  send(message: PrimaryMessage): void {
    this.flush();
    for (const target of this.#targets()) if (target.isConnected()) target.send(message);
  }
}
