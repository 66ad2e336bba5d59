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

async function poll(server: ServerProcess, body: unknown): Promise<{ status: number; cursor: string; messages: Message[]; text: string }> {
  const response = await fetch(`${server.url}/notification/poll`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await response.text();
  if (response.status !== 200) return { status: response.status, cursor: '', messages: [], text };
  const answer = JSON.parse(text) as { cursor: string; messages: Message[] };
  return { status: 200, cursor: answer.cursor, messages: answer.messages, text };
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
