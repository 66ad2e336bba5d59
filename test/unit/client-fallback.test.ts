import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  longPollTransport,
  NotificationClient,
  sseTransport,
  webSocketTransport,
  type NotificationClientError,
  type NotificationClientOptions,
  type Resync,
} from '#client';
import { signToken } from '../../src/auth/jwt.js';
import { FakeClock, FakeFetch, fakeWebSocket, settle } from '../support/client-fakes.js';

const REPO_A = '7a1e0c1a-1111-4b4b-9c9c-00000000000a';
const REPO_B = '7a1e0c1a-1111-4b4b-9c9c-00000000000b';
const KEY = Buffer.from('unit-test-key');

/** A client with all three transports over a fake WebSocket and a fake fetch. */
function setup(overrides: Partial<NotificationClientOptions> = {}) {
  const clock = new FakeClock();
  const fake = fakeWebSocket();
  const http = new FakeFetch();
  let issued = 0;
  const client = new NotificationClient({
    url: 'https://cloud.example.com/notification',
    tokenProvider: async (repoId) => signToken({ repo_id: repoId, username: 'alice@example.com', exp: Math.floor(clock.now() / 1000) + 3600, n: ++issued }, KEY),
    transports: [webSocketTransport(fake.WebSocket), sseTransport({ fetch: http.fetch }), longPollTransport({ fetch: http.fetch })],
    fetch: http.fetch,
    clock,
    random: () => 0.5,
    ...overrides,
  });
  const seen: string[] = [];
  const errors: NotificationClientError[] = [];
  const resyncs: Resync[] = [];
  client.on('repoUpdate', (e) => seen.push(e.commit_id));
  client.on('fileLockChanged', (e) => seen.push(`${e.path} ${e.change_event}`));
  client.on('resync', (e) => resyncs.push(e));
  client.on('error', (e) => errors.push(e));
  return { client, clock, fake, http, seen, errors, resyncs };
}

const frame = (type: string, content: Record<string, unknown>, position?: { epoch: string; offset: number }) =>
  JSON.stringify(position === undefined ? { type, content } : { type, content, position });
const sse = (data: string, id = 'ignored') => `id: ${id}\ndata: ${data}\n\n`;
/** fallbackAfter (2) failures in a row, then one more attempt once the server answered its ping. */
const ATTEMPTS_BEFORE_FALLBACK = 3;

/** Refuses WebSocket attempts until the client has moved on to another transport. */
async function refuseWebSockets(setupResult: ReturnType<typeof setup>): Promise<void> {
  const { client, clock, fake } = setupResult;
  while (client.transport === 'websocket') {
    fake.last().drop(1006);
    await clock.fireNext();
  }
}

