import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signToken } from '../../src/auth/jwt.js';
import { scrape, scrapeUntil, Scrape } from '../support/prometheus-text.js';
import { publisherToken, ServerProcess, subscriberToken } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';

const REPO = 'b1e5c0de-5555-4e4e-9f9f-000000000001';
const REPO2 = 'b1e5c0de-5555-4e4e-9f9f-000000000002';
const QUIET = 'b1e5c0de-5555-4e4e-9f9f-000000000009';
const STATIC_TOKEN = 'xP7GGgGPVCQu8r0xNJ+k4Q==';

async function post(url: string, headers: Record<string, string>, body: unknown, method = 'POST'): Promise<number> {
  const response = await fetch(`${url}/events`, { method, headers, body: method === 'GET' ? undefined : JSON.stringify(body) });
  await response.arrayBuffer();
  return response.status;
}

describe('GET /metrics on the running server', () => {
  let server: ServerProcess;
  const clients: TestClient[] = [];

  before(async () => {
    server = await ServerProcess.start({ env: { NOTIFICATION_TOKEN: STATIC_TOKEN } });
  });
  after(async () => {
    for (const client of clients) client.socket.terminate();
    await server.stop();
  });

  async function connect(): Promise<TestClient> {
    const client = await TestClient.connect(server.wsUrl);
    clients.push(client);
    return client;
  }

  it('counts connections, closes by reason, subscriptions, auth failures, events by type and source, messages and latency, exactly', async () => {
    const before = await scrape(server.url);

    const alice = await connect();
    alice.subscribe([
      { id: REPO, jwt_token: subscriberToken(REPO, 'alice@example.com') },
      { id: REPO2, jwt_token: subscriberToken(REPO2, 'alice@example.com') },
    ]);
    const bob = await connect();
    bob.subscribe([
      { id: REPO, jwt_token: subscriberToken(REPO, 'bob@example.com') },
      { id: 'bad-signature', jwt_token: subscriberToken('bad-signature', 'bob@example.com', { key: 'another key' }) },
      { id: 'wrong-library', jwt_token: subscriberToken(REPO, 'bob@example.com') },
      { id: 'expired', jwt_token: subscriberToken('expired', 'bob@example.com', { exp: Math.floor(Date.now() / 1000) - 10 }) },
    ]);
    await bob.waitForCount(3);
    assert.deepEqual(bob.messages.map((m) => m.type), ['jwt-expired', 'jwt-expired', 'jwt-expired']);

    const malformed = await connect();
    malformed.send('{"type": "subscribe", ');
    const binary = await connect();
    binary.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    const tooBig = await connect();
    tooBig.send('x'.repeat(70 * 1024));
    const leaving = await connect();
    leaving.close();
    assert.equal((await malformed.closed).code, 1007);
    assert.equal((await binary.closed).code, 1003);
    assert.equal((await tooBig.closed).code, 1009);
    await leaving.closed;

    const jwt = { authorization: `Token ${publisherToken()}` };
    assert.equal(await server.publish('repo-update', { repo_id: REPO, commit_id: 'c1' }), 200);
    assert.equal(await server.publish('repo-update', { repo_id: QUIET, commit_id: 'nobody listens' }), 200);
    assert.equal(await post(server.url, { 'seafile-repo-token': publisherToken() }, { type: 'file-lock-changed', content: { repo_id: REPO2, path: '/a', change_event: 'locked', lock_user: 'x' } }), 200);
    assert.equal(await post(server.url, { 'seafile-repo-token': STATIC_TOKEN }, { type: 'comment-update', content: { repo_id: REPO, type: 'add', file_uuid: 'u', file_path: '/a' } }), 200);
    assert.equal(await post(server.url, jwt, { type: 'folder-perm-changed', content: { repo_id: REPO, path: '/p', type: 'user', change_event: 'add', user: 'alice@example.com', group: -1, perm: 'r' } }), 200);
    assert.equal(await post(server.url, jwt, { type: 'made-up-type', content: { repo_id: REPO2 } }), 200);

    assert.equal(await post(server.url, {}, { type: 'repo-update', content: { repo_id: REPO } }), 401);
    assert.equal(await post(server.url, { authorization: `Token ${subscriberToken(REPO, 'mallory@example.com')}` }, { type: 'repo-update', content: { repo_id: REPO } }), 403);
    assert.equal(await post(server.url, { authorization: `Token ${publisherToken('not the key')}` }, { type: 'repo-update', content: { repo_id: REPO } }), 401);
    assert.equal(await post(server.url, { authorization: `Token ${signToken({ exp: 1 }, Buffer.from('M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F'))}` }, {}), 401);
    assert.equal(await post(server.url, jwt, null, 'GET'), 405);
    assert.equal(await post(server.url, jwt, { type: 'repo-update', content: {} }), 400);

    await alice.waitForCount(5);
    await bob.waitForCount(5);
    assert.deepEqual(alice.messages.map((m) => m.type), ['repo-update', 'file-lock-changed', 'comment-update', 'folder-perm-changed', 'made-up-type']);
    assert.deepEqual(bob.messages.slice(3).map((m) => m.type), ['repo-update', 'comment-update']);

    // The server sees the four closed sockets on its own schedule.
    const now = await scrapeUntil(server.url, (s) => s.value('notification_connections') === 2);
    const delta = (name: string, labels: Record<string, string> = {}) => Scrape.delta(before, now, name, labels);

    assert.equal(now.value('notification_connections'), 2);
    assert.equal(delta('notification_connections_opened_total'), 6);
    assert.equal(delta('notification_connections_closed_total', { reason: 'malformed' }), 1);
    assert.equal(delta('notification_connections_closed_total', { reason: 'binary' }), 1);
    assert.equal(delta('notification_connections_closed_total', { reason: 'too-big' }), 1);
    assert.equal(delta('notification_connections_closed_total', { reason: 'normal' }), 1);
    assert.equal(now.sum('notification_connections_closed_total') - before.sum('notification_connections_closed_total'), 4, 'no other reason counted');

    assert.equal(now.value('notification_subscriptions'), 3);
    assert.equal(now.value('notification_subscribed_libraries'), 2);

    assert.equal(delta('notification_auth_failures_total', { endpoint: 'subscribe', reason: 'signature' }), 1);
    assert.equal(delta('notification_auth_failures_total', { endpoint: 'subscribe', reason: 'wrong-library' }), 1);
    assert.equal(delta('notification_auth_failures_total', { endpoint: 'subscribe', reason: 'expired' }), 1);
    assert.equal(delta('notification_auth_failures_total', { endpoint: 'events', reason: 'missing' }), 1);
    assert.equal(delta('notification_auth_failures_total', { endpoint: 'events', reason: 'subscriber-token' }), 1);
    assert.equal(delta('notification_auth_failures_total', { endpoint: 'events', reason: 'signature' }), 1);
    assert.equal(delta('notification_auth_failures_total', { endpoint: 'events', reason: 'expired' }), 1);
    assert.equal(now.sum('notification_auth_failures_total') - before.sum('notification_auth_failures_total'), 7);

    assert.equal(delta('notification_events_accepted_total', { type: 'repo-update', source: 'jwt' }), 2);
    assert.equal(delta('notification_events_accepted_total', { type: 'file-lock-changed', source: 'legacy-header' }), 1);
    assert.equal(delta('notification_events_accepted_total', { type: 'comment-update', source: 'static-token' }), 1);
    assert.equal(delta('notification_events_accepted_total', { type: 'folder-perm-changed', source: 'jwt' }), 1);
    assert.equal(delta('notification_events_accepted_total', { type: 'other', source: 'jwt' }), 1);
    assert.equal(now.sum('notification_events_accepted_total') - before.sum('notification_events_accepted_total'), 6);
    assert.equal(delta('notification_events_rejected_total', { reason: 'method' }), 1);
    assert.equal(delta('notification_events_rejected_total', { reason: 'invalid' }), 1);
    assert.equal(delta('notification_events_rejected_total', { reason: 'too-large' }), 0);

    // repo-update: 2, file-lock: 1, comment: 2, perm for alice: 1, made-up: 1; the quiet library: 0.
    assert.equal(delta('notification_messages_sent_total'), 7);
    for (const type of ['repo-update', 'file-lock-changed', 'comment-update', 'folder-perm-changed', 'other']) {
      assert.equal(delta('notification_delivery_latency_seconds_count', { type }), 1, `one observation per delivered ${type} event`);
      assert.equal(delta('notification_delivery_latency_seconds_bucket', { type, le: '1' }), 1, `${type} delivered within a second`);
    }
    assert.equal(delta('notification_group_lookups_total', { result: 'miss' }), 0);
    assert.equal(delta('notification_subscriptions_expired_total'), 0);
  });

  it('is well formed: a type and a help text for every family, our names prefixed, process metrics included', async () => {
    const current = await scrape(server.url);
    const ours = [...current.types.keys()].filter((name) => name.startsWith('notification_'));
    assert.ok(ours.length >= 14, `only ${ours.length} notification_ families`);
    for (const name of current.types.keys()) assert.ok((current.help.get(name) ?? '') !== '', `${name} has a help text`);
    assert.equal(current.types.get('notification_connections_closed_total'), 'counter');
    assert.equal(current.types.get('notification_connections'), 'gauge');
    assert.equal(current.types.get('notification_delivery_latency_seconds'), 'histogram');
    const openFds = current.value('process_open_fds');
    const maxFds = current.value('process_max_fds');
    assert.ok(openFds > 0 && openFds < maxFds, `open fds ${openFds} of ${maxFds}`);
    assert.ok(current.value('nodejs_heap_size_used_bytes') > 0);
    assert.ok(current.types.has('nodejs_eventloop_lag_seconds'));
    const head = await fetch(`${server.url}/metrics`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal((await fetch(`${server.url}/metrics`, { method: 'POST' })).status, 405);
  });

  it('answers /health/live and /health/ready with JSON, and leaves /ping as it is', async () => {
    const live = await fetch(`${server.url}/health/live`);
    assert.equal(live.status, 200);
    assert.match(live.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await live.json(), { status: 'live' });
    const ready = await fetch(`${server.url}/health/ready`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready' });
    assert.equal(await (await fetch(`${server.url}/ping`)).text(), '{"ret": "pong"}\n');
    assert.equal((await fetch(`${server.url}/notification/metrics`)).status, 404, 'not under the public prefix');
  });

  it('refuses /metrics to a request forwarded by a reverse proxy (nginx\'s prefix rule forwards /notificationmetrics)', async () => {
    const headers: Array<Record<string, string>> = [{ 'x-forwarded-for': '203.0.113.7' }, { forwarded: 'for=203.0.113.7' }, { 'x-real-ip': '203.0.113.7' }];
    for (const header of headers) {
      const response = await fetch(`${server.url}/metrics`, { headers: header });
      assert.equal(response.status, 404, JSON.stringify(header));
      assert.match(await response.text(), /direct requests only/);
    }
    assert.equal((await fetch(`${server.url}/health/ready`, { headers: { 'x-forwarded-for': '203.0.113.7' } })).status, 200, 'health tells nothing: it stays');
  });
});

describe('operations endpoints around the lifecycle', () => {
  it('NOTIFICATION_SERVER_METRICS=false turns /metrics off (404); health stays', async () => {
    const server = await ServerProcess.start({ env: { NOTIFICATION_SERVER_METRICS: 'false' } });
    try {
      const response = await fetch(`${server.url}/metrics`);
      assert.equal(response.status, 404);
      assert.match(await response.text(), /NOTIFICATION_SERVER_METRICS/);
      assert.equal((await fetch(`${server.url}/health/ready`)).status, 200);
    } finally {
      await server.stop();
    }
  });

  it('/health/ready answers 503 while draining after SIGTERM, while live stays 200 and new WebSockets are refused', async () => {
    const server = await ServerProcess.start({ env: { NOTIFICATION_SERVER_DRAIN_SECONDS: '3' } });
    const clients = await Promise.all([1, 2, 3].map(() => TestClient.connect(server.wsUrl)));
    assert.equal((await fetch(`${server.url}/health/ready`)).status, 200);
    const lastClosed = clients[2]!.closed.then(() => Date.now());

    server.child.kill('SIGTERM');
    // The closes are spread over the 3 s window: the first goes at once, the last after about 2 s.
    const first = await Promise.race(clients.map((client) => client.closed));
    assert.equal(first.code, 1001);
    const ready = await fetch(`${server.url}/health/ready`);
    const askedAt = Date.now();
    assert.equal(ready.status, 503);
    assert.deepEqual(await ready.json(), { status: 'draining' });
    assert.equal((await fetch(`${server.url}/health/live`)).status, 200);
    await assert.rejects(TestClient.connect(server.wsUrl), /503/);
    assert.ok((await lastClosed) > askedAt, 'the drain was still going on when readiness was asked');

    for (const client of clients) assert.equal((await client.closed).code, 1001);
    assert.deepEqual(await server.exited, { code: 0, signal: null });
  });
});
