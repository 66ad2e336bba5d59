/**
 * `/metrics` and `/status` for the whole server under `workers` > 1. The worker that takes the
 * request asks the primary (`gather`); the primary asks every worker for its own figures
 * (`share?`), waits at most a bound for the answers, and sends back the whole server's:
 *
 * - metrics: merged here with prom-client's `AggregatorRegistry.aggregate`. Our `notification_*`
 *   counters, histograms and gauges are summed over the workers; the process metrics
 *   (`process_*`, `nodejs_*`) stay one series per process, labelled `worker` (a file-descriptor
 *   limit is per process: a sum would hide the one worker about to run out). The primary adds
 *   its own: the backplane state (the workers only relay it), the events it sequenced, its
 *   process metrics (`worker="primary"`) and `notification_workers` (answered / missing).
 * - status: the shares go back as they are; the asking worker merges them with its own
 *   second (status/whole-status.ts), since only it knows what its page has been sent.
 *
 * A worker that does not answer in time is left out, and says so (`missing`): a hung worker
 * never hangs a scrape.
 */
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { BACKPLANE_SERIES, backplaneStateGauge, type BackplaneLevels } from '../metrics/prometheus-metrics.js';
import type { FiguresQuestion, GatheredFigures, MetricsJson, PrimaryMessage, StatusShare, WorkerShare } from '../backplane/cluster-messages.js';
import { BroadcastQuestions } from './rpc.js';

/** How long the primary waits for the workers' figures before answering without the late ones. */
export const SHARE_WAIT_MS = 2_000;

/** A worker as the gathering sees it (cluster's Worker; a fake in tests). */
export interface ShareTarget {
  readonly id: number;
  isConnected(): boolean;
  send(message: PrimaryMessage): boolean;
}

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
/** The workers relay the primary's backplane state (kind `ipc`): the primary's own speaks for the server. */
const RELAYED = new Set(BACKPLANE_SERIES);

/**
 * The whole server's metrics: each worker's `notification_*` summed (per their `aggregator`),
 * process metrics one series per process, then the primary's figures.
 */
export function mergeMetrics(workers: ReadonlyArray<{ worker: number; metrics: MetricsJson }>, primary: MetricsJson): Registry {
  const all: MetricsJson[] = [];
  for (const { worker, metrics } of workers) {
    all.push(metrics.filter((metric) => metric.name.startsWith(OURS) && !RELAYED.has(metric.name)));
    all.push(perProcess(metrics.filter((metric) => !metric.name.startsWith(OURS)), String(worker)));
  }
  all.push(primary.filter((metric) => metric.name.startsWith(OURS)));
  all.push(perProcess(primary.filter((metric) => !metric.name.startsWith(OURS)), 'primary'));
  return AggregatorRegistry.aggregate(all);
}

export interface PrimaryFiguresOptions {
  /** The workers configured: those that did not answer count as missing. */
  expected: number;
  workers: () => Iterable<ShareTarget>;
  backplane: () => BackplaneLevels;
  waitMs?: number;
  /** prom-client's process metrics of the primary; off in unit tests. */
  processMetrics?: boolean;
}

export class PrimaryFigures {
  readonly #options: PrimaryFiguresOptions;
  readonly #shares = new BroadcastQuestions<ShareTarget, WorkerShare>();
  readonly #registry = new Registry();
  readonly #sequenced: Counter;

  constructor(options: PrimaryFiguresOptions) {
    this.#options = options;
    const registers = [this.#registry];
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.#registry });
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

  /** Asks every worker for its share of `ask` and answers with the whole server's figures. */
  gather(ask: FiguresQuestion): Promise<GatheredFigures> {
    return this.#gather(ask).catch((err: unknown) => ({ kind: 'failed', reason: err instanceof Error ? err.message : String(err) }));
  }

  async #gather(ask: FiguresQuestion): Promise<GatheredFigures> {
    const connected = [...this.#options.workers()].filter((worker) => worker.isConnected());
    const { answers: shares } = await this.#shares.ask(connected, (worker, id) => worker.send({ nsw: 'share?', id, ask }), this.#options.waitMs ?? SHARE_WAIT_MS);
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

  answered(worker: ShareTarget, id: number, share: WorkerShare): void {
    this.#shares.answered(worker, id, share);
  }

  /** A worker that died will not answer. */
  gone(worker: ShareTarget): void {
    this.#shares.gone(worker);
  }
}
