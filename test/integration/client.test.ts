import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import WebSocket from 'ws';
import { NotificationClient, type NotificationClientError, type NotificationClientOptions, type ServerMessage } from '#client';
import { createServer } from 'node:http';
import { freePort, ServerProcess, subscriberToken } from '../support/server-process.js';

const REPO = '8c1e0c1a-3333-4b4b-9c9c-000000000001';
const USER = 'alice@example.com';

/** The client under test, recording what it sees. */
function startClient(url: string, overrides: Partial<NotificationClientOptions> = {}) {
  const tokenCalls: string[] = [];
  const messages: ServerMessage[] = [];
  const errors: NotificationClientError[] = [];
  const client = new NotificationClient({
    url,
    WebSocket,
    backoff: { initialMs: 100, maxMs: 1000 },
    tokenProvider: async (repoId) => {
      tokenCalls.push(repoId);
      return subscriberToken(repoId, USER);
    },
    ...overrides,
  });
  client.on('event', (message) => messages.push(message));
  client.on('error', (error) => errors.push(error));
  clients.push(client);
  return { client, tokenCalls, messages, errors };
}

const clients: NotificationClient[] = [];
const servers: ServerProcess[] = [];

async function startServer(env: Record<string, string> = {}): Promise<ServerProcess> {
  const server = await ServerProcess.start({ env });
  servers.push(server);
  return server;
}

