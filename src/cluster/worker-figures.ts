/**
 * A worker's side of the whole-server figures (whole-server-figures.ts has the primary's): it
 * answers the primary's `share?` with its own metrics and status, and asks the primary
 * (`gather`) when it serves /metrics or a status page.
 */
import type { PrimaryChannel } from '../backplane/ipc-backplane.js';
import type { PrometheusMetrics } from '../metrics/prometheus-metrics.js';
import type { LiveStatus } from '../status/live-status.js';
import { PendingQuestions } from './rpc.js';
import {
  isFiguresToWorker,
  SHARE_WAIT_MS,
  type FiguresQuestion,
  type FiguresToPrimary,
  type FiguresToWorker,
  type GatheredFigures,
  type StatusShare,
  type WorkerShare,
} from './whole-server-figures.js';

/** The primary waits SHARE_WAIT_MS for the workers, then merges: past this, it is not answering. */
const GATHER_WAIT_MS = SHARE_WAIT_MS + 3_000;

export interface WorkerFiguresOptions {
  workerId: number;
  channel: PrimaryChannel;
  /** Null when metrics are turned off. */
  metrics: PrometheusMetrics | null;
  /** Null without an admin token. */
  status: LiveStatus | null;
  /** Subscribers of a library on this worker now. */
  followersOf(repoId: string): number;
}

export class WorkerFigures {
  readonly #options: WorkerFiguresOptions;
  readonly #asked = new PendingQuestions<GatheredFigures | null>();
  readonly #onMessage = (message: unknown): void => {
    if (isFiguresToWorker(message)) this.#receive(message);
  };

  constructor(options: WorkerFiguresOptions) {
    this.#options = options;
    options.channel.on('message', this.#onMessage);
  }

  close(): void {
    this.#options.channel.off('message', this.#onMessage);
    this.#asked.settleAll(null);
  }

  /** The whole server's /metrics; rejects when the primary does not answer. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    const figures = await this.#gather({ kind: 'metrics' });
    if (figures?.kind === 'metrics') return figures;
    throw new Error(figures?.kind === 'failed' ? figures.reason : 'the cluster primary did not answer');
  }

  /** Every worker's status share, this one's included; null when the primary does not answer. */
  async statusShares(points: number, repoIds: string[]): Promise<StatusShare[] | null> {
    const figures = await this.#gather({ kind: 'status', points, repoIds });
    return figures?.kind === 'status' ? figures.shares : null;
  }

  #gather(ask: FiguresQuestion): Promise<GatheredFigures | null> {
    const { channel } = this.#options;
    if (!channel.connected) return Promise.resolve(null);
    return this.#asked.ask((id) => this.#send({ nsw: 'gather', id, ask }), GATHER_WAIT_MS, null);
  }

  #send(message: FiguresToPrimary): void {
    this.#options.channel.send(message);
  }

  async #share(ask: FiguresQuestion): Promise<WorkerShare> {
    const { workerId, metrics, status, followersOf } = this.#options;
    if (ask.kind === 'metrics') return { kind: 'metrics', worker: workerId, metrics: metrics === null ? [] : await metrics.registry.getMetricsAsJSON() };
    if (status === null) return { kind: 'status', status: null };
    const { points, tail } = status.snapshot();
    const followers = ask.repoIds.map((repoId): [string, number] => [repoId, followersOf(repoId)]);
    return { kind: 'status', status: { worker: workerId, points: points.slice(-ask.points), tail, followers } };
  }

  #receive(message: FiguresToWorker): void {
    if (message.nsw === 'gathered') {
      this.#asked.answered(message.id, message.figures);
      return;
    }
    const { id } = message;
    void this.#share(message.ask).then((share) => {
      if (this.#options.channel.connected) this.#send({ nsw: 'share', id, share });
    });
  }
}
