import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Backoff,
  NotificationClient,
  tokenExpiry,
  type ConnectionState,
  type NotificationClientError,
  type NotificationClientOptions,
  type ServerMessage,
  webSocketTransport,
} from '#client';
import { signToken } from '../../src/auth/jwt.js';
import { cyclingRandom, fakeWebSocket, FakeClock, settle } from '../support/client-fakes.js';

const REPO_A = '7a1e0c1a-0000-4b4b-9c9c-00000000000a';
const REPO_B = '7a1e0c1a-0000-4b4b-9c9c-00000000000b';
const KEY = Buffer.from('unit-test-key');

/** A client over fake sockets and a fake clock; tokens live `tokenLifeMs` and are numbered. */
function setup(overrides: Partial<NotificationClientOptions> & { tokenLifeMs?: number; reportsPings?: boolean } = {}) {
  const clock = new FakeClock();
  const fake = fakeWebSocket({ reportsPings: overrides.reportsPings ?? false });
  const tokenCalls: string[] = [];
  const tokenLifeMs = overrides.tokenLifeMs ?? 3600_000;
  const tokenProvider = async (repoId: string): Promise<string> => {
    tokenCalls.push(repoId);
    const exp = Math.floor((clock.now() + tokenLifeMs) / 1000);
    return signToken({ repo_id: repoId, username: 'alice@example.com', exp, n: tokenCalls.length }, KEY);
  };
  const { tokenLifeMs: _life, reportsPings: _pings, ...options } = overrides;
  const client = new NotificationClient({
    url: 'ws://127.0.0.1:8083/notification',
    tokenProvider,
    transports: [webSocketTransport(fake.WebSocket)],
    clock,
    random: () => 0.5,
    ...options,
  });
  const states: ConnectionState[] = [];
  const errors: NotificationClientError[] = [];
  client.on('state', (state) => states.push(state));
  client.on('error', (error) => errors.push(error));
  return { client, clock, fake, tokenCalls, states, errors };
}

/** The token counter `n` the setup's provider put in a token. */
function tokenNumber(token: string | undefined): number {
  const payload = JSON.parse(Buffer.from(token!.split('.')[1]!, 'base64url').toString()) as { n: number };
  return payload.n;
}

describe('NotificationClient: subscribing', () => {
  it('sends the stock subscribe message with the provider token once the connection is open', async () => {
    const { client, fake, tokenCalls } = setup();
    client.subscribe(REPO_A);
    await settle();
    assert.equal(fake.sockets.length, 1);
    assert.equal(fake.last().url, 'ws://127.0.0.1:8083/notification');
    assert.deepEqual(fake.last().sent, [], 'nothing is sent before the connection opens');
    fake.last().accept();
    await settle();
    assert.deepEqual(tokenCalls, [REPO_A]);
    const [frame] = fake.last().sent;
    const token = fake.last().subscribed[0]!.token!;
    assert.equal(frame, JSON.stringify({ type: 'subscribe', content: { repos: [{ id: REPO_A, jwt_token: token }] } }));
    assert.equal(tokenNumber(token), 1);
    client.close();
  });

  it('subscribing the same library twice sends one subscribe', async () => {
    const { client, fake } = setup();
    fake.last().accept();
    client.subscribe(REPO_A);
    client.subscribe(REPO_A);
    await settle();
    assert.deepEqual(fake.last().subscribed.map((s) => s.id), [REPO_A]);
    assert.deepEqual(client.subscriptions, [REPO_A]);
    client.close();
  });

  it('unsubscribe sends the stock unsubscribe message, and the library is not resubscribed after a reconnect', async () => {
    const { client, clock, fake } = setup();
    client.subscribe(REPO_A);
    client.subscribe(REPO_B);
    fake.last().accept();
    await settle();
    client.unsubscribe(REPO_A);
    assert.equal(fake.last().sent.at(-1), JSON.stringify({ type: 'unsubscribe', content: { repos: [{ id: REPO_A }] } }));
    fake.last().drop();
    await clock.fireNext();
    fake.last().accept();
    await settle();
    assert.deepEqual(fake.last().subscribed.map((s) => s.id), [REPO_B]);
    client.close();
  });

  it('takes http(s) URLs as seahub hands them out, and refuses other schemes', () => {
    const { client, fake } = setup({ url: 'https://cloud.example.com/notification' });
    assert.equal(fake.last().url, 'wss://cloud.example.com/notification');
    client.close();
    assert.throws(() => setup({ url: 'ftp://cloud.example.com/' }), /ws:, wss:, http: or https:/);
    assert.throws(() => setup({ url: 'not a url' }), /absolute/);
  });

  it('in Node 20 without a WebSocket option it uses SSE over fetch, and without fetch either it says what to pass', { skip: 'WebSocket' in globalThis ? 'this Node has a global WebSocket' : false }, () => {
    const client = new NotificationClient({ url: 'http://127.0.0.1:1/', tokenProvider: async () => 't', clock: new FakeClock() });
    assert.equal(client.transport, 'sse');
    client.close();
    const { fetch } = globalThis;
    try {
      Reflect.deleteProperty(globalThis, 'fetch');
      assert.throws(
        () => new NotificationClient({ url: 'ws://127.0.0.1:1/', tokenProvider: async () => 't' }),
        /pass one, e\.g\. `WebSocket` from the ws package/,
      );
    } finally {
      globalThis.fetch = fetch;
    }
  });
});