describe('NotificationClient: falling back from WebSocket to SSE to long polling', () => {
  it('a WebSocket refused twice in a row, and once more after the server answered its ping, hands over to SSE, which carries the tokens in the query and delivers typed events', async () => {
    const setupResult = setup();
    const { client, clock, fake, http, seen, errors } = setupResult;
    client.subscribe(REPO_A);
    client.subscribe(REPO_B);
    await refuseWebSockets(setupResult);
    assert.equal(fake.sockets.length, 3, 'fallbackAfter 2: two WebSocket attempts, and one more once the server answered its ping');
    assert.match(errors[1]!.message, /^cannot connect \(websocket: 1006\): retrying in \d+ ms \(checking whether the server answers before falling back\)$/);
    assert.deepEqual(http.pings, Array(2).fill('https://cloud.example.com/notification/ping'), 'it fell back once the server answered its ping after the last attempt too');
    assert.equal(client.transport, 'sse');
    await clock.advance(0);
    assert.equal(http.requests.length, 1, 'one request for both libraries');
    const request = http.last();
    assert.equal(`${request.url.origin}${request.url.pathname}`, 'https://cloud.example.com/notification/sse');
    assert.deepEqual(request.url.searchParams.getAll('repo_id'), [REPO_A, REPO_B]);
    assert.equal(request.url.searchParams.getAll('jwt_token').length, 2);
    assert.equal(request.url.searchParams.get('cursor'), null, 'no position yet: no cursor');

    request.openStream();
    request.push(': keep-alive\n\n');
    request.push(sse(frame('subscribed', { repo_id: REPO_A, position: { epoch: 'e1', offset: 4 }, })));
    request.push(sse(frame('repo-update', { repo_id: REPO_A, commit_id: 'c5' }, { epoch: 'e1', offset: 5 })).slice(0, 20));
    await settle();
    assert.deepEqual(seen, [], 'half an event is not dispatched');
    request.push(sse(frame('repo-update', { repo_id: REPO_A, commit_id: 'c5' }, { epoch: 'e1', offset: 5 })).slice(20));
    request.push(`data: ${frame('file-lock-changed', { repo_id: REPO_B, path: '/a.md', change_event: 'locked', lock_user: 'bob' }, { epoch: 'e1', offset: 9 })}\r\n\r\n`);
    await settle();
    assert.deepEqual(seen, ['c5', '/a.md locked']);
    assert.equal(client.state, 'open');
    assert.deepEqual(client.positionOf(REPO_A), { epoch: 'e1', offset: 5 });
    assert.deepEqual(client.positionOf(REPO_B), { epoch: 'e1', offset: 9 });
    client.close();
    assert.ok(request.aborted, 'close() aborts the stream');
  });

  it('an SSE stream that ends is reopened with the cursor of every library, and a replayed event is not dispatched twice', async () => {
    const setupResult = setup();
    const { client, clock, http, seen } = setupResult;
    client.subscribe(REPO_A);
    await refuseWebSockets(setupResult);
    await clock.advance(0);
    const first = http.last();
    first.openStream();
    first.push(sse(frame('repo-update', { repo_id: REPO_A, commit_id: 'c1' }, { epoch: 'e1', offset: 1 })));
    await settle();
    first.end();
    await settle();
    assert.equal(client.state, 'reconnecting');
    await clock.fireNext();
    await clock.advance(0);
    const second = http.last();
    assert.notEqual(second, first);
    assert.equal(second.url.searchParams.get('cursor'), `${REPO_A}@e1:1`);
    second.openStream();
    second.push(sse(frame('repo-update', { repo_id: REPO_A, commit_id: 'c1' }, { epoch: 'e1', offset: 1 })));
    second.push(sse(frame('repo-update', { repo_id: REPO_A, commit_id: 'c2' }, { epoch: 'e1', offset: 2 })));
    await settle();
    assert.deepEqual(seen, ['c1', 'c2']);
    client.close();
  });

  it('subscribing another library while a stream is open restarts it once with both libraries and the cursor', async () => {
    const setupResult = setup();
    const { client, clock, http } = setupResult;
    client.subscribe(REPO_A);
    await refuseWebSockets(setupResult);
    await clock.advance(0);
    const first = http.last();
    first.openStream();
    first.push(sse(frame('subscribed', { repo_id: REPO_A, position: { epoch: 'e1', offset: 7 }, })));
    await settle();
    client.subscribe(REPO_B);
    await settle(); // the provider's token
    await clock.advance(0);
    assert.ok(first.aborted);
    const second = http.last();
    assert.deepEqual(second.url.searchParams.getAll('repo_id'), [REPO_A, REPO_B]);
    assert.equal(second.url.searchParams.get('cursor'), `${REPO_A}@e1:7`);
    client.unsubscribe(REPO_A);
    await clock.advance(0);
    assert.deepEqual(http.last().url.searchParams.getAll('repo_id'), [REPO_B]);
    client.close();
  });

  it('when SSE fails too, long polling takes over: POSTs the cursor and tokens, and polls again from the new positions', async () => {
    const setupResult = setup();
    const { client, clock, http, seen, errors } = setupResult;
    const states: string[] = [];
    client.on('state', (state) => states.push(`${state} ${client.transport}`));
    client.subscribe(REPO_A);
    await refuseWebSockets(setupResult);
    for (let i = 0; i < ATTEMPTS_BEFORE_FALLBACK; i++) {
      await clock.advance(0);
      http.last().answer(502, 'Bad Gateway');
      await settle();
      await clock.fireNext();
    }
    assert.equal(client.transport, 'long-poll');
    assert.match(errors.at(-1)!.message, /^cannot connect \(sse: 502 the SSE endpoint answered 502\)/, 'an SSE request the server never answered was never open');
    assert.ok(!states.includes('open sse'), states.join(', '));
    await clock.advance(0);
    const poll = http.last();
    assert.equal(poll.init.method, 'POST');
    assert.equal(poll.url.pathname, '/notification/poll');
    assert.equal(poll.body.cursor, '');
    assert.deepEqual(poll.body.repos.map((repo) => repo.id), [REPO_A]);
    poll.answer(200, { messages: [JSON.parse(frame('subscribed', { repo_id: REPO_A, position: { epoch: 'e1', offset: 3 }, }))] });
    await settle();
    const next = http.last();
    assert.notEqual(next, poll);
    assert.equal(next.body.cursor, `${REPO_A}@e1:3`);
    next.answer(200, { messages: [JSON.parse(frame('repo-update', { repo_id: REPO_A, commit_id: 'c4' }, { epoch: 'e1', offset: 4 }))] });
    await settle();
    assert.deepEqual(seen, ['c4']);
    assert.equal(http.last().body.cursor, `${REPO_A}@e1:4`);
    client.close();
  });

  it('after the last transport the first is tried again; a connection that held starts over at WebSocket', async () => {
    const setupResult = setup({ fallbackAfter: 1, stableAfterMs: 5000 });
    const { client, clock, fake, http } = setupResult;
    client.subscribe(REPO_A);
    const tried: string[] = [client.transport];
    for (let i = 0; i < 6; i++) {
      if (client.transport === 'websocket') {
        fake.last().drop(1006);
        await settle(); // the ping's answer
      } else {
        await clock.advance(0);
        http.last().fail('network down');
        await settle();
      }
      await clock.fireNext();
      tried.push(client.transport);
    }
    // fallbackAfter 1: a failure, the server answers its ping, one more attempt fails too.
    assert.deepEqual(tried, ['websocket', 'websocket', 'sse', 'sse', 'long-poll', 'long-poll', 'websocket']);
    for (let i = 0; i < 2; i++) {
      fake.last().drop(1006);
      await settle(); // the ping's answer
      await clock.fireNext();
    }
    assert.equal(client.transport, 'sse');
    await clock.advance(0);
    http.last().openStream();
    http.last().push('retry: 3000\n: following 1 libraries\n\n');
    await settle(); // the answer arrives: open
    await clock.advance(6000);
    http.last().end();
    await settle();
    assert.equal(client.transport, 'websocket', 'the SSE stream held past stableAfterMs: WebSocket first again');
    client.close();
  });

  it('an SSE stream through which nothing ever arrives (a buffering proxy) counts as failed: long polling takes over', async () => {
    const setupResult = setup({ idleTimeoutMs: 30_000, stableAfterMs: 10_000 });
    const { client, clock, http } = setupResult;
    client.subscribe(REPO_A);
    await refuseWebSockets(setupResult);
    for (let i = 0; i < ATTEMPTS_BEFORE_FALLBACK; i++) {
      assert.equal(client.transport, 'sse');
      await clock.advance(0);
      http.last().openStream(); // the headers pass, the body is held back
      await clock.advance(30_000); // the idle watchdog drops it, long past stableAfterMs
      assert.equal(client.state, 'reconnecting');
      await clock.fireNext();
    }
    assert.equal(client.transport, 'long-poll');
    client.close();
  });

  it('on a fallback it tries WebSocket on the side every upgradeAfterMs, and moves back once one opens, resuming from its position', async () => {
    const setupResult = setup({ upgradeAfterMs: 60_000, idleTimeoutMs: 0 });
    const { client, clock, fake, http, seen } = setupResult;
    client.subscribe(REPO_A);
    await refuseWebSockets(setupResult);
    await clock.advance(0);
    const stream = http.last();
    stream.openStream();
    stream.push(sse(frame('repo-update', { repo_id: REPO_A, commit_id: 'c1' }, { epoch: 'e1', offset: 1 })));
    await settle();
    const socketsBefore = fake.sockets.length;
    await clock.advance(60_000);
    assert.equal(fake.sockets.length, socketsBefore + 1, 'a WebSocket tried on the side');
    fake.last().drop(1006); // still refused
    await settle();
    assert.equal(client.transport, 'sse');
    assert.equal(client.state, 'open');
    assert.ok(!stream.aborted, 'the stream in use was not disturbed');
    await clock.advance(60_000);
    const probe = fake.last();
    assert.equal(fake.sockets.length, socketsBefore + 2);
    probe.accept();
    await settle();
    assert.ok(probe.closedByClient !== undefined, 'the probe is closed');
    assert.ok(stream.aborted, 'the stream is left');
    assert.equal(client.transport, 'websocket');
    const socket = fake.last();
    assert.notEqual(socket, probe);
    socket.accept();
    await settle();
    assert.deepEqual(socket.messages[0]!.content.repos[0]!['since'], { epoch: 'e1', offset: 1 }, 'resumed from its position');
    socket.onmessage?.({ data: frame('repo-update', { repo_id: REPO_A, commit_id: 'c2' }, { epoch: 'e1', offset: 2 }) });
    assert.deepEqual(seen, ['c1', 'c2']);
    client.close();
  });

  it('jwt-expired on SSE drops that token: the library is sent again only with a new one', async () => {
    const setupResult = setup();
    const { client, clock, http, errors } = setupResult;
    client.subscribe(REPO_A);
    client.subscribe(REPO_B);
    await refuseWebSockets(setupResult);
    await clock.advance(0);
    const first = http.last();
    const oldTokenB = first.url.searchParams.getAll('jwt_token')[1];
    first.openStream();
    first.push(sse(frame('jwt-expired', { repo_id: REPO_B })));
    await settle();
    assert.equal(errors.at(-1)?.kind, 'token-rejected');
    await clock.fireNext();
    await clock.advance(0);
    const second = http.last();
    assert.ok(first.aborted);
    assert.deepEqual(second.url.searchParams.getAll('repo_id'), [REPO_A, REPO_B]);
    assert.notEqual(second.url.searchParams.getAll('jwt_token')[1], oldTokenB);
    client.close();
  });
});

