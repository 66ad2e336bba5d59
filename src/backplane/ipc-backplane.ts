/**
 * A worker's backplane under `workers` > 1: events travel through the cluster primary, which
 * is their single sequencer. An event POSTed to this worker is handed to the primary; the
 * primary gives it its position (its own backplane: memory, or Redis between machines) and
 * sends every event, in one order, to every worker, this one included. So each subscriber
 * sees the same events in the same order, with the same positions, whichever worker it
 * landed on. Each worker keeps its own copy of the history ring, fed in the primary's order,
 * for positioned subscribers to recover from without asking the primary.
 */
import type { EventHistory, HistoryLimits, HistoryRead } from '../history/event-history.js';
import { MemoryHistory } from '../history/memory-history.js';
import type { Position } from '../history/position.js';
import type { LibraryEvent } from '../protocol/event.js';
import { emptyBackplaneStats, type Backplane, type BackplaneState, type DeliverEvent } from './backplane.js';
import { fromWire, isPrimaryMessage, toWire, type PrimaryMessage, type WorkerMessage } from './cluster-messages.js';

/** The IPC channel to the primary: `process` in a cluster worker, a fake in tests. */
export interface PrimaryChannel {
  send(message: WorkerMessage): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  readonly connected: boolean;
}

export interface IpcBackplaneOptions {
  nodeId: string;
  /** This worker's number (cluster.worker.id): the primary tells each event's origin with it. */
  workerId: number;
  channel: PrimaryChannel;
  deliver: DeliverEvent;
  history: HistoryLimits;
  now?: () => number;
}

export class IpcBackplane implements Backplane {
  readonly kind = 'ipc';
  readonly nodeId: string;
  readonly stats = emptyBackplaneStats();
  #state: BackplaneState = 'connecting';
  /** The copy of the primary's history; replaced when the primary's epoch changes (Redis flushed). */
  #copy: MemoryHistory | null = null;
  readonly #options: IpcBackplaneOptions;
  readonly #onMessage = (message: unknown): void => {
    if (isPrimaryMessage(message)) this.#receive(message);
  };
  #welcomed: (() => void) | null = null;

  readonly history: EventHistory = {
    read: async (repoId: string, since: Position | null): Promise<HistoryRead> =>
      this.#copy === null ? { kind: 'resync', reason: 'history-unavailable', position: null } : this.#copy.readNow(repoId, since),
  };

  constructor(options: IpcBackplaneOptions) {
    this.#options = options;
    this.nodeId = options.nodeId;
  }

  get state(): BackplaneState {
    return this.#state;
  }

  /** Says hello to the primary; resolves once it answered (or after `waitMs`). */
  async start(waitMs: number): Promise<void> {
    const { channel } = this.#options;
    channel.on('message', this.#onMessage);
    const welcomed = new Promise<void>((resolve) => (this.#welcomed = resolve));
    channel.send({ nsw: 'hello' });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([welcomed, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
  }

  publish(event: LibraryEvent): void {
    const { channel } = this.#options;
    if (this.#state !== 'closed' && channel.connected) {
      channel.send({ nsw: 'publish', event: toWire(event) });
      this.stats.eventsShared++;
      return;
    }
    // No primary to number it: this worker's subscribers get it, without a position.
    this.stats.eventsNotShared++;
    this.#options.deliver(event);
  }

  async close(): Promise<void> {
    this.#state = 'closed';
    this.#options.channel.off('message', this.#onMessage);
  }

  #receive(message: PrimaryMessage): void {
    if (this.#state === 'closed') return;
    switch (message.nsw) {
      case 'welcome':
        if (message.epoch !== null) this.#copy = this.#newCopy(message.epoch);
        this.#state = message.state;
        this.#welcomed?.();
        this.#welcomed = null;
        return;
      case 'state':
        this.#state = message.state;
        return;
      case 'event': {
        const event = fromWire(message.event);
        if (message.origin !== this.#options.workerId) this.stats.eventsReceived++;
        const { position } = event;
        if (position !== undefined) {
          if (this.#copy === null || this.#copy.epoch !== position.epoch) this.#copy = this.#newCopy(position.epoch);
          this.#copy.record(event);
        }
        this.#options.deliver(event);
      }
    }
  }

  #newCopy(epoch: string): MemoryHistory {
    return new MemoryHistory(this.#options.history, this.#options.now, epoch);
  }
}