describe('NotificationClient: events', () => {
  it('dispatches each library event type to its typed event, and every message to "event"', async () => {
    const { client, fake, errors } = setup();
    fake.last().accept();
    const seen: string[] = [];
    const all: ServerMessage[] = [];
    client.on('repoUpdate', (e) => seen.push(`repo ${e.repo_id} ${e.commit_id}`));
    client.on('fileLockChanged', (e) => seen.push(`lock ${e.path} ${e.change_event} ${e.lock_user} ${String(e['expire'])}`));
    client.on('folderPermChanged', (e) => seen.push(`perm ${e.path} ${e.type} ${e.change_event} ${e.user} ${e.group} ${e.perm}`));
    client.on('commentUpdate', (e) => seen.push(`comment ${e.file_path} ${e.file_uuid} ${e.type}`));
    client.on('event', (message) => all.push(message));

    fake.last().deliver('repo-update', { repo_id: REPO_A, commit_id: 'c1' });
    fake.last().deliver('file-lock-changed', { repo_id: REPO_A, path: '/a.txt', change_event: 'locked', lock_user: 'bob@example.com', expire: 7 });
    fake.last().deliver('folder-perm-changed', { repo_id: REPO_A, path: '/d', type: 'group', change_event: 'add', user: '', group: 3, perm: 'rw' });
    fake.last().deliver('comment-update', { repo_id: REPO_A, type: 'comment', file_uuid: 'u1', file_path: '/a.txt' });
    fake.last().deliver('library-renamed', { repo_id: REPO_A, name: 'new' });

    assert.deepEqual(seen, [
      `repo ${REPO_A} c1`,
      'lock /a.txt locked bob@example.com 7',
      'perm /d group add  3 rw',
      'comment /a.txt u1 comment',
    ]);
    assert.deepEqual(
      all.map((m) => m.type),
      ['repo-update', 'file-lock-changed', 'folder-perm-changed', 'comment-update', 'library-renamed'],
    );
    assert.deepEqual(all[4]!.content, { repo_id: REPO_A, name: 'new' });
    assert.deepEqual(errors, []);
    client.close();
  });

  it('a message that does not match its type is reported, not dispatched with wrong types', async () => {
    const { client, fake, errors } = setup();
    fake.last().accept();
    let dispatched = 0;
    client.on('folderPermChanged', () => dispatched++);
    client.on('fileLockChanged', () => dispatched++);
    fake.last().deliver('folder-perm-changed', { repo_id: REPO_A, path: '/d', type: 'user', change_event: 'add', user: 'u', perm: 'r' });
    fake.last().deliver('file-lock-changed', { repo_id: REPO_A, path: '/a', change_event: 'stolen', lock_user: 'x' });
    fake.last().deliverRaw('{not json');
    fake.last().deliverRaw('[1,2]');
    assert.equal(dispatched, 0);
    assert.deepEqual(
      errors.map((e) => `${e.kind}: ${e.message}`),
      [
        'bad-message: ignored a server message: folder-perm-changed without an integer group',
        'bad-message: ignored a server message: file-lock-changed without change_event one of locked, unlocked',
        'bad-message: ignored a server message: not JSON',
        'bad-message: ignored a server message: not a {"type": string, "content": object} message',
      ],
    );
    client.close();
  });

  it('the server\'s error message is reported with its text', async () => {
    const { client, fake, errors } = setup();
    fake.last().accept();
    fake.last().deliver('error', { message: 'unknown message type "x"' });
    assert.deepEqual(errors.map((e) => `${e.kind}: ${e.message}`), ['server-error: the server answered: unknown message type "x"']);
    client.close();
  });

  it('a listener that throws does not stop the others or the connection', async () => {
    const { client, fake } = setup();
    fake.last().accept();
    const thrown: unknown[] = [];
    const onUncaught = (error: unknown) => thrown.push(error);
    process.prependListener('uncaughtException', onUncaught);
    const originalListeners = process.listeners('uncaughtException').filter((l) => l !== onUncaught);
    for (const listener of originalListeners) process.removeListener('uncaughtException', listener);
    try {
      const got: string[] = [];
      client.on('repoUpdate', () => {
        throw new Error('listener bug');
      });
      client.on('repoUpdate', (e) => got.push(e.commit_id));
      fake.last().deliver('repo-update', { repo_id: REPO_A, commit_id: 'c1' });
      fake.last().deliver('repo-update', { repo_id: REPO_A, commit_id: 'c2' });
      await settle();
      assert.deepEqual(got, ['c1', 'c2']);
      assert.equal(thrown.length, 2);
      assert.match(String(thrown[0]), /listener bug/);
      assert.equal(client.state, 'open');
    } finally {
      process.removeListener('uncaughtException', onUncaught);
      for (const listener of originalListeners) process.on('uncaughtException', listener);
    }
    client.close();
  });

  it('off() and the function on() returns remove a listener', async () => {
    const { client, fake } = setup();
    fake.last().accept();
    const got: string[] = [];
    const listener = (e: { commit_id: string }) => got.push(`a ${e.commit_id}`);
    client.on('repoUpdate', listener);
    const remove = client.on('repoUpdate', (e) => got.push(`b ${e.commit_id}`));
    fake.last().deliver('repo-update', { repo_id: REPO_A, commit_id: '1' });
    client.off('repoUpdate', listener);
    remove();
    fake.last().deliver('repo-update', { repo_id: REPO_A, commit_id: '2' });
    assert.deepEqual(got, ['a 1', 'b 1']);
    client.close();
  });
});

