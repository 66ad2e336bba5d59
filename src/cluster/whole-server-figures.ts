/**
 * `/metrics` and `/status` for the whole server under `workers` > 1 (docs/metrics.md, "With
 * `--workers`"), over the IPC channel (tagged like backplane/cluster-messages.ts):
 *
 *   worker  -> primary  { nsw: 'gather', id, ask }            a worker serving /metrics or /status wants the whole server's figures
 *   primary -> workers  { nsw: 'share?', id, ask }            the primary asks every worker for its own
 *   worker  -> primary  { nsw: 'share', id, share }           the answer (worker-figures.ts)
 *   primary -> worker   { nsw: 'gathered', id, figures }      the whole server's figures, to the worker that asked
 *
 * The primary merges the metrics (mergeMetrics). The status shares go back as they are: only the
 * asking worker knows what its page has been sent (status/whole-status.ts). A worker that does
 * not answer in time is left out and counted `missing`: a hung worker never hangs a scrape.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { taggedWith } from '../backplane/cluster-messages.js';
import type { Logger } from '../log.js';
import { backplaneStateGauge, type BackplaneLevels } from '../metrics/prometheus-metrics.js';
import type { StatusPoint, TailEntry } from '../status/live-status.js';
import { BroadcastQuestions } from './rpc.js';

/** prom-client's `Registry.getMetricsAsJSON()`: plain data, so it crosses the channel as it is. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** What a worker serving /metrics or /status asks for. */
export type FiguresQuestion =
  | { kind: 'metrics' }
  /** The last `points` seconds, and the subscribers of `repoIds` now. */
  | { kind: 'status'; points: number; repoIds: string[] };

/** One worker's status page figures (src/status/whole-status.ts merges them). */
export interface StatusShare {
  worker: number;
  points: StatusPoint[];
  tail: TailEntry[];
  /** [repoId, subscribers on this worker] for the libraries asked about. */
  followers: Array<[string, number]>;
}

/** One worker's answer; `null` when that part is turned off (no metrics, no admin token). */
export type WorkerShare =
  | { kind: 'metrics'; worker: number; metrics: MetricsJson }
  | { kind: 'status'; status: StatusShare | null };

export type GatheredFigures =
  | { kind: 'metrics'; contentType: string; body: string }
  /** The workers that answered in time. */
  | { kind: 'status'; shares: StatusShare[] }
  | { kind: 'failed'; reason: string };

export type FiguresToPrimary = { nsw: 'gather'; id: number; ask: FiguresQuestion } | { nsw: 'share'; id: number; share: WorkerShare };
export type FiguresToWorker = { nsw: 'share?'; id: number; ask: FiguresQuestion } | { nsw: 'gathered'; id: number; figures: GatheredFigures };
export const isFiguresToPrimary = taggedWith<FiguresToPrimary>({ gather: true, share: true });
export const isFiguresToWorker = taggedWith<FiguresToWorker>({ 'share?': true, gathered: true });

/** How long the primary waits for the workers' figures before answering without the late ones. */
export const SHARE_WAIT_MS = 2_000;

/**
 * Labels every series of a per-process metric with its process, so that the merge keeps one
 * series per process; `sum` over a single series keeps its value (and is not `omit`).
 */
function perProcess(metrics: MetricsJson, worker: string): MetricsJson {
  return metrics.map((metric) => ({
    ...metric,
    aggregator: 'sum',
    values: metric.values.map((value) => ({ ...value, labels: { ...value.labels, worker } })),
  }));
}

const OURS = 'notification_';
/** A worker's backplane (kind `ipc`) is its link to the primary: the primary's own speaks for the server. */
const RELAYED = 'notification_backplane_';

/**
 * The whole server's metrics: each worker's `notification_*` summed (per their `aggregator`),
 * process metrics one series per process (a sum would hide the one worker about to run out of
 * file descriptors), then the primary's figures.
 */
