/**
 * The client library against the real server when the WebSocket does not get through: behind a
 * proxy that refuses upgrades it falls back to SSE, and to long polling when streams are refused
 * too; across dropped connections and a server restart it resumes from its last position, and
 * no event is lost or delivered twice.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import WebSocket from 'ws';
import { NotificationClient, type NotificationClientError, type Resync } from '#client';
import { isConnectedLine } from '../support/cluster.js';
import { requireServiceUrl } from '../support/env.js';
import { ServerProcess, subscriberToken } from '../support/server-process.js';
import { SwitchableProxy } from '../support/switchable-proxy.js';

const REPO = '4b1e0c1a-7777-4b4b-9c9c-000000000001';
const redisUrl = requireServiceUrl('TEST_REDIS_URL');
const USER = 'alice@example.com';

const clients: NotificationClient[] = [];
const servers: ServerProcess[] = [];
const proxies: SwitchableProxy[] = [];

function startClient(url: string, options: { idleTimeoutMs?: number; upgradeAfterMs?: number } = {}) {
  const commits: string[] = [];
  const transports: string[] = [];
  const errors: NotificationClientError[] = [];
  const resyncs: Resync[] = [];
  const client = new NotificationClient({
    url,
    WebSocket,
    backoff: { initialMs: 50, maxMs: 400 },
    tokenProvider: async (repoId) => subscriberToken(repoId, USER),
    ...options,
  });
  client.on('repoUpdate', (e) => {
    commits.push(e.commit_id);
    transports.push(client.transport);
  });
  client.on('error', (e) => errors.push(e));
  client.on('resync', (e) => resyncs.push(e));
  clients.push(client);
  client.subscribe(REPO);
  return { client, commits, transports, errors, resyncs };
}

async function waitUntil(done: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The client has a position for the library: it is subscribed, and anything published from now on must arrive. */
async function untilPositioned(client: NotificationClient): Promise<void> {
  await waitUntil(() => client.state === 'open' && client.positionOf(REPO) !== undefined, 'the client to be subscribed');
}

async function setup(): Promise<{ server: ServerProcess; proxy: SwitchableProxy }> {
  const server = await ServerProcess.start();
  servers.push(server);
  const proxy = await SwitchableProxy.start(server.port);
  proxies.push(proxy);
  return { server, proxy };
}