describe('NotificationClient: reconnecting', () => {
  it('goes connecting → open → reconnecting → open → closed', async () => {
    const { client, clock, fake, states } = setup();
    assert.equal(client.state, 'connecting');
    fake.last().accept();
    fake.last().drop(1001, 'server shutting down');
    await clock.fireNext();
    assert.equal(client.state, 'reconnecting', 'still reconnecting while the new attempt is under way');
    fake.last().accept();
    client.close();
    assert.deepEqual(states, ['open', 'reconnecting', 'open', 'closed']);
    assert.deepEqual(fake.last().closedByClient, { code: 1000, reason: 'client closed' });
  });

  it('a first connection that cannot be opened goes to reconnecting', async () => {
    const { client, clock, fake, states, errors } = setup();
    fake.last().drop();
    assert.equal(client.state, 'reconnecting');
    assert.match(errors[0]!.message, /^cannot connect \(websocket: 1006\): retrying in \d+ ms$/);
    await clock.fireNext();
    fake.last().accept();
    assert.deepEqual(states, ['reconnecting', 'open']);
    client.close();
  });

  it('backs off exponentially with full jitter up to the cap, and keeps trying after 50 failures in a row', async () => {
    const { client, clock, fake } = setup({ backoff: { initialMs: 1000, maxMs: 30_000 }, random: () => 0.999 });
    const delays: number[] = [];
    for (let i = 0; i < 50; i++) {
      fake.last().drop();
      delays.push(await clock.fireNext());
    }
    assert.equal(fake.sockets.length, 51, 'a new attempt after every failure');
    assert.deepEqual(delays.slice(0, 7), [999, 1998, 3996, 7992, 15984, 29970, 29970]);
    assert.ok(delays.every((d) => d <= 30_000));
    assert.equal(client.state, 'reconnecting');
    fake.last().accept();
    assert.equal(client.state, 'open');
    client.close();
  });

  it('each delay is drawn uniformly under its ceiling (full jitter)', async () => {
    const draws = [0.1, 0.9, 0.0, 0.5, 0.25, 0.75, 0.6, 0.3];
    const { client, clock, fake } = setup({ backoff: { initialMs: 1000, maxMs: 8000 }, random: cyclingRandom(draws) });
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      fake.last().drop();
      delays.push(await clock.fireNext());
    }
    const ceilings = [1000, 2000, 4000, 8000, 8000, 8000, 8000, 8000];
    assert.deepEqual(delays, draws.map((r, i) => Math.floor(r * ceilings[i]!)));
    client.close();
  });

  it('the backoff starts over after a connection stayed open for stableAfterMs, not after a short one', async () => {
    const { client, clock, fake } = setup({ backoff: { initialMs: 1000, maxMs: 30_000 }, stableAfterMs: 10_000, random: () => 0.999 });
    for (let i = 0; i < 4; i++) {
      fake.last().drop();
      await clock.fireNext();
    }
    fake.last().accept();
    await clock.advance(9_000);
    fake.last().drop();
    assert.deepEqual(clock.pending(), [15_984], 'a connection that lasted 9 s does not reset the backoff');
    await clock.fireNext();
    fake.last().accept();
    await clock.advance(10_000);
    fake.last().drop();
    assert.deepEqual(clock.pending(), [999], 'a connection that lasted 10 s does');
    client.close();
  });

  it('resubscribes every library after reconnecting, reusing tokens that are far from expiry', async () => {
    const { client, clock, fake, tokenCalls } = setup();
    client.subscribe(REPO_A);
    client.subscribe(REPO_B);
    fake.last().accept();
    await settle();
    const first = fake.last().subscribed;
    fake.last().drop(1001, 'server shutting down');
    await clock.fireNext();
    assert.deepEqual(fake.last().sent, []);
    fake.last().accept();
    await settle();
    assert.deepEqual(fake.last().subscribed, first);
    assert.deepEqual(tokenCalls, [REPO_A, REPO_B], 'no new token was needed');
    client.close();
  });

  it('fetches new tokens when reconnecting close to their expiry', async () => {
    const { client, clock, fake, tokenCalls } = setup({ tokenLifeMs: 300_000, tokenRefreshMarginMs: 60_000 });
    client.subscribe(REPO_A);
    fake.last().accept();
    await settle();
    await clock.advance(239_800);
    fake.last().drop();
    await clock.fireNext();
    fake.last().accept();
    await settle();
    assert.deepEqual(tokenCalls, [REPO_A, REPO_A]);
    assert.equal(tokenNumber(fake.last().subscribed[0]!.token), 2);
    client.close();
  });

  it('a token that arrives after its connection was lost is not sent anywhere, and the new connection subscribes once', async () => {
    const clock = new FakeClock();
    const fake = fakeWebSocket();
    const pending: Array<(token: string) => void> = [];
    const client = new NotificationClient({
      url: 'ws://127.0.0.1:1/',
      WebSocket: fake.WebSocket,
      clock,
      random: () => 0.5,
      tokenProvider: () => new Promise<string>((resolve) => pending.push(resolve)),
    });
    client.subscribe(REPO_A);
    fake.last().accept();
    const firstSocket = fake.last();
    firstSocket.drop();
    pending[0]!('late-token');
    await settle();
    assert.deepEqual(firstSocket.sent, []);
    await clock.fireNext();
    fake.last().accept();
    pending[1]!('fresh-token');
    await settle();
    assert.deepEqual(fake.last().subscribed, [{ id: REPO_A, token: 'fresh-token' }]);
    client.close();
  });

  it('close() stops every timer and attempt', async () => {
    const { client, clock, fake } = setup({ tokenLifeMs: 600_000 });
    client.subscribe(REPO_A);
    fake.last().accept();
    await settle();
    assert.ok(clock.pending().length > 0, 'a token refresh and the stability timer are pending');
    client.close();
    assert.deepEqual(clock.pending(), []);
    await clock.advance(3600_000);
    assert.equal(fake.sockets.length, 1);
    assert.equal(client.state, 'closed');
  });

  it('close() from a state listener leaves no timer behind', async () => {
    const { client, clock, fake } = setup();
    client.subscribe(REPO_A);
    client.on('state', (state) => {
      if (state === 'open' || state === 'reconnecting') client.close();
    });
    fake.last().accept();
    await settle();
    assert.equal(client.state, 'closed');
    assert.deepEqual(clock.pending(), []);
    assert.deepEqual(fake.last().sent, []);
  });

  it('close() while waiting to reconnect cancels the attempt', async () => {
    const { client, clock, fake } = setup();
    fake.last().drop();
    client.close();
    assert.deepEqual(clock.pending(), []);
    assert.equal(fake.sockets.length, 1);
  });
});

