import { emptyBackplaneStats, type Backplane, type BackplaneState, type DeliverEvent } from './backplane.js';
import type { LibraryEvent } from '../protocol/event.js';

/** One node, nothing to install: an event goes straight to this node's Hub. */
export class MemoryBackplane implements Backplane {
  readonly kind = 'memory';
  readonly stats = emptyBackplaneStats();
  #state: BackplaneState = 'connected';

  constructor(
    readonly nodeId: string,
    private readonly deliver: DeliverEvent,
  ) {}

  get state(): BackplaneState {
    return this.#state;
  }

  async start(): Promise<void> {}

  publish(event: LibraryEvent): void {
    this.deliver(event);
  }

  async close(): Promise<void> {
    this.#state = 'closed';
  }
}
