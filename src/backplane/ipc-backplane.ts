/**
 * A worker's backplane under `workers` > 1: the cluster primary is the single sequencer. It
 * positions every event (through its own backplane) and sends them, in one order, to every
 * worker, so each subscriber sees the same events in the same order whichever worker it is on.
 * History is the primary's (one for every worker, even one started later), read over the channel;
 * an answer comes after every event sent before it, so the replay joins up with the live events.
 */
import { PendingQuestions } from '../cluster/rpc.js';
import type { EventHistory, HistoryRead } from '../history/event-history.js';
import type { Position } from '../history/position.js';
import type { LibraryEvent } from '../protocol/event.js';
import { NO_RECEIVER, type Backplane, type BackplaneReceiver, type BackplaneState } from './backplane.js';
import { decodeEvent, encodeEvent } from './backplane-message.js';
import { isPrimaryMessage, readFromWire, type WorkerMessage } from './cluster-messages.js';

/** The IPC channel to the primary: `process` in a cluster worker, a fake in tests. Its messages are tagged (cluster-messages.ts). */
export interface PrimaryChannel {
  send(message: { nsw: string }): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  readonly connected: boolean;
}

export interface IpcBackplaneOptions {
  nodeId: string;
  channel: PrimaryChannel;
  /** A history read not answered in this time (a primary that went away) answers `history-unavailable`. */
  readTimeoutMs?: number;
}

const DEFAULT_READ_TIMEOUT_MS = 10_000;
const UNAVAILABLE: HistoryRead = { kind: 'resync', reason: 'history-unavailable', position: null };

export class IpcBackplane implements Backplane {
  readonly kind = 'ipc';
  readonly nodeId: string;
  /** Its link to the primary; whether the primary reaches Redis is on the primary's /metrics. */
  #state: BackplaneState = 'connecting';
  readonly #options: IpcBackplaneOptions;
  #receiver = NO_RECEIVER;
  readonly #hello = new PendingQuestions<void>();
  readonly #reads = new PendingQuestions<HistoryRead>();

  readonly history: EventHistory = {
    read: (repoId: string, since: Position | null): Promise<HistoryRead> => {
      const { channel, readTimeoutMs = DEFAULT_READ_TIMEOUT_MS } = this.#options;
      if (this.#state === 'closed' || !channel.connected) return Promise.resolve(UNAVAILABLE);
      return this.#reads.ask((id) => this.#send({ nsw: 'read', id, repoId, since }), readTimeoutMs, UNAVAILABLE);
    },
  };

  constructor(options: IpcBackplaneOptions) {
    this.#options = options;
    this.nodeId = options.nodeId;
  }

  get state(): BackplaneState {
    return this.#state;
  }

  /** Says hello to the primary; resolves once it answered (or after `waitMs`). */
  async start(waitMs: number, receiver: BackplaneReceiver): Promise<void> {
    this.#receiver = receiver;
    this.#options.channel.on('message', this.#receive);
    await this.#hello.ask((id) => this.#send({ nsw: 'hello', id }), waitMs, undefined);
  }

  publish(event: LibraryEvent): void {
    const { channel } = this.#options;
    if (this.#state !== 'closed' && channel.connected) this.#send({ nsw: 'publish', event: encodeEvent(event) });
    // No primary to number it: this worker's subscribers get it, without a position.
    else this.#receiver.deliver(event);
  }

  async close(): Promise<void> {
    this.#state = 'closed';
    this.#options.channel.off('message', this.#receive);
    this.#hello.settleAll();
    this.#reads.settleAll(UNAVAILABLE);
  }

  async #answerFollowed(id: number): Promise<void> {
    const libraries = [...(await (this.#receiver.followedLibraries?.() ?? []))];
    if (this.#options.channel.connected) this.#send({ nsw: 'followed', id, libraries });
  }

  #send(message: WorkerMessage): void {
    this.#options.channel.send(message);
  }

  /** Bound, for on/off; the channel carries Node's own messages too. */
  readonly #receive = (message: unknown): void => {
    if (this.#state === 'closed' || !isPrimaryMessage(message)) return;
    switch (message.nsw) {
      case 'welcome':
        this.#state = 'connected';
        this.#hello.answered(message.id);
        return;
      case 'events':
        for (const event of message.events) this.#receiver.deliver(decodeEvent(event));
        return;
      case 'history':
        this.#reads.answered(message.id, readFromWire(message.read));
        return;
      case 'followed?':
        void this.#answerFollowed(message.id);
        return;
      case 'gap':
        this.#receiver.onGap?.(message.gap);
    }
  };
}
