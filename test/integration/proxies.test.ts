import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { CliProcess } from '../support/cli-process.js';
import { documentedProxies, eventsRestrictedTo, seafileCaddyLabels } from '../support/proxies.js';
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
const seafileLabels = seafileCaddyLabels();

/** Our operations endpoints, asked for every way a proxy rule might let through. */
const OPERATIONS_PATHS = [
  '/notification/metrics',
  '/notificationmetrics',
  '/notification/health/live',
  '/notification/health/ready',
  '/notification/status',
  '/notification/status/feed',
  '/metrics',
  '/health/live',
  '/health/ready',
  '/status',
  '/notification/events/../../metrics',
  '/notification/ping/../../health/ready',
  '/notification/sse/../../status',
  '/notification/poll/../metrics',
];

/** True when an answer came from /metrics, /health or /status of the server (each refusal of theirs included). */
function reachedOperations(text: string): boolean {
  return ['notification_', '"status":', 'direct requests only', 'status page'].some((marker) => text.includes(marker));
}

/** Seahub's publisher token: `exp` = now + 500 s and nothing else. */
function seahubToken(): string {
  return publisherToken(TEST_KEY, Math.floor(Date.now() / 1000) + 500);
}

/** The body seahub posts when a file's comments change. */
function seahubCommentUpdate(): string {
  return `{"type":"comment-update","content":{"repo_id":"${REPO}","type":"comment_updated","file_uuid":"${randomUUID()}","file_path":""}}`;
}

