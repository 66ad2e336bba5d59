import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackplaneStats } from '../../src/backplane/backplane.js';
import { PrometheusMetrics } from '../../src/metrics/prometheus-metrics.js';
import { parseEvent } from '../../src/protocol/event.js';
import { closeReasonOf, closeReasonOfFrameError } from '../../src/transport/close-codes.js';
import { parsePrometheusText } from '../support/prometheus-text.js';

async function scrape(metrics: PrometheusMetrics) {
  return parsePrometheusText((await metrics.exposition()).body);
}

describe('Prometheus metrics', () => {
  it('every close reason, auth failure and accepted type/source series exists at zero from the start', async () => {
    const counts = await scrape(new PrometheusMetrics({ processMetrics: false }));
    for (const reason of ['normal', 'going-away', 'refresh', 'dead-peer', 'queue-overflow', 'subscribe-timeout', 'failed-subscribes', 'malformed', 'binary', 'too-big', 'protocol-error', 'abnormal']) {
      assert.equal(counts.value('notification_connections_closed_total', { reason }), 0, reason);
    }
    assert.equal(counts.value('notification_auth_failures_total', { endpoint: 'subscribe', reason: 'wrong-library' }), 0);
    assert.equal(counts.value('notification_auth_failures_total', { endpoint: 'events', reason: 'missing' }), 0);
    assert.equal(counts.samples.filter((s) => s.name === 'notification_auth_failures_total' && s.labels['endpoint'] === 'events' && s.labels['reason'] === 'wrong-library').length, 0);
    assert.equal(counts.value('notification_events_accepted_total', { type: 'comment-update', source: 'static-token' }), 0);
    assert.equal(counts.value('notification_delivery_latency_seconds_count', { type: 'repo-update' }), 0);
    assert.equal(counts.value('notification_connections'), 0, 'levels read as zero before the server is attached');
  });

  it('counts what it is told, labels a made-up event type "other", and buckets latency from 0.1 ms to 1 s', async () => {
    const metrics = new PrometheusMetrics({ processMetrics: false });
    metrics.connectionOpened();
    metrics.connectionOpened();
    metrics.connectionClosed('queue-overflow');
    metrics.eventAccepted('repo-update', 'jwt');
    metrics.eventAccepted('x-'.repeat(50), 'legacy-header');
    metrics.eventDelivered(parseEvent('{"type":"repo-update","content":{"repo_id":"r"}}'), 3, 0.0002);
    metrics.eventDelivered(parseEvent('{"type":"repo-update","content":{"repo_id":"quiet"}}'), 0, 5);
    metrics.eventDelivered(parseEvent('{"type":"x-custom","content":{"repo_id":"r"}}'), 1, 2);
    const counts = await scrape(metrics);
    assert.equal(counts.value('notification_connections_opened_total'), 2);
    assert.equal(counts.value('notification_connections_closed_total', { reason: 'queue-overflow' }), 1);
    assert.equal(counts.value('notification_events_accepted_total', { type: 'other', source: 'legacy-header' }), 1);
    assert.equal(counts.value('notification_messages_sent_total'), 4);
    assert.equal(counts.value('notification_delivery_latency_seconds_count', { type: 'repo-update' }), 1);
    assert.equal(counts.value('notification_delivery_latency_seconds_bucket', { type: 'repo-update', le: '0.0001' }), 0);
    assert.equal(counts.value('notification_delivery_latency_seconds_bucket', { type: 'repo-update', le: '0.00025' }), 1);
    assert.equal(counts.value('notification_delivery_latency_seconds_bucket', { type: 'other', le: '1' }), 0);
    assert.equal(counts.value('notification_delivery_latency_seconds_bucket', { type: 'other', le: '+Inf' }), 1);
  });

  it('reads levels and the group cache counters from their owners at scrape time', async () => {
    const metrics = new PrometheusMetrics({ processMetrics: false });
    let connections = 4;
    const cache = { hits: 9, misses: 2, failures: 1 };
    metrics.readLevelsFrom({ connections: () => connections, fallbacks: () => ({ sse: 3, 'long-poll': 2 }), subscriptions: () => 7, subscribedLibraries: () => 5, groupLookups: () => cache, backplane: () => ({ kind: 'redis', state: 'reconnecting', stats: { ...new BackplaneStats(), eventsShared: 5, duplicatesDropped: 2, malformedMessages: 1 } }) });
    let counts = await scrape(metrics);
    assert.equal(counts.value('notification_connections'), 4);
    assert.equal(counts.value('notification_fallback_requests_open', { transport: 'sse' }), 3);
    assert.equal(counts.value('notification_fallback_requests_open', { transport: 'long-poll' }), 2);
    assert.equal(counts.value('notification_subscriptions'), 7);
    assert.equal(counts.value('notification_subscribed_libraries'), 5);
    assert.equal(counts.value('notification_group_lookups_total', { result: 'hit' }), 9);
    assert.equal(counts.value('notification_group_lookups_total', { result: 'miss' }), 2);
    assert.equal(counts.value('notification_group_lookup_failures_total'), 1);
    assert.equal(counts.value('notification_backplane_state', { kind: 'redis', state: 'reconnecting' }), 1);
    assert.equal(counts.value('notification_backplane_state', { kind: 'redis', state: 'connected' }), 0);
    assert.equal(counts.value('notification_backplane_events_total', { outcome: 'shared' }), 5);
    assert.equal(counts.value('notification_backplane_events_total', { outcome: 'duplicate' }), 2);
    assert.equal(counts.value('notification_backplane_events_total', { outcome: 'malformed' }), 1);
    connections = 1;
    cache.hits = 10;
    counts = await scrape(metrics);
    assert.equal(counts.value('notification_connections'), 1);
    assert.equal(counts.value('notification_group_lookups_total', { result: 'hit' }), 10);
  });

  it('uses a registry of its own: two instances do not collide, and the process metrics are there', async () => {
    const first = new PrometheusMetrics();
    const second = new PrometheusMetrics();
    first.connectionOpened();
    assert.equal((await scrape(second)).value('notification_connections_opened_total'), 0);
    const counts = await scrape(first);
    assert.equal(counts.value('notification_connections_opened_total'), 1);
    assert.ok(counts.value('process_max_fds') > 0);
    assert.ok(counts.types.has('nodejs_eventloop_lag_seconds'));
  });
});

