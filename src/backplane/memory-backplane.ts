import type { HistoryLimits } from '../history/event-history.js';
import { MemoryHistory } from '../history/memory-history.js';
import type { LibraryEvent } from '../protocol/event.js';
import type { Backplane, BackplaneState, DeliverEvent } from './backplane.js';

/**
 * One node, nothing to install: an event gets the next position of its library from the
 * in-process history and goes straight to this node's Hub. A restart starts a new epoch.
 */
export class MemoryBackplane implements Backplane {
  readonly kind = 'memory';
  readonly history: MemoryHistory;
  #state: BackplaneState = 'connected';

  constructor(
    readonly nodeId: string,
    private readonly deliver: DeliverEvent,
    limits: HistoryLimits,
    now?: () => number,
  ) {
    this.history = new MemoryHistory(limits, now);
  }

  get state(): BackplaneState {
    return this.#state;
  }

  async start(): Promise<void> {}

  publish(event: LibraryEvent): void {
    this.deliver(this.history.append(event));
  }

  async close(): Promise<void> {
    this.#state = 'closed';
  }
}