/** One request with the path exactly as given, from `localAddress`. */
function rawRequest(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
  localAddress = '127.0.0.1',
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, localAddress, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 10 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

describe('behind the documented proxies (docs/deploy)', () => {
  let server: ServerProcess;
  const running = new Map<string, ProxyProcess>();
  /** The same proxies with the restriction of docs/security.md: only 127.0.0.1 may publish. */
  const restrictedProxies = new Map<string, ProxyProcess>();

  before(async () => {
    server = await ServerProcess.start({
      env: { NOTIFICATION_SERVER_PING_INTERVAL: String(PING_INTERVAL_S), NOTIFICATION_SERVER_DEAD_PEER_TIMEOUT: String(DEAD_PEER_S) },
    });
    const installed = kinds.filter((kind) => kind.skip === false);
    const upstream = `127.0.0.1:${server.port}`;
    const [started, restricted] = await Promise.all([
      Promise.allSettled(installed.map((kind) => kind.start(upstream))),
      Promise.allSettled(installed.map((kind) => kind.start(upstream, eventsRestrictedTo(kind.name, '127.0.0.1')))),
    ]);
    for (const [index, result] of started.entries()) if (result.status === 'fulfilled') running.set(installed[index]!.name, result.value);
    for (const [index, result] of restricted.entries()) if (result.status === 'fulfilled') restrictedProxies.set(installed[index]!.name, result.value);
    const failure = [...started, ...restricted].find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
  });
  after(async () => {
    await Promise.all([...running.values(), ...restrictedProxies.values()].map((proxy) => proxy.stop()));
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

      it('seahub\'s comment-update, posted to /notification/events through the proxy, reaches a subscriber behind it byte for byte', async () => {
        const client = await TestClient.connect(`${proxy.wsUrl}/notification`, { protocols: ['notification.seafile.com'] });
        client.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, 'henry@example.com') }]);
        await client.roundTrip();
        const body = seahubCommentUpdate();
        const response = await fetch(`${proxy.url}/notification/events`, {
          method: 'POST',
          headers: { authorization: `Token ${seahubToken()}`, 'content-type': 'application/json' },
          body,
        });
        assert.equal(response.status, 200, proxy.log());
        await client.waitForCount(1);
        assert.deepEqual(client.raw, [body]);
        // A user's own token cannot publish there, whoever forwards it.
        const forged = `{"type":"repo-update","content":{"repo_id":"${REPO}","commit_id":"forged"}}`;
        const refused = await fetch(`${proxy.url}/notification/events`, {
          method: 'POST',
          headers: { authorization: `Token ${subscriberToken(REPO, 'henry@example.com')}` },
          body: forged,
        });
        assert.equal(refused.status, 403);
        await client.roundTrip();
        assert.deepEqual(client.raw, [body]);
        client.close();
      });

      it('nothing but the client paths and /notification/events: /metrics, /health and /status are not reachable through the proxy', async () => {
        const client = await TestClient.connect(`${proxy.wsUrl}/notification`);
        client.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, 'erin@example.com') }]);
        await client.roundTrip();
        // Sent as written: dot segments are not resolved by the client, only (perhaps) by the proxy.
        for (const path of ['/notificationevents', '/events', '/notification/../events', '/notification/events/../../events', '/notification/sse/../../events']) {
          const body = JSON.stringify({ type: 'repo-update', content: { repo_id: REPO, commit_id: `through ${path}` } });
          await rawRequest(proxy.port, 'POST', path, { authorization: `Token ${publisherToken()}` }, body);
        }
        for (const path of OPERATIONS_PATHS) {
          const { status, text } = await rawRequest(proxy.port, 'GET', path);
          assert.ok(!reachedOperations(text), `${path} reached the server through ${kind.name} (${status}): ${text.slice(0, 80)}`);
        }
        // Only this marker may arrive.
        assert.equal(await server.publish('repo-update', { repo_id: REPO, commit_id: 'direct' }), 200);
        await client.waitFor((message) => message.content['commit_id'] === 'direct');
        assert.deepEqual(client.messages.map((message) => message.content['commit_id']), ['direct']);
        client.close();
      });

      it('with the restriction of docs/security.md only the Seafile hosts publish: another address gets 403, clients are not affected', async () => {
        const restricted = restrictedProxies.get(kind.name)!;
        const client = await TestClient.connect(`${restricted.wsUrl}/notification`, { localAddress: '127.0.0.2' });
        client.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, 'ivan@example.com') }]);
        await client.roundTrip();
        const outsider = await rawRequest(restricted.port, 'POST', '/notification/events', { authorization: `Token ${seahubToken()}` }, seahubCommentUpdate(), '127.0.0.2');
        assert.equal(outsider.status, 403, restricted.log());
        const body = seahubCommentUpdate();
        const seafile = await rawRequest(restricted.port, 'POST', '/notification/events', { authorization: `Token ${seahubToken()}` }, body, '127.0.0.1');
        assert.equal(seafile.status, 200, restricted.log());
        await client.waitForCount(1);
        assert.deepEqual(client.raw, [body]);
        assert.equal((await rawRequest(restricted.port, 'GET', '/notification/ping', {}, undefined, '127.0.0.2')).status, 200);
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

  describe("Caddy with Seafile's own labels (handle_path /notification*: everything under the prefix, stripped)", { skip: seafileLabels.skip }, () => {
    let proxy: ProxyProcess;
    before(async () => {
      proxy = await seafileLabels.start(`127.0.0.1:${server.port}`);
    });
    after(async () => {
      await proxy?.stop();
    });

    it('the stripped paths serve the clients and seahub: /ping, the WebSocket at /, /events, /poll', async () => {
      const ping = await fetch(`${proxy.url}/notification/ping`);
      assert.equal(await ping.text(), '{"ret": "pong"}\n');
      const client = await TestClient.connect(`${proxy.wsUrl}/notification`, { protocols: ['notification.seafile.com'] });
      assert.equal(client.socket.protocol, 'notification.seafile.com');
      client.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, 'judy@example.com') }]);
      await client.roundTrip();
      const body = seahubCommentUpdate();
      const response = await fetch(`${proxy.url}/notification/events`, { method: 'POST', headers: { authorization: `Token ${seahubToken()}` }, body });
      assert.equal(response.status, 200, proxy.log());
      await client.waitForCount(1);
      assert.deepEqual(client.raw, [body]);
      client.close();
      const poll = await fetch(`${proxy.url}/notification/poll`, {
        method: 'POST',
        body: JSON.stringify({ cursor: '', repos: [{ id: REPO, jwt_token: subscriberToken(REPO, 'judy@example.com') }] }),
      });
      assert.deepEqual(((await poll.json()) as { messages: Array<{ type: string }> }).messages.map((m) => m.type), ['subscribed']);
    });

    it('/metrics refuses what the proxy forwards; /health says only "ready"; /status is off without an admin token', async () => {
      const metrics = await rawRequest(proxy.port, 'GET', '/notification/metrics');
      assert.equal(metrics.status, 404);
      assert.match(metrics.text, /direct requests only/);
      assert.doesNotMatch(metrics.text, /notification_/);
      const ready = await rawRequest(proxy.port, 'GET', '/notification/health/ready');
      assert.deepEqual([ready.status, ready.text], [200, '{"status":"ready"}\n']);
      assert.equal((await rawRequest(proxy.port, 'GET', '/notification/status')).status, 404);
    });
  });
});
