import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { CliProcess } from '../support/cli-process.js';
import { documentedProxies } from '../support/proxies.js';
import type { ProxyProcess } from '../support/proxy-process.js';
import { publisherToken, ServerProcess, subscriberToken, TEST_KEY } from '../support/server-process.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SseReader } from '../support/sse-reader.js';
import { TestClient } from '../support/test-client.js';

const REPO = '6f1e0c1a-3333-4b4b-9c9c-000000000001';
const PING_INTERVAL_S = 1;
const DEAD_PEER_S = 3;

const kinds = documentedProxies();

describe('behind the documented proxies (docs/deploy)', () => {
  let server: ServerProcess;
  const running = new Map<string, ProxyProcess>();

  before(async () => {
    server = await ServerProcess.start({
      env: { NOTIFICATION_SERVER_PING_INTERVAL: String(PING_INTERVAL_S), NOTIFICATION_SERVER_DEAD_PEER_TIMEOUT: String(DEAD_PEER_S) },
    });
    const installed = kinds.filter((kind) => kind.skip === false);
    const started = await Promise.allSettled(installed.map((kind) => kind.start(`127.0.0.1:${server.port}`)));
    for (const [index, result] of started.entries()) if (result.status === 'fulfilled') running.set(installed[index]!.name, result.value);
    const failure = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
  });
  after(async () => {
    await Promise.all([...running.values()].map((proxy) => proxy.stop()));
    await server?.stop();
  });

  for (const kind of kinds) {
    describe(`${kind.name} configured with docs/deploy/${kind.file}`, { skip: kind.skip }, () => {
      let proxy: ProxyProcess;
      before(() => {
        proxy = running.get(kind.name)!;
      });

      it('GET /notification/ping answers {"ret": "pong"} through the proxy', async () => {
        const response = await fetch(`${proxy.url}/notification/ping`);
        assert.equal(response.status, 200, proxy.log());
        assert.equal(await response.text(), '{"ret": "pong"}\n');
      });

      it('a desktop client subscribes at /notification, gets notification.seafile.com back and receives published events byte for byte', async () => {
        const client = await TestClient.connect(`${proxy.wsUrl}/notification`, { protocols: ['notification.seafile.com'] });
        assert.equal(client.socket.protocol, 'notification.seafile.com');
        client.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, 'alice@example.com') }]);
        await client.roundTrip();
        // Publishers reach the server directly, not through the public proxy.
        const body = `{"type":"file-lock-changed","content":{"repo_id":"${REPO}","path":"/a b.txt","change_event":"locked","lock_user":"bob@example.com","expire": 0}}`;
        const response = await fetch(`${server.url}/events`, { method: 'POST', headers: { authorization: `Token ${publisherToken()}` }, body });
        assert.equal(response.status, 200);
        await client.waitForCount(1);
        assert.deepEqual(client.raw, [body]);
        client.close();
      });

      it('publishes only what clients need: /events and /metrics are not reachable through the proxy', async () => {
        const client = await TestClient.connect(`${proxy.wsUrl}/notification`);
        client.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, 'erin@example.com') }]);
        await client.roundTrip();
        for (const path of ['/notification/events', '/notificationevents', '/notification/events/', '/notification/../events']) {
          const body = JSON.stringify({ type: 'repo-update', content: { repo_id: REPO, commit_id: `through ${path}` } });
          await (await fetch(`${proxy.url}${path}`, { method: 'POST', headers: { authorization: `Token ${publisherToken()}` }, body })).arrayBuffer();
        }
        for (const path of ['/notification/metrics', '/notificationmetrics', '/notification/health/ready', '/notification/status', '/notification/sse/../metrics', '/notification/poll/../status']) {
          const text = await (await fetch(`${proxy.url}${path}`)).text();
          assert.ok(!text.includes('notification_') && !text.includes('"ready"'), `${path} reached the server through ${kind.name}: ${text.slice(0, 80)}`);
        }
        // Publishers post to the server directly; only this marker may arrive.
        assert.equal(await server.publish('repo-update', { repo_id: REPO, commit_id: 'direct' }), 200);
        await client.waitFor((message) => message.content['commit_id'] === 'direct');
        assert.deepEqual(client.messages.map((message) => message.content['commit_id']), ['direct']);
        client.close();
      });

      it('the server sees the client\'s own address, which the proxy names in X-Forwarded-For', async () => {
        // The proxy reaches the server from 127.0.0.1, a trusted proxy by default; the client comes from 127.0.0.2.
        const userAgent = `address-probe-${kind.name}`;
        const client = await TestClient.connect(`${proxy.wsUrl}/notification`, { headers: { 'user-agent': userAgent }, localAddress: '127.0.0.2' });
        const connected = await server.waitForLog((line) => line.msg === 'websocket connected' && line['userAgent'] === userAgent);
        assert.equal(connected['remote'], '127.0.0.2', proxy.log());
        client.close();
      });

      it('the SSE fallback at /notification/sse streams each event as it is published, with keep-alives, unbuffered', async () => {
        const token = subscriberToken(REPO, 'frank@example.com');
        const reader = await SseReader.connect(`${proxy.url}/notification/sse?repo_id=${REPO}&jwt_token=${token}`);
        assert.equal(reader.status, 200, proxy.log());
        await reader.waitFor(() => reader.messages.some((m) => m.type === 'subscribed'), `subscribed through ${kind.name}`);
        // Each event must arrive on its own: a buffering proxy would hold it back.
        for (const commit of ['sse-1', 'sse-2']) {
          assert.equal(await server.publish('repo-update', { repo_id: REPO, commit_id: commit }), 200);
          await reader.waitFor(() => reader.messages.some((m) => m.content['commit_id'] === commit), `${commit} through ${kind.name}`);
        }
        await reader.waitFor(() => reader.comments.includes('keep-alive'), `a keep-alive through ${kind.name}`);
        reader.close();
        if (kind.name === 'nginx') {
          // nginx logs a request once it has ended, which may be just after the client closed.
          const logFile = join(proxy.dir, 'logs', 'notif.access.log');
          let log = await readFile(logFile, 'utf8');
          for (let tries = 0; tries < 100 && !/"GET \/notification\/sse HTTP\/1\.1" 200/.test(log); tries++) {
            await new Promise((resolve) => setTimeout(resolve, 50));
            log = await readFile(logFile, 'utf8');
          }
          assert.match(log, /"GET \/notification\/sse HTTP\/1\.1" 200/);
          assert.ok(!log.includes(token), 'the documented log format keeps the token out of the access log');
        }
      });

      it('long polling at /notification/poll answers with the events after the cursor', async () => {
        const repos = [{ id: REPO, jwt_token: subscriberToken(REPO, 'grace@example.com') }];
        const post = async (cursor: string) => {
          const response = await fetch(`${proxy.url}/notification/poll`, { method: 'POST', body: JSON.stringify({ cursor, repos }) });
          assert.equal(response.status, 200, proxy.log());
          return (await response.json()) as { cursor: string; messages: Array<{ type: string; content: Record<string, unknown> }> };
        };
        const first = await post('');
        assert.deepEqual(first.messages.map((m) => m.type), ['subscribed']);
        const waiting = post(first.cursor);
        await sleep(200);
        assert.equal(await server.publish('repo-update', { repo_id: REPO, commit_id: 'polled' }), 200);
        assert.deepEqual((await waiting).messages.filter((m) => m.type === 'repo-update').map((m) => m.content['commit_id']), ['polled']);
      });

      it('a browser that offers no subprotocol gets none back through the proxy', async () => {
        const client = await TestClient.connect(`${proxy.wsUrl}/notification`);
        assert.equal(client.socket.protocol, '');
        client.close();
      });

      it('notification-server listen follows a library through the public URL and prints what is published', async () => {
        const listener = CliProcess.start(['listen', '--url', `${proxy.url}/notification`, '--repo', REPO, '--user', 'dave@example.com'], {
          env: { JWT_PRIVATE_KEY: TEST_KEY },
        });
        await listener.waitUntil(() => /listening at ws:\/\/127\.0\.0\.1:\d+\/notification /.test(listener.stderr), 'the listening line');
        assert.equal(await server.publish('repo-update', { repo_id: REPO, commit_id: 'via-proxy' }), 200);
        await listener.waitUntil(() => listener.lines.length >= 1, 'a line');
        assert.deepEqual(listener.lines, [`{"type":"repo-update","content":{"repo_id":"${REPO}","commit_id":"via-proxy"}}`]);
        assert.equal((await listener.stop('SIGINT')).code, 0);
      });
    });
  }

  it('idle WebSockets outlive the dead-peer timeout through every proxy: server pings and client pongs cross them', {
    skip: kinds.every((kind) => kind.skip !== false) && 'no documented proxy is installed',
  }, async () => {
    const clients = await Promise.all(
      [...running.entries()].map(async ([name, proxy]) => {
        const client = await TestClient.connect(`${proxy.wsUrl}/notification`, { protocols: ['notification.seafile.com'] });
        const watched = { name, proxy, client, pings: 0 };
        client.socket.on('ping', () => watched.pings++);
        client.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, `idle-${name}@example.com`) }]);
        return watched;
      }),
    );
    // Silent for longer than the dead-peer timeout: only the pongs ws sends by itself keep them alive.
    await sleep((DEAD_PEER_S + 1.5) * 1000);
    for (const { name, proxy, client, pings } of clients) {
      assert.equal(client.socket.readyState, WebSocket.OPEN, `closed while idle behind ${name}; ${proxy.log()}`);
      assert.ok(pings >= 2, `only ${pings} server pings reached the client through ${name}`);
    }
    assert.equal(await server.publish('repo-update', { repo_id: REPO, commit_id: 'after-idle' }), 200);
    for (const { client } of clients) {
      const event = await client.waitFor((m) => m.type === 'repo-update');
      assert.equal(event.content['commit_id'], 'after-idle');
      client.close();
    }
  });
});
