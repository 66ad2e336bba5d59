/**
 * SSE and long polling against the real server: the wire formats of docs/fallbacks.md, and the
 * WebSocket's rules (tokens, targeting, order, limits, counts) over both.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { scrape, scrapeUntil } from '../support/prometheus-text.js';
import { ServerProcess, subscriberToken } from '../support/server-process.js';
import { SseReader } from '../support/sse-reader.js';
import { TestClient } from '../support/test-client.js';
import { upgradeAnswer } from '../support/upgrade.js';

const REPO_A = '5a1e0c1a-6666-4b4b-9c9c-00000000000a';
const REPO_B = '5a1e0c1a-6666-4b4b-9c9c-00000000000b';
const ALICE = 'alice@example.com';

type Message = { type: string; content: Record<string, unknown>; position?: { epoch: string; offset: number } };

function sseUrl(server: ServerProcess, libraries: Array<[string, string]>, cursor?: string): string {
  const query = new URLSearchParams();
  for (const [repoId, token] of libraries) {
    query.append('repo_id', repoId);
    query.append('jwt_token', token);
  }
  if (cursor !== undefined) query.set('cursor', cursor);
  return `${server.url}/notification/sse?${query}`;
}

async function poll(
  server: ServerProcess,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; cursor: string; messages: Message[]; text: string; retryAfter: string | null }> {
  const response = await fetch(`${server.url}/notification/poll`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await response.text();
  const retryAfter = response.headers.get('retry-after');
  if (response.status !== 200) return { status: response.status, cursor: '', messages: [], text, retryAfter };
  const answer = JSON.parse(text) as { cursor: string; messages: Message[] };
  return { status: 200, cursor: answer.cursor, messages: answer.messages, text, retryAfter };
}

const commits = (messages: Message[]) => messages.filter((m) => m.type === 'repo-update').map((m) => m.content['commit_id']);

describe('SSE: GET /notification/sse', () => {
  let server: ServerProcess;
  const readers: SseReader[] = [];
  before(async () => {
    server = await ServerProcess.start({ env: { NOTIFICATION_SERVER_PING_INTERVAL: '1', NOTIFICATION_SERVER_DEAD_PEER_TIMEOUT: '3' } });
  });
  after(async () => {
    for (const reader of readers) reader.close();
    await server?.stop();
  });
  async function open(url: string, headers: Record<string, string> = {}): Promise<SseReader> {
    const reader = await SseReader.connect(url, headers);
    readers.push(reader);
    return reader;
  }

  it('streams the positioned frames of every library it names, each with the cursor of all of them as id', async () => {
    const reader = await open(sseUrl(server, [[REPO_A, subscriberToken(REPO_A, ALICE)], [REPO_B, subscriberToken(REPO_B, ALICE)]]));
    assert.equal(reader.status, 200);
    assert.match(reader.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(reader.headers.get('x-accel-buffering'), 'no');
    await reader.waitFor(() => reader.messages.filter((m) => m.type === 'subscribed').length === 2, 'both subscribed');
    await server.publish('repo-update', { repo_id: REPO_A, commit_id: 'a1' });
    await server.publish('file-lock-changed', { repo_id: REPO_B, path: '/x.md', change_event: 'locked', lock_user: 'bob' });
    await server.publish('file-lock-changed', { repo_id: REPO_B, path: '/x.md', change_event: 'unlocked', lock_user: 'bob' });
    await reader.waitFor(() => reader.events.length === 5, 'the three events');
    const [, , first, locked, unlocked] = reader.messages;
    assert.deepEqual(first!.content, { repo_id: REPO_A, commit_id: 'a1' });
    assert.deepEqual([locked!.content['change_event'], unlocked!.content['change_event']], ['locked', 'unlocked'], 'in the order published');
    const epoch = first!.position!.epoch;
    assert.equal(reader.events[4]!.id, `${REPO_A}@${epoch}:${first!.position!.offset},${REPO_B}@${epoch}:${unlocked!.position!.offset}`);
    assert.deepEqual(JSON.parse(reader.events[2]!.data), first, 'the data is the WebSocket frame');
    reader.close();
  });

  it('Last-Event-ID resumes every library exactly where the stream stopped: nothing lost, nothing twice', async () => {
    const libraries: Array<[string, string]> = [[REPO_A, subscriberToken(REPO_A, ALICE)], [REPO_B, subscriberToken(REPO_B, ALICE)]];
    const reader = await open(sseUrl(server, libraries));
    await reader.waitFor(() => reader.messages.filter((m) => m.type === 'subscribed').length === 2, 'both subscribed');
    await server.publish('repo-update', { repo_id: REPO_A, commit_id: 'seen-a' });
    await server.publish('repo-update', { repo_id: REPO_B, commit_id: 'seen-b' });
    await reader.waitFor(() => commits(reader.messages).length === 2, 'two events');
    const lastId = reader.events.at(-1)!.id!;
    reader.close();
    for (const [repoId, commit] of [[REPO_A, 'missed-a1'], [REPO_B, 'missed-b1'], [REPO_A, 'missed-a2']] as const) {
      await server.publish('repo-update', { repo_id: repoId, commit_id: commit });
    }
    const resumed = await open(sseUrl(server, libraries), { 'last-event-id': `${lastId},not-in-this-stream@x:1` });
    await resumed.waitFor(() => resumed.messages.filter((m) => m.type === 'subscribed').length === 2, 'both resumed');
    await server.publish('repo-update', { repo_id: REPO_B, commit_id: 'live' });
    await resumed.waitFor(() => commits(resumed.messages).includes('live'), 'the live event');
    assert.deepEqual(commits(resumed.messages).sort(), ['live', 'missed-a1', 'missed-a2', 'missed-b1']);
    assert.deepEqual(commits(resumed.messages.filter((m) => m.content['repo_id'] === REPO_A)), ['missed-a1', 'missed-a2'], 'in order');
    assert.ok(resumed.events.every((event) => !event.id!.includes('not-in-this-stream')), 'the id names the stream\'s libraries only');
  });

  it('a silent stream gets keep-alive comments at the ping interval', async () => {
    const reader = await open(sseUrl(server, [[REPO_A, subscriberToken(REPO_A, ALICE)]]));
    await reader.waitFor(() => reader.comments.filter((c) => c === 'keep-alive').length >= 2, 'two keep-alives');
  });

  it('a refused token gets jwt-expired as on a WebSocket and is counted; a stream with no library left ends', async () => {
    const before = await scrape(server.url);
    const reader = await open(
      sseUrl(server, [
        [REPO_A, subscriberToken(REPO_A, ALICE, { key: 'not-the-key' })],
        [REPO_B, subscriberToken(REPO_B, ALICE)],
      ]),
    );
    await reader.waitFor(() => reader.messages.some((m) => m.type === 'subscribed'), 'B subscribed');
    assert.deepEqual(reader.messages[0], { type: 'jwt-expired', content: { repo_id: REPO_A } });
    await server.publish('repo-update', { repo_id: REPO_A, commit_id: 'not-for-you' });
    await server.publish('repo-update', { repo_id: REPO_B, commit_id: 'for-you' });
    await reader.waitFor(() => commits(reader.messages).includes('for-you'), 'B event');
    assert.deepEqual(commits(reader.messages), ['for-you']);

    const refused = await open(sseUrl(server, [[REPO_A, subscriberToken(REPO_B, ALICE)]]));
    await refused.ended;
    assert.deepEqual(refused.messages, [{ type: 'jwt-expired', content: { repo_id: REPO_A } }]);
    const after = await scrape(server.url);
    assert.equal(after.value('notification_auth_failures_total', { endpoint: 'subscribe', reason: 'signature' }) - before.value('notification_auth_failures_total', { endpoint: 'subscribe', reason: 'signature' }), 1);
    assert.equal(after.value('notification_auth_failures_total', { endpoint: 'subscribe', reason: 'wrong-library' }) - before.value('notification_auth_failures_total', { endpoint: 'subscribe', reason: 'wrong-library' }), 1);
    assert.ok(after.value('notification_fallback_requests_total', { transport: 'sse' }) - before.value('notification_fallback_requests_total', { transport: 'sse' }) >= 2);
  });

  it('a token that expires while the stream is open gets jwt-expired, and the stream with no library left ends', async () => {
    const reader = await open(sseUrl(server, [[REPO_A, subscriberToken(REPO_A, ALICE, { exp: Math.floor(Date.now() / 1000) + 2 })]]));
    await reader.waitFor(() => reader.messages.some((m) => m.type === 'subscribed'), 'subscribed');
    await reader.ended;
    assert.deepEqual(reader.messages.at(-1), { type: 'jwt-expired', content: { repo_id: REPO_A } });
  });

  it('a folder permission change for one user reaches only that user', async () => {
    const alice = await open(sseUrl(server, [[REPO_A, subscriberToken(REPO_A, ALICE)]]));
    const carol = await open(sseUrl(server, [[REPO_A, subscriberToken(REPO_A, 'carol@example.com')]]));
    for (const reader of [alice, carol]) await reader.waitFor(() => reader.messages.some((m) => m.type === 'subscribed'), 'subscribed');
    await server.publish('folder-perm-changed', { repo_id: REPO_A, path: '/d', type: 'user', change_event: 'add', user: 'carol@example.com', group: -1, perm: 'r' });
    await server.publish('repo-update', { repo_id: REPO_A, commit_id: 'after-perm' });
    for (const reader of [alice, carol]) await reader.waitFor(() => commits(reader.messages).includes('after-perm'), 'the marker');
    assert.equal(alice.messages.filter((m) => m.type === 'folder-perm-changed').length, 0);
    assert.equal(carol.messages.filter((m) => m.type === 'folder-perm-changed').length, 1);
  });

  it('an unusable request is answered 400 with what to fix; other methods 405', async () => {
    const noToken = await fetch(`${server.url}/notification/sse?repo_id=${REPO_A}`);
    assert.equal(noToken.status, 400);
    assert.match(await noToken.text(), /1 repo_id but 0 jwt_token/);
    const badCursor = await fetch(sseUrl(server, [[REPO_A, subscriberToken(REPO_A, ALICE)]], 'garbage'));
    assert.equal(badCursor.status, 400);
    assert.match(await badCursor.text(), /not <repo_id>@<epoch>:<offset>/);
    assert.equal((await fetch(`${server.url}/notification/sse`, { method: 'POST' })).status, 405);
  });
});

describe('long polling: POST /notification/poll', () => {
  let server: ServerProcess;
  before(async () => {
    server = await ServerProcess.start({ env: { NOTIFICATION_SERVER_HISTORY_SIZE: '3' } });
  });
  after(async () => {
    await server?.stop();
  });
  const token = subscriberToken(REPO_A, ALICE);

  it('a first poll answers at once with where each library stands; the next waits for the next event', async () => {
    const first = await poll(server, { repos: [{ id: REPO_A, jwt_token: token }] });
    assert.equal(first.status, 200);
    assert.deepEqual(first.messages.map((m) => m.type), ['subscribed']);
    const waiting = poll(server, { cursor: first.cursor, repos: [{ id: REPO_A, jwt_token: token }] });
    let answered = false;
    void waiting.then(() => (answered = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(answered, false, 'nothing new: it waits');
    await server.publish('repo-update', { repo_id: REPO_A, commit_id: 'next' });
    const next = await waiting;
    assert.deepEqual(commits(next.messages), ['next']);
    assert.match(next.cursor, new RegExp(`^${REPO_A}@[\\w-]+:${next.messages.find((m) => m.type === 'repo-update')!.position!.offset}$`));
  });

  it('a poll with nothing new is answered after long_poll_wait with only the confirmation, and the same cursor', async () => {
    const own = await ServerProcess.start({ env: { NOTIFICATION_SERVER_LONG_POLL_WAIT: '1' } });
    try {
      const first = await poll(own, { repos: [{ id: REPO_A, jwt_token: token }] });
      const quiet = await poll(own, { cursor: first.cursor, repos: [{ id: REPO_A, jwt_token: token }] });
      assert.equal(quiet.status, 200);
      assert.deepEqual(quiet.messages.map((m) => m.type), ['subscribed']);
      assert.equal(quiet.cursor, first.cursor);
    } finally {
      await own.stop();
    }
  });

  it('a cursor behind gets what it missed at once, in order; one history no longer covers gets resync', async () => {
    const start = await poll(server, { repos: [{ id: REPO_A, jwt_token: token }] });
    await server.publish('repo-update', { repo_id: REPO_A, commit_id: 'm1' });
    await server.publish('repo-update', { repo_id: REPO_A, commit_id: 'm2' });
    const caughtUp = await poll(server, { cursor: start.cursor, repos: [{ id: REPO_A, jwt_token: token }] });
    assert.deepEqual(commits(caughtUp.messages), ['m1', 'm2']);
    for (let i = 0; i < 4; i++) await server.publish('repo-update', { repo_id: REPO_A, commit_id: `flood-${i}` });
    const tooOld = await poll(server, { cursor: start.cursor, repos: [{ id: REPO_A, jwt_token: token }] });
    assert.deepEqual(tooOld.messages.map((m) => [m.type, m.content['reason']]), [['resync', 'history-gone']]);
    const otherEpoch = await poll(server, { cursor: `${REPO_A}@someOtherEpoch:2`, repos: [{ id: REPO_A, jwt_token: token }] });
    assert.deepEqual(otherEpoch.messages.map((m) => [m.type, m.content['reason']]), [['resync', 'epoch-changed']]);
    assert.equal(otherEpoch.cursor, tooOld.cursor, 'both continue from where the library stands');
  });

  it('a refused token is answered jwt-expired at once; a bad body 400', async () => {
    const refused = await poll(server, { cursor: '', repos: [{ id: REPO_A, jwt_token: subscriberToken(REPO_A, ALICE, { exp: 1000 }) }] });
    assert.deepEqual(refused.messages, [{ type: 'jwt-expired', content: { repo_id: REPO_A } }]);
    const huge = await poll(server, { repos: [{ id: REPO_A, jwt_token: 'x'.repeat(70 * 1024) }] });
    assert.equal(huge.status, 400);
    assert.match(huge.text, /larger than 65536 bytes/);
    const bad = await poll(server, '{"repos": "all of them"}');
    assert.equal(bad.status, 400);
    assert.match(bad.text, /"repos": \[\{"id"/);
  });

  it('a waiting poll is answered when the server shuts down, and new ones are refused', async () => {
    const own = await ServerProcess.start();
    const first = await poll(own, { repos: [{ id: REPO_A, jwt_token: token }] });
    const waiting = poll(own, { cursor: first.cursor, repos: [{ id: REPO_A, jwt_token: token }] });
    await scrapeUntil(own.url, (now) => now.value('notification_fallback_requests_open', { transport: 'long-poll' }) === 1);
    const stopped = own.stop();
    const answer = await waiting;
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.messages.map((m) => m.type), ['subscribed']);
    assert.equal(answer.cursor, first.cursor);
    await stopped;
  });
});

describe('the fallbacks share the WebSocket limits', () => {
  let server: ServerProcess;
  before(async () => {
    server = await ServerProcess.start({
      env: { NOTIFICATION_SERVER_MAX_CONNECTIONS: '2', NOTIFICATION_SERVER_MAX_LIBRARIES_PER_CONNECTION: '2', NOTIFICATION_SERVER_ALLOWED_ORIGINS: 'https://cloud.example.com' },
    });
  });
  after(async () => {
    await server?.stop();
  });

  it('max_connections counts WebSockets, SSE streams and waiting polls together', async () => {
    const ws = await TestClient.connect(server.wsUrl);
    const stream = await SseReader.connect(sseUrl(server, [[REPO_A, subscriberToken(REPO_A, ALICE)]]));
    assert.equal(stream.status, 200);
    const third = await fetch(sseUrl(server, [[REPO_A, subscriberToken(REPO_A, ALICE)]]));
    assert.equal(third.status, 503);
    assert.equal(third.headers.get('retry-after'), '60');
    const polled = await poll(server, { repos: [{ id: REPO_A, jwt_token: subscriberToken(REPO_A, ALICE) }] });
    assert.equal(polled.status, 503);
    await assert.rejects(TestClient.connect(server.wsUrl), /503/);
    stream.close();
    ws.close();
    // The next test needs the places back: wait until the server has seen both go.
    await scrapeUntil(server.url, (now) => now.value('notification_connections') === 0 && now.value('notification_fallback_requests_open', { transport: 'sse' }) === 0);
  });

  it('max_libraries_per_connection bounds one request; allowed_origins refuses other browser origins and answers CORS to allowed ones', async () => {
    const three = await fetch(sseUrl(server, [REPO_A, REPO_B, 'third'].map((id) => [id, subscriberToken(id, ALICE)])));
    assert.equal(three.status, 400);
    assert.match(await three.text(), /3 libraries in one request, more than the server's limit of 2/);
    const foreign = await fetch(`${server.url}/notification/poll`, { method: 'POST', headers: { origin: 'https://evil.example.net' }, body: '{}' });
    assert.equal(foreign.status, 403);
    const allowed = await fetch(`${server.url}/notification/poll`, {
      method: 'POST',
      headers: { origin: 'https://cloud.example.com' },
      body: JSON.stringify({ repos: [{ id: REPO_A, jwt_token: subscriberToken(REPO_A, ALICE) }] }),
    });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://cloud.example.com');
    await allowed.arrayBuffer();
  });
});

/** Opens SSE streams until `url` (from `from`) is admitted again, once a place has been given back: the server sees the close a moment later. */
async function sseWhenAdmitted(url: string, from: Record<string, string>): Promise<SseReader> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const reader = await SseReader.connect(url, from);
    if (reader.status === 200) return reader;
    reader.close();
    if (Date.now() > deadline) throw new Error(`still refused (${reader.status}) after a place was given back`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('the fallbacks share the per-address and per-user caps', () => {
  let server: ServerProcess;
  const readers: SseReader[] = [];
  const clients: TestClient[] = [];
  before(async () => {
    // The default trusted_proxies (loopback): X-Forwarded-For names the client, as behind the documented proxy.
    server = await ServerProcess.start({ env: { NOTIFICATION_SERVER_MAX_CONNECTIONS_PER_ADDRESS: '2', NOTIFICATION_SERVER_MAX_CONNECTIONS_PER_USER: '2' } });
  });
  after(async () => {
    for (const reader of readers) reader.close();
    for (const client of clients) client.socket.terminate();
    await server?.stop();
  });
  const from = (address: string) => ({ 'x-forwarded-for': address });
  const alone = (user: string) => sseUrl(server, [[REPO_A, subscriberToken(REPO_A, user)]]);
  async function stream(url: string, headers: Record<string, string>): Promise<SseReader> {
    const reader = await SseReader.connect(url, headers);
    readers.push(reader);
    return reader;
  }

  it('max_connections_per_address counts WebSockets, SSE streams and waiting polls of one address together: past it each is answered 429 with Retry-After', async () => {
    const office = from('203.0.113.7');
    const first = await poll(server, { repos: [{ id: REPO_A, jwt_token: subscriberToken(REPO_A, 'p1@example.com') }] }, office);
    assert.equal(first.status, 200, 'an answered poll is no longer a connection');
    const waiting = poll(server, { cursor: first.cursor, repos: [{ id: REPO_A, jwt_token: subscriberToken(REPO_A, 'p1@example.com') }] }, office);
    await scrapeUntil(server.url, (now) => now.value('notification_fallback_requests_open', { transport: 'long-poll' }) === 1);
    const open = await stream(alone('s1@example.com'), office);
    assert.equal(open.status, 200);

    const refused = await fetch(alone('s2@example.com'), { headers: office });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '60');
    assert.equal(await refused.text(), 'too many connections from your address (max_connections_per_address is 2); try again in 60 s\n');
    const refusedPoll = await poll(server, { repos: [{ id: REPO_A, jwt_token: subscriberToken(REPO_A, 's2@example.com') }] }, office);
    assert.equal(refusedPoll.status, 429);
    assert.equal((await upgradeAnswer(server.port, office)).status, 429, 'a WebSocket from the address is refused too');
    const elsewhere = await stream(alone('s3@example.com'), from('203.0.113.8'));
    assert.equal(elsewhere.status, 200, 'another address is not affected');
    const metrics = await scrape(server.url);
    assert.equal(metrics.value('notification_requests_refused_total', { reason: 'address-cap' }), 3);

    // The waiting poll is answered by an event: its place is given back, and the address gets one in again.
    await server.publish('repo-update', { repo_id: REPO_A, commit_id: 'frees-a-place' });
    assert.deepEqual(commits((await waiting).messages), ['frees-a-place']);
    readers.push(await sseWhenAdmitted(alone('s2@example.com'), office));
    // A WebSocket counts as much as a stream: with it the address is full again.
    open.close();
    const ws = await TestClient.connect(server.wsUrl, { headers: office }).catch(async () => {
      await scrapeUntil(server.url, (now) => now.value('notification_fallback_requests_open', { transport: 'sse' }) === 2);
      return TestClient.connect(server.wsUrl, { headers: office });
    });
    clients.push(ws);
    assert.equal((await fetch(alone('s4@example.com'), { headers: office })).status, 429);
  });

  it('max_connections_per_user counts a subscribed SSE stream or waiting poll as one of the user\'s connections; one more is answered 429, a WebSocket one more gets the error', async () => {
    const carol = 'carol@example.com';
    const laptop = await TestClient.connect(server.wsUrl, { headers: from('198.51.100.1') });
    clients.push(laptop);
    laptop.subscribe([{ id: REPO_A, jwt_token: subscriberToken(REPO_A, carol) }]);
    await laptop.roundTrip();
    const phone = await stream(alone(carol), from('198.51.100.2'));
    await phone.waitFor(() => phone.messages.some((m) => m.type === 'subscribed'), 'the stream subscribed');

    const third = await fetch(alone(carol), { headers: from('198.51.100.3') });
    assert.equal(third.status, 429);
    assert.equal(third.headers.get('retry-after'), '60');
    assert.match(await third.text(), /^too many connections for this user \(max_connections_per_user is 2\); close one, or try again in 60 s\n$/);
    const polled = await poll(server, { repos: [{ id: REPO_B, jwt_token: subscriberToken(REPO_B, carol) }] }, from('198.51.100.4'));
    assert.equal(polled.status, 429);
    const ws = await TestClient.connect(server.wsUrl, { headers: from('198.51.100.5') });
    clients.push(ws);
    ws.subscribe([{ id: REPO_B, jwt_token: subscriberToken(REPO_B, carol) }]);
    assert.match(String((await ws.waitFor((m) => m.type === 'error')).content['message']), /this user already has 2 connections open/);
    assert.deepEqual(await ws.closed, { code: 4003, reason: 'too many connections for this user' });

    // A stream for carol and dave: dave's library is followed, carol's is answered with the WebSocket's error.
    const shared = await stream(sseUrl(server, [[REPO_A, subscriberToken(REPO_A, carol)], [REPO_B, subscriberToken(REPO_B, 'dave@example.com')]]), from('198.51.100.6'));
    assert.equal(shared.status, 200);
    await shared.waitFor(() => shared.messages.some((m) => m.type === 'subscribed'), 'dave\'s library subscribed');
    const error = shared.messages.find((m) => m.type === 'error');
    assert.equal(error?.content['repo_id'], REPO_A);
    assert.match(String(error?.content['message']), /this user already has 2 connections open/);
    assert.deepEqual(shared.messages.filter((m) => m.type === 'subscribed').map((m) => m.content['repo_id']), [REPO_B]);

    const metrics = await scrapeUntil(server.url, (now) => now.value('notification_connections_closed_total', { reason: 'user-cap' }) === 1);
    assert.equal(metrics.value('notification_subscribes_limited_total', { reason: 'user-cap' }), 4, 'one per refused library, whatever the transport');
    assert.equal(metrics.value('notification_requests_refused_total', { reason: 'user-cap' }), 2);
    // Once the stream goes, carol has room again.
    phone.close();
    readers.push(await sseWhenAdmitted(alone(carol), from('198.51.100.7')));
  });
});

