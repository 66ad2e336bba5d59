/**
 * What a node shows about itself: the Prometheus metrics and the admin status page, both fed by
 * what the data path counts. Under --workers a worker answers /metrics and /status for the
 * whole server, gathered through the primary (cluster/worker-figures.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ViaPrimary } from './backplane/open-backplane.js';
import { WorkerFigures } from './cluster/worker-figures.js';
import type { Config } from './config/config.js';
import { answerMetrics } from './http/metrics-endpoint.js';
import { StatusEndpoint } from './http/status-endpoint.js';
import type { Logger } from './log.js';
import { bothMetrics, NO_METRICS, type Metrics } from './metrics/metrics.js';
import { PrometheusMetrics, type MetricLevels } from './metrics/prometheus-metrics.js';
import { LiveStatus, type StatusLevels } from './status/live-status.js';
import { WholeStatus } from './status/whole-status.js';

export type Levels = MetricLevels & StatusLevels;

export class Observers {
  /** Null when metrics are turned off. */
  readonly metrics: PrometheusMetrics | null;
  /** Where the data path counts: the metrics, the status page, both or neither. */
  readonly counting: Metrics;
  /** Null without an admin token. */
  readonly statusPage: StatusEndpoint | null;
  readonly #status: LiveStatus | null;
  readonly #figures: WorkerFigures | null;
  readonly #logger: Logger;
  #levels: Levels | null = null;

  constructor(config: Config, logger: Logger, viaPrimary: ViaPrimary | undefined) {
    this.#logger = logger;
    this.metrics = config.metrics ? new PrometheusMetrics() : null;
    const token = config.adminToken;
    const status = token === null ? null : new LiveStatus();
    this.#status = status;
    const metrics = this.metrics ?? NO_METRICS;
    this.counting =
      status === null ? metrics : bothMetrics(metrics, { ...NO_METRICS, eventDelivered: (event, n, s) => status.eventDelivered(event, n, s) });
    this.#figures = null;
    let whole: WholeStatus | undefined;
    if (viaPrimary !== undefined) {
      const figures = new WorkerFigures({ ...viaPrimary, metrics: this.metrics, status, followersOf: (repoId) => this.#levels?.followersOf(repoId) ?? 0 });
      this.#figures = figures;
      whole = new WholeStatus(viaPrimary.workerId, config.workers, (points, repoIds) => figures.statusShares(points, repoIds));
    }
    this.statusPage = token === null || status === null ? null : new StatusEndpoint({ token, status, logger, whole });
  }

  /** The levels are read from their owners, made after the counting is. */
  readLevelsFrom(levels: Levels): void {
    this.#levels = levels;
    this.metrics?.readLevelsFrom(levels);
    this.#status?.readLevelsFrom(levels);
  }

  readonly answerMetrics = (request: IncomingMessage, response: ServerResponse): void => {
    answerMetrics(this.metrics === null ? null : (this.#figures ?? this.metrics), this.#logger, request, response);
  };

  close(): void {
    this.statusPage?.close();
    this.#figures?.close();
  }
}