export function mergeMetrics(workers: ReadonlyArray<{ worker: number; metrics: MetricsJson }>, primary: MetricsJson): Registry {
  const all: MetricsJson[] = [];
  for (const { worker, metrics } of workers) {
    all.push(metrics.filter((metric) => metric.name.startsWith(OURS) && !metric.name.startsWith(RELAYED)));
    all.push(perProcess(metrics.filter((metric) => !metric.name.startsWith(OURS)), String(worker)));
  }
  all.push(primary.filter((metric) => metric.name.startsWith(OURS)));
  all.push(perProcess(primary.filter((metric) => !metric.name.startsWith(OURS)), 'primary'));
  return AggregatorRegistry.aggregate(all);
}

export interface PrimaryFiguresOptions {
  /** The workers configured: those that did not answer count as missing. */
  expected: number;
  workers: () => Iterable<Worker>;
  backplane: () => BackplaneLevels;
  logger: Logger;
}

export class PrimaryFigures {
  readonly #options: PrimaryFiguresOptions;
  readonly #shares = new BroadcastQuestions<Worker, WorkerShare>();
  readonly #registry = new Registry();
  readonly #sequenced: Counter;

  constructor(options: PrimaryFiguresOptions) {
    this.#options = options;
    const registers = [this.#registry];
    collectDefaultMetrics({ register: this.#registry });
    backplaneStateGauge(registers, options.backplane);
    this.#sequenced = new Counter({
      name: 'notification_events_sequenced_total',
      help: 'Events the primary gave their position and sent to its workers (--workers only).',
      registers,
    });
  }

  /** An event was positioned and sent to the workers. */
  eventSequenced(): void {
    this.#sequenced.inc();
  }

  receive(worker: Worker, message: FiguresToPrimary): void {
    if (message.nsw === 'share') {
      this.#shares.answered(worker, message.id, message.share);
      return;
    }
    const { id } = message;
    const failed = (err: unknown): GatheredFigures => ({ kind: 'failed', reason: err instanceof Error ? err.message : String(err) });
    void this.#gather(message.ask).catch(failed).then((figures) => {
      if (figures.kind === 'failed') this.#options.logger.error({ reason: figures.reason }, "gathering the workers' figures failed");
      if (worker.isConnected()) worker.send({ nsw: 'gathered', id, figures } satisfies FiguresToWorker);
    });
  }

  /** Asks every worker for its share of `ask` and answers with the whole server's figures. */
  async #gather(ask: FiguresQuestion): Promise<GatheredFigures> {
    const connected = [...this.#options.workers()].filter((worker) => worker.isConnected());
    const question = (worker: Worker, id: number) => worker.send({ nsw: 'share?', id, ask } satisfies FiguresToWorker);
    const { answers: shares } = await this.#shares.ask(connected, question, SHARE_WAIT_MS);
    if (ask.kind === 'status') {
      const status = shares.flatMap((share): StatusShare[] => (share.kind === 'status' && share.status !== null ? [share.status] : []));
      return { kind: 'status', shares: status };
    }
    const workers = shares.flatMap((share) => (share.kind === 'metrics' ? [{ worker: share.worker, metrics: share.metrics }] : []));
    const primary = [...(await this.#registry.getMetricsAsJSON()), ...(await this.#workersAnswered(workers.length))];
    const merged = mergeMetrics(workers, primary);
    return { kind: 'metrics', contentType: merged.contentType, body: await merged.metrics() };
  }

  /** `notification_workers` of one scrape: a registry of its own, so that scrapes at once do not mix. */
  #workersAnswered(answered: number): Promise<MetricsJson> {
    const registry = new Registry();
    const gauge = new Gauge({
      name: 'notification_workers',
      help: 'Workers in this scrape (--workers only): answered (their figures are summed here), missing (did not answer within 2 s, or being replaced: their figures are left out).',
      labelNames: ['state'],
      registers: [registry],
    });
    gauge.set({ state: 'answered' }, answered);
    gauge.set({ state: 'missing' }, Math.max(0, this.#options.expected - answered));
    return registry.getMetricsAsJSON();
  }

  /** A worker that died will not answer. */
  gone(worker: Worker): void {
    this.#shares.gone(worker);
  }
}