describe('max_failed_subscribes_per_minute, per client address for the fallbacks', () => {
  let server: ServerProcess;
  before(async () => {
    // 2 a minute: one more refused token every 30 s, far longer than the test takes.
    server = await ServerProcess.start({ env: { NOTIFICATION_SERVER_MAX_FAILED_SUBSCRIBES_PER_MINUTE: '2' } });
  });
  after(async () => {
    await server?.stop();
  });
  const badKey = (id: string) => ({ id, jwt_token: subscriberToken(id, ALICE, { exp: 1000 }) });

  it('a client looping on bad tokens is refused 429 before any token is checked, once its address used up the allowance; other addresses are not affected', async () => {
    const looping = { 'x-forwarded-for': '192.0.2.10' };
    const first = await poll(server, { repos: [badKey(REPO_A)] }, looping);
    assert.deepEqual(first.messages, [{ type: 'jwt-expired', content: { repo_id: REPO_A } }]);
    // The second refused token of this request empties the allowance: the request is refused, not answered jwt-expired.
    const overdrawn = await poll(server, { repos: [badKey(REPO_A), badKey(REPO_B)] }, looping);
    assert.equal(overdrawn.status, 429);
    assert.equal(overdrawn.retryAfter, '30');
    assert.match(overdrawn.text, /^too many refused tokens from your address \(max_failed_subscribes_per_minute is 2\); fetch new tokens, then try again in 30 s\n$/);
    const checked = (await scrape(server.url)).value('notification_auth_failures_total', { endpoint: 'subscribe', reason: 'expired' });
    assert.equal(checked, 3);

    for (let i = 0; i < 20; i++) {
      const again = i % 2 === 0 ? await poll(server, { repos: [badKey(REPO_A)] }, looping) : await fetch(sseUrl(server, [[REPO_A, badKey(REPO_A).jwt_token]]), { headers: looping });
      assert.equal(again.status, 429);
      if (again instanceof Response) await again.arrayBuffer();
    }
    const after = await scrape(server.url);
    assert.equal(after.value('notification_auth_failures_total', { endpoint: 'subscribe', reason: 'expired' }), checked, 'no token was checked for the refused requests');
    assert.equal(after.value('notification_requests_refused_total', { reason: 'failed-subscribes' }), 21);

    const other = await poll(server, { repos: [badKey(REPO_A)] }, { 'x-forwarded-for': '192.0.2.11' });
    assert.deepEqual(other.messages, [{ type: 'jwt-expired', content: { repo_id: REPO_A } }], 'another address still gets its jwt-expired');
    const good = await poll(server, { repos: [{ id: REPO_A, jwt_token: subscriberToken(REPO_A, ALICE) }] }, { 'x-forwarded-for': '192.0.2.12' });
    assert.deepEqual(good.messages.map((m) => m.type), ['subscribed']);
  });
});