describe('NotificationClient: tokens', () => {
  it('on jwt-expired it fetches a new token and subscribes that library again', async () => {
    const { client, clock, fake, tokenCalls, errors } = setup();
    client.subscribe(REPO_A);
    client.subscribe(REPO_B);
    fake.last().accept();
    await settle();
    fake.last().deliver('jwt-expired', { repo_id: REPO_A });
    assert.equal(errors.at(-1)!.kind, 'token-rejected');
    assert.equal(errors.at(-1)!.repoId, REPO_A);
    await clock.advance(1000);
    assert.deepEqual(tokenCalls, [REPO_A, REPO_B, REPO_A]);
    const subscribed = fake.last().subscribed;
    assert.deepEqual(subscribed.map((s) => s.id), [REPO_A, REPO_B, REPO_A]);
    assert.equal(tokenNumber(subscribed[2]!.token), 3);
    client.close();
  });

  it('a provider that keeps returning rejected tokens is asked with growing delays, never in a hot loop', async () => {
    const { client, clock, fake, tokenCalls } = setup({ backoff: { initialMs: 1000, maxMs: 30_000 }, random: () => 0.999 });
    client.subscribe(REPO_A);
    fake.last().accept();
    await clock.advance(10_000); // past the connection's stability timer: only token timers remain
    const gaps: number[] = [];
    for (let i = 0; i < 10; i++) {
      fake.last().deliver('jwt-expired', { repo_id: REPO_A });
      const calls = tokenCalls.length;
      gaps.push(await clock.fireNext());
      assert.equal(tokenCalls.length, calls + 1);
    }
    assert.deepEqual(gaps.slice(0, 6), [999, 1998, 3996, 7992, 15984, 29970]);
    assert.ok(gaps.every((gap) => gap <= 30_000));
    assert.equal(fake.last().subscribed.length, 11, 'still trying');
    client.close();
  });

  it('a subscription that held for a while before jwt-expired refetches at once, without the accumulated backoff', async () => {
    const { client, clock, fake } = setup({ random: () => 0.999, stableAfterMs: 10_000 });
    client.subscribe(REPO_A);
    fake.last().accept();
    await clock.advance(10_000); // past the connection's stability timer: only token timers remain
    const gaps: number[] = [];
    for (let i = 0; i < 5; i++) {
      fake.last().deliver('jwt-expired', { repo_id: REPO_A });
      gaps.push(await clock.fireNext());
    }
    assert.deepEqual(gaps, [999, 1998, 3996, 7992, 15984]);
    await clock.advance(10_000);
    fake.last().deliver('jwt-expired', { repo_id: REPO_A });
    assert.equal(clock.pending()[0], 999);
    client.close();
  });

  it('jwt-expired for a library it does not follow is ignored', async () => {
    const { client, clock, fake, tokenCalls, errors } = setup();
    fake.last().accept();
    fake.last().deliver('jwt-expired', { repo_id: REPO_B });
    await clock.advance(60_000);
    assert.deepEqual(tokenCalls, []);
    assert.deepEqual(errors, []);
    client.close();
  });

  it('refreshes a token before its exp and resubscribes on the same connection', async () => {
    const { client, clock, fake, tokenCalls } = setup({ tokenLifeMs: 600_000, tokenRefreshMarginMs: 60_000 });
    client.subscribe(REPO_A);
    fake.last().accept();
    await settle();
    await clock.advance(539_000);
    assert.deepEqual(tokenCalls, [REPO_A], 'not yet');
    await clock.advance(1_000);
    assert.deepEqual(tokenCalls, [REPO_A, REPO_A], '60 s before exp');
    const subscribed = fake.last().subscribed;
    assert.equal(subscribed.length, 2);
    assert.equal(tokenNumber(subscribed[1]!.token), 2);
    assert.equal(fake.sockets.length, 1);
    await clock.advance(540_000);
    assert.equal(tokenCalls.length, 3, 'and again before the new token expires');
    client.close();
  });

  it('a short-lived token is refreshed at half its life, not hot-looped by the margin', async () => {
    const { client, clock, fake, tokenCalls } = setup({ tokenLifeMs: 4_000, tokenRefreshMarginMs: 60_000 });
    client.subscribe(REPO_A);
    fake.last().accept();
    await settle();
    await clock.advance(1_999);
    assert.equal(tokenCalls.length, 1);
    await clock.advance(1);
    assert.equal(tokenCalls.length, 2);
    client.close();
  });

  it('a provider that returns the same token again is not asked again before exp', async () => {
    const clock = new FakeClock();
    const fake = fakeWebSocket();
    const token = signToken({ repo_id: REPO_A, username: 'u', exp: Math.floor(clock.now() / 1000) + 600 }, KEY);
    let calls = 0;
    const client = new NotificationClient({
      url: 'ws://127.0.0.1:1/',
      WebSocket: fake.WebSocket,
      clock,
      tokenProvider: async () => {
        calls++;
        return token;
      },
    });
    client.subscribe(REPO_A);
    fake.last().accept();
    await settle();
    await clock.advance(599_000);
    assert.equal(calls, 2, 'one refresh attempt, then it waits for the server to expire the token');
    client.close();
  });

  it('a failing token provider is reported and retried with backoff', async () => {
    let failures = 2;
    const clock = new FakeClock();
    const fake = fakeWebSocket();
    const errors: NotificationClientError[] = [];
    const client = new NotificationClient({
      url: 'ws://127.0.0.1:1/',
      WebSocket: fake.WebSocket,
      clock,
      random: () => 0.999,
      tokenProvider: async (repoId) => {
        if (failures-- > 0) throw new Error('seahub answered 502');
        return `token-for-${repoId}`;
      },
    });
    client.on('error', (error) => errors.push(error));
    client.subscribe(REPO_A);
    fake.last().accept();
    await settle();
    assert.deepEqual(fake.last().sent, []);
    assert.equal(await clock.fireNext(), 999);
    assert.equal(await clock.fireNext(), 1998);
    assert.deepEqual(fake.last().subscribed, [{ id: REPO_A, token: `token-for-${REPO_A}` }]);
    assert.deepEqual(errors.map((e) => e.kind), ['token-provider', 'token-provider']);
    assert.match(errors[0]!.message, /seahub answered 502/);
    client.close();
  });

  it('tokenExpiry reads exp without verifying, and gives undefined for anything else', () => {
    assert.equal(tokenExpiry(signToken({ exp: 1_900_000_000 }, KEY)), 1_900_000_000_000);
    assert.equal(tokenExpiry(signToken({ repo_id: 'r' }, KEY)), undefined);
    assert.equal(tokenExpiry('not-a-jwt'), undefined);
    assert.equal(tokenExpiry('a.!!!.c'), undefined);
    assert.equal(tokenExpiry(`a.${Buffer.from('{"exp":"soon"}').toString('base64url')}.c`), undefined);
  });
});