describe('close reasons', () => {
  it('map the codes the server sends and the frame errors ws reports', () => {
    assert.equal(closeReasonOf(1001), 'going-away');
    assert.equal(closeReasonOf(1003), 'binary');
    assert.equal(closeReasonOf(1007), 'malformed');
    assert.equal(closeReasonOf(4000), 'queue-overflow');
    assert.equal(closeReasonOf(4001), 'subscribe-timeout');
    assert.equal(closeReasonOf(4002), 'failed-subscribes');
    assert.equal(closeReasonOfFrameError('WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'), 'too-big');
    assert.equal(closeReasonOfFrameError('WS_ERR_INVALID_UTF8'), 'malformed');
    assert.equal(closeReasonOfFrameError('WS_ERR_INVALID_OPCODE'), 'protocol-error');
    assert.equal(closeReasonOfFrameError(undefined), 'protocol-error');
  });
});

describe('the exposition parser used by the tests', () => {
  it('reads escaped label values, special values and comments, and refuses a malformed line', () => {
    const scrape = parsePrometheusText(
      '# HELP m_total A \\\\ help\\nline.\n# TYPE m_total counter\nm_total{a="x\\"y",b="1\\\\2\\n"} 3\n# just a comment\nh_bucket{le="+Inf"} 2 1700000000\ng NaN\n',
    );
    assert.equal(scrape.value('m_total', { a: 'x"y', b: '1\\2\n' }), 3);
    assert.equal(scrape.help.get('m_total'), 'A \\ help\nline.');
    assert.equal(scrape.types.get('m_total'), 'counter');
    assert.equal(scrape.value('h_bucket', { le: '+Inf' }), 2);
    assert.ok(Number.isNaN(scrape.value('g')));
    assert.throws(() => scrape.value('m_total'), /0 samples/);
    assert.throws(() => parsePrometheusText('m_total{a="x} 3\n'), /unterminated/);
    assert.throws(() => parsePrometheusText('m_total 3 4 5\n'), /bad sample line/);
    assert.throws(() => parsePrometheusText('m_total three\n'), /bad sample value/);
  });
});