describe('NotificationClient: no fallback while the server does not answer', () => {
  it('a server that is down (its ping fails too) keeps the client on WebSocket, however often it fails', async () => {
    const { client, clock, fake, http } = setup();
    http.pingStatus = null;
    client.subscribe(REPO_A);
    for (let i = 0; i < 10; i++) {
      fake.last().drop(1006);
      await settle(); // the ping's answer
      await clock.fireNext();
      assert.equal(client.transport, 'websocket');
    }
    assert.equal(fake.sockets.length, 11);
    assert.equal(http.pings.length, 5, 'asked after every second failure');
    assert.deepEqual(http.requests, []);
    http.pingStatus = 200;
    for (let i = 0; i < ATTEMPTS_BEFORE_FALLBACK; i++) {
      fake.last().drop(1006);
      await settle();
      await clock.fireNext();
    }
    assert.equal(client.transport, 'sse', 'the server answers, the WebSocket does not: fall back');
    client.close();
  });

  it('the network comes back between a failure and the ping: the WebSocket is tried once more and opens, no fallback', async () => {
    const { client, clock, fake, http } = setup();
    http.pingStatus = null;
    client.subscribe(REPO_A);
    fake.last().drop(1006);
    await clock.fireNext();
    // The second attempt failed while the network was down; it is back by the time the ping goes out.
    http.pingStatus = 200;
    fake.last().drop(1006);
    await settle(); // the ping's answer
    assert.equal(http.pings.length, 1);
    await clock.fireNext();
    assert.equal(client.transport, 'websocket', 'the server answered, but the WebSocket has not failed since');
    assert.equal(fake.sockets.length, 3);
    fake.last().accept();
    await settle();
    assert.equal(client.state, 'open');
    assert.deepEqual(fake.last().subscribed.map((repo) => repo.id), [REPO_A]);
    assert.deepEqual(http.requests, [], 'no SSE request');
    client.close();
  });

  it('the network goes again during the attempt made after the ping: the server does not answer, no fallback', async () => {
    const { client, clock, fake, http } = setup();
    client.subscribe(REPO_A);
    for (let i = 0; i < 2; i++) {
      fake.last().drop(1006);
      await settle();
      await clock.fireNext();
    }
    assert.equal(http.pings.length, 1, 'the server answered after two failures');
    assert.equal(client.transport, 'websocket');
    http.pingStatus = null;
    fake.last().drop(1006);
    await settle();
    await clock.fireNext();
    assert.equal(http.pings.length, 2, 'asked again after the attempt that followed the answer');
    assert.equal(client.transport, 'websocket');
    assert.deepEqual(http.requests, []);
    client.close();
  });
});