describe('NotificationClient: dead connections', () => {
  it('with ws (pings reported) a connection silent past idleTimeoutMs is dropped and reopened', async () => {
    const { client, clock, fake, errors } = setup({ reportsPings: true, idleTimeoutMs: 60_000 });
    fake.last().accept();
    for (let i = 0; i < 5; i++) {
      await clock.advance(20_000);
      fake.last().ping();
    }
    assert.equal(fake.sockets.length, 1, 'pings every 20 s keep it');
    await clock.advance(60_000);
    assert.deepEqual(fake.sockets[0]!.closedByClient, { code: 4001, reason: 'no traffic from the server' });
    assert.equal(client.state, 'reconnecting');
    assert.match(errors.at(-1)!.message, /no traffic from the server for 60000 ms/);
    await clock.fireNext();
    assert.equal(fake.sockets.length, 2);
    client.close();
  });

  it('in a browser (pings not reported) silence alone never drops the connection', async () => {
    const { client, clock, fake } = setup({ reportsPings: false });
    fake.last().accept();
    await clock.advance(3600_000);
    assert.equal(client.state, 'open');
    assert.equal(fake.last().closedByClient, undefined);
    client.close();
  });
});

describe('Backoff', () => {
  it('refuses a ceiling below the first delay', () => {
    assert.throws(() => new Backoff({ initialMs: 1000, maxMs: 10 }), /0 < initialMs <= maxMs/);
    assert.throws(() => new Backoff({ initialMs: 0, maxMs: 10 }), /0 < initialMs <= maxMs/);
  });

  it('never overflows after very many attempts', () => {
    const backoff = new Backoff({ initialMs: 1, maxMs: 5 }, () => 0.999);
    for (let i = 0; i < 5000; i++) backoff.next();
    assert.equal(backoff.next(), 4);
    backoff.reset();
    assert.equal(backoff.next(), 0);
  });
});