async function waitUntil(done: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const commits = (messages: ServerMessage[]) =>
  messages.filter((m) => m.type === 'repo-update').map((m) => String(m.content['commit_id']));

/**
 * The server does not acknowledge a subscribe: publish probes until one arrives, so that every
 * event published afterwards must arrive too.
 */
async function untilSubscribed(server: ServerProcess, messages: ServerMessage[], label: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (let i = 0; ; i++) {
    assert.equal(await server.publish('repo-update', { repo_id: REPO, commit_id: `${label}-probe-${i}` }), 200);
    const until = Date.now() + 200;
    while (Date.now() < until) {
      if (commits(messages).some((c) => c.startsWith(`${label}-probe-`))) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (Date.now() > deadline) throw new Error(`the client did not subscribe (${label})`);
  }
}

describe('NotificationClient against the real server', () => {
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await Promise.all(servers.splice(0).map((server) => server.stop()));
  });

  it('receives each event type as its typed event, through the /notification path seahub hands out', async () => {
    const server = await startServer();
    const { client, messages, errors } = startClient(`${server.url}/notification`);
    const typed: string[] = [];
    client.on('repoUpdate', (e) => typed.push(`repoUpdate ${e.commit_id}`));
    client.on('fileLockChanged', (e) => typed.push(`fileLockChanged ${e.path} ${e.change_event} ${e.lock_user} expire=${String(e['expire'])}`));
    client.on('folderPermChanged', (e) => typed.push(`folderPermChanged ${e.path} ${e.user} ${e.group} ${e.perm}`));
    client.on('commentUpdate', (e) => typed.push(`commentUpdate ${e.file_path}`));
    client.subscribe(REPO);
    await untilSubscribed(server, messages, 'typed');
    typed.length = 0;

    await server.publish('file-lock-changed', { repo_id: REPO, path: '/a.md', change_event: 'locked', lock_user: 'bob@example.com', expire: 0 });
    await server.publish('folder-perm-changed', { repo_id: REPO, path: '/d', type: 'user', change_event: 'add', user: 'carol@example.com', group: -1, perm: 'r' });
    await server.publish('folder-perm-changed', { repo_id: REPO, path: '/d', type: 'user', change_event: 'add', user: USER, group: -1, perm: 'rw' });
    await server.publish('comment-update', { repo_id: REPO, type: 'comment', file_uuid: 'f-1', file_path: '/a.md' });
    await server.publish('repo-update', { repo_id: REPO, commit_id: 'last' });
    await waitUntil(() => typed.includes('repoUpdate last'), 'the last event');

    assert.deepEqual(typed, [
      'fileLockChanged /a.md locked bob@example.com expire=0',
      `folderPermChanged /d ${USER} -1 rw`,
      'commentUpdate /a.md',
      'repoUpdate last',
    ]);
    assert.equal(client.state, 'open');
    assert.deepEqual(errors, []);
  });

  it('survives a server restart: reconnects by itself, resubscribes, and gets every later event exactly once', async () => {
    const first = await startServer();
    const port = first.port;
    const { client, messages, tokenCalls, errors } = startClient(first.wsUrl);
    const states: string[] = [];
    client.on('state', (state) => states.push(state));
    client.subscribe(REPO);
    await untilSubscribed(first, messages, 'first');
    for (let i = 0; i < 5; i++) await first.publish('repo-update', { repo_id: REPO, commit_id: `before-${i}` });
    await waitUntil(() => commits(messages).includes('before-4'), 'the events before the restart');

    assert.deepEqual(await first.stop('SIGTERM'), { code: 0, signal: null });
    await waitUntil(() => client.state === 'reconnecting', 'the client to notice');
    // Let a few attempts fail against the closed port (over WebSocket, or over SSE when an
    // attempt during the drain found the WebSocket refused but the ping answered).
    const failedBefore = errors.length;
    await waitUntil(() => errors.length >= failedBefore + 2, 'failed attempts');

    const second = await startServer({ NOTIFICATION_SERVER_PORT: String(port) });
    assert.equal(second.port, port);
    await waitUntil(() => client.state === 'open', 'the client to reconnect');
    await untilSubscribed(second, messages, 'second');
    for (let i = 0; i < 5; i++) await second.publish('repo-update', { repo_id: REPO, commit_id: `after-${i}` });
    await waitUntil(() => commits(messages).includes('after-4'), 'the events after the restart');

    const received = commits(messages);
    assert.equal(new Set(received).size, received.length, `no event twice: ${received.join(' ')}`);
    assert.deepEqual(
      received.filter((c) => !c.includes('-probe-')),
      ['before-0', 'before-1', 'before-2', 'before-3', 'before-4', 'after-0', 'after-1', 'after-2', 'after-3', 'after-4'],
    );
    assert.deepEqual(states.slice(0, 2), ['open', 'reconnecting']);
    assert.equal(states.at(-1), 'open');
    assert.deepEqual(tokenCalls, [REPO], 'the token was still good: reused, not fetched again');
    assert.ok(errors.every((e) => e.kind === 'connection'), errors.map((e) => e.message).join('; '));
  });

  it('while WebSocket upgrades are refused (a proxy without WebSocket support) it keeps retrying, and connects once they work', async () => {
    const port = await freePort();
    const blocker = createServer((_request, response) => response.writeHead(404).end());
    let refused = 0;
    blocker.on('upgrade', (_request, socket) => {
      refused++;
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    const { client, messages, errors } = startClient(`ws://127.0.0.1:${port}/notification`);
    client.subscribe(REPO);
    try {
      await waitUntil(() => errors.length >= 4, 'several refused attempts');
    } finally {
      blocker.closeAllConnections();
      await new Promise((resolve) => blocker.close(resolve));
    }
    assert.ok(errors.every((e) => e.kind === 'connection' && e.message.startsWith('cannot connect')), errors.map((e) => e.message).join('; '));
    assert.ok(refused >= 4, `the blocker refused ${refused} upgrades`);
    assert.equal(client.state, 'reconnecting');

    const server = await startServer({ NOTIFICATION_SERVER_PORT: String(port) });
    await waitUntil(() => client.state === 'open', 'the client to connect');
    await untilSubscribed(server, messages, 'unblocked');
  });

  it('a token the server refuses (jwt-expired) is replaced by a new one from the provider', async () => {
    const server = await startServer();
    const tokens = [subscriberToken(REPO, USER, { key: 'not-the-server-key' }), subscriberToken(REPO, USER)];
    const { client, messages, tokenCalls, errors } = startClient(server.wsUrl, {
      tokenProvider: async (repoId) => {
        tokenCalls.push(repoId);
        return tokens.shift() ?? subscriberToken(repoId, USER);
      },
    });
    client.subscribe(REPO);
    await untilSubscribed(server, messages, 'rejected');
    assert.deepEqual(tokenCalls, [REPO, REPO]);
    assert.deepEqual(messages.filter((m) => m.type === 'jwt-expired').map((m) => m.content), [{ repo_id: REPO }]);
    assert.deepEqual(errors.map((e) => e.kind), ['token-rejected']);
  });

  it('refreshes a short-lived token before the server expires it: the subscription never lapses', async () => {
    const server = await startServer();
    const lifeSeconds = 4;
    const { client, messages, tokenCalls, errors } = startClient(server.wsUrl, {
      tokenProvider: async (repoId) => {
        tokenCalls.push(repoId);
        return subscriberToken(repoId, USER, { exp: Math.floor(Date.now() / 1000) + lifeSeconds });
      },
    });
    client.subscribe(REPO);
    await untilSubscribed(server, messages, 'refresh');
    const firstExp = Date.now() + lifeSeconds * 1000;
    await waitUntil(() => Date.now() > firstExp + 1000, 'past the first token\'s exp', 10_000);
    await server.publish('repo-update', { repo_id: REPO, commit_id: 'after-exp' });
    await waitUntil(() => commits(messages).includes('after-exp'), 'the event after the first exp');
    assert.ok(tokenCalls.length >= 2, `refreshed ${tokenCalls.length - 1} times`);
    assert.deepEqual(messages.filter((m) => m.type === 'jwt-expired'), [], 'the server never had to expire a token');
    assert.deepEqual(errors, []);
  });
});
