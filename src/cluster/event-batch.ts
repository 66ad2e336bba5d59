/**
 * The primary's fan-out of positioned events: those sequenced while it handles one read from its
 * workers' channels leave as ONE `events` message per worker, each event encoded once. Node emits
 * those messages on process.nextTick, so a microtask runs after all of them and adds no wait
 * (setImmediate would hold each event a turn more). `send` flushes first: a history answer still
 * comes after every event sequenced before it.
 */
import { encodeEvent } from '../backplane/backplane-message.js';
import type { EncodedEvent, PrimaryMessage } from '../backplane/cluster-messages.js';
import type { LibraryEvent } from '../protocol/event.js';

/** A worker as the batch sees it (cluster's Worker; a fake in tests). */
export interface BatchTarget {
  isConnected(): boolean;
  send(message: PrimaryMessage): boolean;
}

export class WorkerEventBatch {
  readonly #targets: () => Iterable<BatchTarget>;
  #events: EncodedEvent[] = [];
  #scheduled = false;
  readonly #flush = (): void => this.flush();

  constructor(targets: () => Iterable<BatchTarget>) {
    this.#targets = targets;
  }

  /** Queues `event` for every worker, in this order. */
  add(event: LibraryEvent): void {
    this.#events.push(encodeEvent(event));
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#flush);
  }

  /** Sends the queued events now (a no-op without any). */
  flush(): void {
    this.#scheduled = false;
    if (this.#events.length === 0) return;
    const message: PrimaryMessage = { nsw: 'events', events: this.#events };
    this.#events = [];
    for (const target of this.#targets()) if (target.isConnected()) target.send(message);
  }

  /** Sends `message` to every worker after the events queued before it. */
  send(message: PrimaryMessage): void {
    this.flush();
    for (const target of this.#targets()) if (target.isConnected()) target.send(message);
  }
}
