import type { HistoryLimits } from '../history/event-history.js';
import { MemoryHistory } from '../history/memory-history.js';
import type { LibraryEvent } from '../protocol/event.js';
import { NO_RECEIVER, type Backplane, type BackplaneReceiver, type BackplaneState } from './backplane.js';

/** One node: the in-process history positions each event for the Hub; a restart starts a new epoch. */
export class MemoryBackplane implements Backplane {
  readonly kind = 'memory';
  readonly history: MemoryHistory;
  #state: BackplaneState = 'connected';
  #receiver = NO_RECEIVER;

  constructor(
    readonly nodeId: string,
    limits: HistoryLimits,
  ) {
    this.history = new MemoryHistory(limits);
  }

  get state(): BackplaneState {
    return this.#state;
  }

  async start(_waitMs: number, receiver: BackplaneReceiver): Promise<void> {
    this.#receiver = receiver;
  }

  publish(event: LibraryEvent): void {
    this.#receiver.deliver(this.history.append(event));
  }

  async close(): Promise<void> {
    this.#state = 'closed';
  }
}
