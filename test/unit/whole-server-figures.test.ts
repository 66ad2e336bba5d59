import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Gauge, Registry } from 'prom-client';
import { mergeMetrics, type StatusShare } from '../../src/cluster/whole-server-figures.js';
import type { StatusPoint, StatusUpdate } from '../../src/status/live-status.js';
import { mergeUpdate } from '../../src/status/whole-status.js';
import { parsePrometheusText } from '../support/prometheus-text.js';

async function workerRegistry(connections: number, sent: number, fds: number): Promise<Awaited<ReturnType<Registry['getMetricsAsJSON']>>> {
  const registry = new Registry();
  new Gauge({ name: 'notification_connections', help: 'h', registers: [registry] }).set(connections);
  new Counter({ name: 'notification_messages_sent_total', help: 'h', registers: [registry] }).inc(sent);
  new Gauge({ name: 'notification_backplane_state', help: 'h', labelNames: ['kind', 'state'], registers: [registry] }).set({ kind: 'ipc', state: 'connected' }, 1);
  new Gauge({ name: 'process_open_fds', help: 'h', registers: [registry] }).set(fds);
  return registry.getMetricsAsJSON();
}

const point = (connections: number, p99: number | null): StatusPoint => ({
  at: 1,
  connections,
  subscriptions: connections,
  libraries: 1,
  events: 2,
  latencyP50Ms: p99,
  latencyP99Ms: p99,
});

describe('the whole server\'s figures under --workers', () => {
  it('sums the workers\' notification_ metrics, keeps one process series per process, and takes the backplane state from the primary', async () => {
    const primary = new Registry();
    new Gauge({ name: 'notification_backplane_state', help: 'h', labelNames: ['kind', 'state'], registers: [primary] }).set({ kind: 'redis', state: 'connected' }, 1);
    const merged = mergeMetrics(
      [
        { worker: 1, metrics: await workerRegistry(3, 30, 40) },
        { worker: 2, metrics: await workerRegistry(4, 12, 50) },
      ],
      await primary.getMetricsAsJSON(),
    );
    const scrape = parsePrometheusText(await merged.metrics());
    assert.equal(scrape.value('notification_connections'), 7);
    assert.equal(scrape.value('notification_messages_sent_total'), 42);
    assert.equal(scrape.value('process_open_fds', { worker: '1' }), 40);
    assert.equal(scrape.value('process_open_fds', { worker: '2' }), 50);
    assert.deepEqual(
      scrape.samples.filter((s) => s.name === 'notification_backplane_state').map((s) => s.labels),
      [{ kind: 'redis', state: 'connected' }],
    );
  });

  it('a status second adds the other workers\' levels and recipients, and shows the slowest worker\'s latency', () => {
    const position = { epoch: 'e1', offset: 4 };
    const own: StatusUpdate = {
      point: point(2, 3),
      tail: [
        { at: 1, repoId: 'r', type: 'repo-update', recipients: 2, position },
        { at: 1, repoId: 'r', type: 'repo-update', recipients: 2 },
      ],
      busiest: [{ repoId: 'r', events: 2, subscribers: 2 }],
    };
    const other: StatusShare = {
      worker: 2,
      points: [point(5, 9)],
      tail: [{ at: 1, repoId: 'r', type: 'repo-update', recipients: 5, position }],
      followers: [['r', 5]],
    };
    const merged = mergeUpdate(own, [other]);
    assert.equal(merged.point.connections, 7);
    assert.equal(merged.point.events, 2, 'every worker sees every event: not summed');
    assert.equal(merged.point.latencyP99Ms, 9);
    assert.deepEqual(merged.tail.map((entry) => entry.recipients), [7, 2], 'an event without a position keeps this worker\'s count');
    assert.deepEqual(merged.busiest, [{ repoId: 'r', events: 2, subscribers: 7 }]);
  });
});