describe('NotificationClient when the WebSocket does not get through', () => {
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await Promise.all(proxies.splice(0).map((proxy) => proxy.stop()));
    await Promise.all(servers.splice(0).map((server) => server.stop()));
  });

  it('behind a proxy that refuses WebSocket upgrades it falls back to SSE, and resumes across a dropped stream with nothing lost or twice', async () => {
    const { server, proxy } = await setup();
    proxy.refuseUpgrades = true;
    const { client, commits, transports, errors } = startClient(`${proxy.url}/notification`);
    await untilPositioned(client);
    assert.equal(client.transport, 'sse');
    assert.ok(proxy.upgradesRefused >= 2, `${proxy.upgradesRefused} upgrades refused`);
    for (let i = 0; i < 3; i++) await server.publish('repo-update', { repo_id: REPO, commit_id: `before-${i}` });
    await waitUntil(() => commits.length === 3, 'the events before the drop');

    proxy.down = true;
    proxy.cutAll();
    await waitUntil(() => client.state === 'reconnecting', 'the client to notice');
    // Published while the client cannot reach the server: recovered from the history on reconnect.
    for (let i = 0; i < 3; i++) await server.publish('repo-update', { repo_id: REPO, commit_id: `during-${i}` });
    proxy.down = false;
    await waitUntil(() => commits.length === 6, 'the missed events');
    for (let i = 0; i < 3; i++) await server.publish('repo-update', { repo_id: REPO, commit_id: `after-${i}` });
    await waitUntil(() => commits.length === 9, 'the later events');

    assert.deepEqual(commits, ['before-0', 'before-1', 'before-2', 'during-0', 'during-1', 'during-2', 'after-0', 'after-1', 'after-2']);
    assert.ok(transports.every((t) => t !== 'websocket'), transports.join(' '));
    assert.ok(errors.every((e) => e.kind === 'connection'), errors.map((e) => e.message).join('; '));
  });

  it('when the proxy refuses streams too, long polling takes over and delivers every event once', async () => {
    const { server, proxy } = await setup();
    proxy.refuseUpgrades = true;
    proxy.refusedPaths.add('/notification/sse');
    const { client, commits } = startClient(`${proxy.url}/notification`);
    await untilPositioned(client);
    assert.equal(client.transport, 'long-poll');
    for (let i = 0; i < 5; i++) await server.publish('repo-update', { repo_id: REPO, commit_id: `poll-${i}` });
    await waitUntil(() => commits.length === 5, 'the events');
    // Events published between two polls are in the next answer, none twice.
    proxy.cutAll();
    for (let i = 5; i < 8; i++) await server.publish('repo-update', { repo_id: REPO, commit_id: `poll-${i}` });
    await waitUntil(() => commits.length === 8, 'the events after a cut poll');
    assert.deepEqual(commits, Array.from({ length: 8 }, (_, i) => `poll-${i}`));
  });

  it('once the proxy lets WebSockets through again, the client moves back from SSE to WebSocket without losing an event', async () => {
    const { server, proxy } = await setup();
    proxy.refuseUpgrades = true;
    const { client, commits, transports } = startClient(`${proxy.url}/notification`, { upgradeAfterMs: 300 });
    await untilPositioned(client);
    assert.equal(client.transport, 'sse');
    await server.publish('repo-update', { repo_id: REPO, commit_id: 'over-sse' });
    await waitUntil(() => commits.length === 1, 'the event over SSE');
    proxy.refuseUpgrades = false;
    await waitUntil(() => client.transport === 'websocket' && client.state === 'open', 'the move to WebSocket');
    for (let i = 0; i < 3; i++) await server.publish('repo-update', { repo_id: REPO, commit_id: `after-${i}` });
    await waitUntil(() => commits.length === 4, 'the events after the move');
    assert.deepEqual(commits, ['over-sse', 'after-0', 'after-1', 'after-2']);
    assert.equal(transports.at(-1), 'websocket');
  });

  it('behind a proxy that refuses upgrades and buffers answers, the SSE stream never gets through: long polling takes over', async () => {
    const { server, proxy } = await setup();
    proxy.refuseUpgrades = true;
    proxy.bufferAnswers = true;
    // The watchdog gives up on a stream that carries nothing for this long.
    const { client, commits } = startClient(`${proxy.url}/notification`, { idleTimeoutMs: 1500 });
    await untilPositioned(client);
    assert.equal(client.transport, 'long-poll');
    for (let i = 0; i < 3; i++) await server.publish('repo-update', { repo_id: REPO, commit_id: `buffered-${i}` });
    await waitUntil(() => commits.length === 3, 'the events');
    assert.deepEqual(commits, ['buffered-0', 'buffered-1', 'buffered-2']);
  });

  it('over WebSocket, a connection dropped mid-stream resumes from its position: the events published meanwhile arrive once', async () => {
    const { server, proxy } = await setup();
    const { client, commits, transports, resyncs } = startClient(`${proxy.url}/notification`);
    await untilPositioned(client);
    assert.equal(client.transport, 'websocket');
    await server.publish('repo-update', { repo_id: REPO, commit_id: 'one' });
    await waitUntil(() => commits.length === 1, 'the first event');
    proxy.down = true;
    proxy.cutAll();
    await waitUntil(() => client.state === 'reconnecting', 'the client to notice');
    await server.publish('repo-update', { repo_id: REPO, commit_id: 'two' });
    await server.publish('repo-update', { repo_id: REPO, commit_id: 'three' });
    proxy.down = false;
    await waitUntil(() => commits.length === 3, 'the missed events');
    await server.publish('repo-update', { repo_id: REPO, commit_id: 'four' });
    await waitUntil(() => commits.length === 4, 'the next event');
    assert.deepEqual(commits, ['one', 'two', 'three', 'four']);
    assert.deepEqual(resyncs, []);
    assert.deepEqual(new Set(transports), new Set(['websocket']), 'the server did not answer while the network was down: no fallback, WebSocket again');
  });

  it('after a server restart (a new history) it is told to resync, and gets every later event once', async () => {
    const first = await ServerProcess.start();
    servers.push(first);
    const { client, commits, resyncs } = startClient(first.wsUrl);
    await untilPositioned(client);
    await first.publish('repo-update', { repo_id: REPO, commit_id: 'before' });
    await waitUntil(() => commits.length === 1, 'the event before the restart');
    await first.stop();
    await waitUntil(() => client.state === 'reconnecting', 'the client to notice');
    const second = await ServerProcess.start({ env: { NOTIFICATION_SERVER_PORT: String(first.port) } });
    servers.push(second);
    await waitUntil(() => resyncs.length === 1, 'the resync');
    assert.equal(resyncs[0]!.reason, 'epoch-changed');
    await untilPositioned(client);
    for (let i = 0; i < 3; i++) await second.publish('repo-update', { repo_id: REPO, commit_id: `after-${i}` });
    await waitUntil(() => commits.length === 4, 'the events after the restart');
    assert.deepEqual(commits, ['before', 'after-0', 'after-1', 'after-2']);
  });

  it('with the Redis backplane a server restart loses nothing: events published while the client was away arrive once, in order', {
    skip: redisUrl === undefined ? 'TEST_REDIS_URL is not set (run `npm test`)' : false,
  }, async () => {
    // Each run its own library: the Redis history outlives the test.
    const repo = `restart-${Date.now()}`;
    const env = { REDIS_URL: redisUrl! };
    const first = await ServerProcess.start({ env });
    servers.push(first);
    await first.waitForLog(isConnectedLine, 15_000);
    const proxy = await SwitchableProxy.start(first.port);
    proxies.push(proxy);
    const commits: string[] = [];
    const resyncs: Resync[] = [];
    const client = new NotificationClient({ url: `${proxy.url}/notification`, WebSocket, backoff: { initialMs: 50, maxMs: 400 }, tokenProvider: async (id) => subscriberToken(id, USER) });
    clients.push(client);
    client.on('repoUpdate', (e) => commits.push(e.commit_id));
    client.on('resync', (e) => resyncs.push(e));
    client.subscribe(repo);
    await waitUntil(() => client.state === 'open' && client.positionOf(repo) !== undefined, 'the client to be subscribed');
    for (let i = 0; i < 3; i++) await first.publish('repo-update', { repo_id: repo, commit_id: `before-${i}` });
    await waitUntil(() => commits.length === 3, 'the events before the restart');

    // The client cannot reach the server while it restarts, and for a while after.
    proxy.down = true;
    proxy.cutAll();
    assert.deepEqual(await first.stop('SIGTERM'), { code: 0, signal: null });
    const second = await ServerProcess.start({ env: { ...env, NOTIFICATION_SERVER_PORT: String(first.port) } });
    servers.push(second);
    await second.waitForLog(isConnectedLine, 15_000);
    for (let i = 0; i < 3; i++) await second.publish('repo-update', { repo_id: repo, commit_id: `while-away-${i}` });
    proxy.down = false;
    await waitUntil(() => commits.length === 6, 'the events published while the client was away');
    for (let i = 0; i < 3; i++) await second.publish('repo-update', { repo_id: repo, commit_id: `after-${i}` });
    await waitUntil(() => commits.length === 9, 'the later events');
    assert.deepEqual(commits, [...['before', 'while-away', 'after'].flatMap((label) => [0, 1, 2].map((i) => `${label}-${i}`))]);
    assert.deepEqual(resyncs, [], 'the history outlived the restart: nothing to re-read');
  });
});
