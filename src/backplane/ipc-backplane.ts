/**
 * A worker's backplane under `workers` > 1: events travel through the cluster primary, which
 * is their single sequencer. An event POSTed to this worker is handed to the primary; the
 * primary gives it its position (its own backplane: memory, or Redis between machines) and
 * sends every event, in one order, to every worker, this one included. So each subscriber
 * sees the same events, in the same order, with the same positions, whichever worker it
 * landed on.
 *
 * History is the primary's, read over the channel: one history for every worker, whether
 * they started with the primary or replaced one later, and with Redis the cluster's own, which
 * holds what other nodes accepted while the primary was cut off. The answer comes after every
 * event the primary sent before it, so the replay joins up with the live events.
 */
import { PendingQuestions } from '../cluster/rpc.js';
import type { EventHistory, HistoryRead } from '../history/event-history.js';
import type { Position } from '../history/position.js';
import type { LibraryEvent } from '../protocol/event.js';
import { emptyBackplaneStats, type Backplane, type BackplaneGap, type BackplaneState, type DeliverEvent } from './backplane.js';
import { fromWire, gapFromWire, isPrimaryMessage, readFromWire, toWire, type PrimaryMessage, type WorkerMessage } from './cluster-messages.js';

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
  /** The primary's backplane is whole again after a gap (Redis): this worker's clients react as a single process's would. */
  onGap?: (gap: BackplaneGap) => void;
  /** The libraries this worker's subscribers follow, which the primary asks for after an outage. */
  followedLibraries?: () => Iterable<string> | Promise<Iterable<string>>;
  /** A history read not answered in this time (a primary that went away) answers `history-unavailable`. */
  readTimeoutMs?: number;
}

const DEFAULT_READ_TIMEOUT_MS = 10_000;
const UNAVAILABLE: HistoryRead = { kind: 'resync', reason: 'history-unavailable', position: null };

export class IpcBackplane implements Backplane {
  readonly kind = 'ipc';
  readonly nodeId: string;
  readonly stats = emptyBackplaneStats();
  #state: BackplaneState = 'connecting';
  readonly #options: IpcBackplaneOptions;
  readonly #onMessage = (message: unknown): void => {
    if (isPrimaryMessage(message)) this.#receive(message);
  };
  #welcomed: (() => void) | null = null;
  /** History reads sent to the primary, by id. */
  readonly #reads = new PendingQuestions<HistoryRead>();

  readonly history: EventHistory = {
    read: (repoId: string, since: Position | null): Promise<HistoryRead> => this.#read(repoId, since),
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
    this.#reads.settleAll(UNAVAILABLE);
  }

  #read(repoId: string, since: Position | null): Promise<HistoryRead> {
    const { channel } = this.#options;
    if (this.#state === 'closed' || !channel.connected) return Promise.resolve(UNAVAILABLE);
    return this.#reads.ask((id) => channel.send({ nsw: 'read', id, repoId, since }), this.#options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS, UNAVAILABLE);
  }

  async #answerFollowed(id: number): Promise<void> {
    const libraries = [...(await (this.#options.followedLibraries?.() ?? []))];
    if (this.#options.channel.connected) this.#options.channel.send({ nsw: 'followed', id, libraries });
  }

  #receive(message: PrimaryMessage): void {
    if (this.#state === 'closed') return;
    switch (message.nsw) {
      case 'welcome':
        this.#state = message.state;
        this.#welcomed?.();
        this.#welcomed = null;
        return;
      case 'state':
        this.#state = message.state;
        return;
      case 'events': {
        const { events, origins } = message;
        for (let i = 0; i < events.length; i++) {
          if (origins[i] !== this.#options.workerId) this.stats.eventsReceived++;
          this.#options.deliver(fromWire(events[i]!));
        }
        return;
      }
      case 'history':
        this.#reads.answered(message.id, readFromWire(message.read));
        return;
      case 'followed?':
        void this.#answerFollowed(message.id);
        return;
      case 'gap':
        this.#options.onGap?.(gapFromWire(message.gap));
    }
  }
}