describe('NotificationClient: positions over WebSocket', () => {
  it('offers the positions subprotocol, resumes with since after a reconnect, drops replayed duplicates and reports resync', async () => {
    const clock = new FakeClock();
    const protocols: unknown[] = [];
    const fake = fakeWebSocket();
    const Recording = class extends fake.WebSocket {
      constructor(url: string, offered?: string | string[]) {
        super(url);
        protocols.push(offered);
      }
    };
    const client = new NotificationClient({
      url: 'ws://127.0.0.1:1/notification',
      WebSocket: Recording,
      tokenProvider: async (repoId) => signToken({ repo_id: repoId, username: 'u', exp: Math.floor(clock.now() / 1000) + 3600 }, KEY),
      clock,
      random: () => 0.5,
    });
    const seen: string[] = [];
    const resyncs: Resync[] = [];
    client.on('repoUpdate', (e) => seen.push(e.commit_id));
    client.on('resync', (e) => resyncs.push(e));
    client.subscribe(REPO_A);
    fake.last().accept();
    await settle();
    assert.deepEqual(protocols, [['notification.positions.v1']]);
    assert.equal(fake.last().messages[0]!.content.repos[0]!['since'], undefined, 'no position yet: the stock subscribe');
    fake.last().deliver('subscribed', { repo_id: REPO_A, position: { epoch: 'e1', offset: 0 }, });
    fake.last().onmessage?.({ data: frame('repo-update', { repo_id: REPO_A, commit_id: 'c1' }, { epoch: 'e1', offset: 1 }) });
    fake.last().drop(1001);
    await clock.fireNext();
    fake.last().accept();
    await settle();
    assert.deepEqual(fake.last().messages[0]!.content.repos[0]!['since'], { epoch: 'e1', offset: 1 });
    fake.last().onmessage?.({ data: frame('repo-update', { repo_id: REPO_A, commit_id: 'c1' }, { epoch: 'e1', offset: 1 }) });
    fake.last().onmessage?.({ data: frame('repo-update', { repo_id: REPO_A, commit_id: 'c2' }, { epoch: 'e1', offset: 2 }) });
    fake.last().deliver('resync', { repo_id: REPO_A, reason: 'epoch-changed', position: { epoch: 'e2', offset: 40 } });
    fake.last().onmessage?.({ data: frame('repo-update', { repo_id: REPO_A, commit_id: 'c41' }, { epoch: 'e2', offset: 41 }) });
    assert.deepEqual(seen, ['c1', 'c2', 'c41']);
    assert.deepEqual(resyncs, [{ repo_id: REPO_A, reason: 'epoch-changed', position: { epoch: 'e2', offset: 40 } }]);
    assert.deepEqual(client.positionOf(REPO_A), { epoch: 'e2', offset: 41 });
    client.close();
  });
});
