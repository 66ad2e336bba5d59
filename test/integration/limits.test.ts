import assert from 'node:assert/strict';
import { connect as connectTcp } from 'node:net';
import { after, describe, it } from 'node:test';
import { scrape, scrapeUntil } from '../support/prometheus-text.js';
import { ServerProcess, subscriberToken } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';
import { upgradeAnswer } from '../support/upgrade.js';

const REPOS = ['0d3c7a5e-2222-4a4a-8b8b-000000000001', '0d3c7a5e-2222-4a4a-8b8b-000000000002', '0d3c7a5e-2222-4a4a-8b8b-000000000003'];

describe('limits, through the running server', () => {
  const servers: ServerProcess[] = [];
  const clients: TestClient[] = [];
  after(async () => {
    for (const client of clients) client.socket.terminate();
    await Promise.all(servers.map((server) => server.stop()));
  });

  async function start(env: Record<string, string>): Promise<ServerProcess> {
    const server = await ServerProcess.start({ env });
    servers.push(server);
    return server;
  }

  async function connect(server: ServerProcess, headers: Record<string, string> = {}, localAddress?: string): Promise<TestClient> {
    const client = await TestClient.connect(server.wsUrl, { headers, localAddress });
    clients.push(client);
    return client;
  }

  it('a subscribe past max_libraries_per_connection is answered with an error naming the library, and the connection stays', async () => {
    const server = await start({ NOTIFICATION_SERVER_MAX_LIBRARIES_PER_CONNECTION: '2' });
    const client = await connect(server);
    client.subscribe(REPOS.map((id) => ({ id, jwt_token: subscriberToken(id, 'alice@example.com') })));
    const refused = await client.waitFor((m) => m.type === 'error');
    assert.equal(refused.content['repo_id'], REPOS[2]);
    assert.match(String(refused.content['message']), /already follows 2 libraries/);
    // Renewing a library it already follows is not a new one.
    client.subscribe([{ id: REPOS[0]!, jwt_token: subscriberToken(REPOS[0]!, 'alice@example.com') }]);
    await client.roundTrip();
    for (const id of REPOS) await server.publish('repo-update', { repo_id: id, commit_id: `c-${id}` });
    await client.waitForCount(3);
    await client.roundTrip();
    assert.deepEqual(client.messages.slice(1).map((m) => m.content['repo_id']), REPOS.slice(0, 2));
    // Room again after an unsubscribe.
    client.unsubscribe([REPOS[0]!]);
    client.subscribe([{ id: REPOS[2]!, jwt_token: subscriberToken(REPOS[2]!, 'alice@example.com') }]);
    await client.roundTrip();
    await server.publish('repo-update', { repo_id: REPOS[2]!, commit_id: 'now-followed' });
    const update = await client.waitFor((m) => m.content['commit_id'] === 'now-followed');
    assert.equal(update.type, 'repo-update');
  });

  it('a connection that subscribes nothing within subscribe_timeout is closed with 4001; one that subscribed stays', async () => {
    const server = await start({ NOTIFICATION_SERVER_SUBSCRIBE_TIMEOUT: '2' });
    const idle = await connect(server);
    const busy = await connect(server);
    busy.subscribe([{ id: REPOS[0]!, jwt_token: subscriberToken(REPOS[0]!, 'alice@example.com') }]);
    // A refused subscribe does not count as subscribing.
    idle.subscribe([{ id: REPOS[0]!, jwt_token: subscriberToken(REPOS[0]!, 'alice@example.com', { exp: 1 }) }]);
    const closed = await idle.closed;
    assert.deepEqual(closed, { code: 4001, reason: 'no subscription' });
    await server.waitForLog((line) => line.msg === 'no subscription in time: closing');
    await busy.roundTrip();
    await server.publish('repo-update', { repo_id: REPOS[0]!, commit_id: 'still-open' });
    await busy.waitFor((m) => m.content['commit_id'] === 'still-open');
  });

  it('past max_failed_subscribes_per_minute refused subscribes, the connection is closed with 4002; others are untouched', async () => {
    const server = await start({ NOTIFICATION_SERVER_MAX_FAILED_SUBSCRIBES_PER_MINUTE: '5' });
    const prober = await connect(server);
    const neighbour = await connect(server);
    neighbour.subscribe([{ id: REPOS[0]!, jwt_token: subscriberToken(REPOS[0]!, 'bob@example.com') }]);
    const forged = (id: string) => ({ id, jwt_token: subscriberToken(id, 'mallory@example.com', { key: 'guessed key' }) });
    prober.subscribe([forged('a'), forged('b'), forged('c')]);
    await prober.waitForCount(3);
    assert.ok(prober.messages.every((m) => m.type === 'jwt-expired'), 'within the allowance each one is answered jwt-expired');
    prober.subscribe([forged('d'), forged('e'), forged('f'), forged('g')]);
    const closed = await prober.closed;
    assert.deepEqual(closed, { code: 4002, reason: 'too many failed subscribes' });
    assert.deepEqual(prober.messages.map((m) => m.content['repo_id']), ['a', 'b', 'c', 'd', 'e']);
    await server.waitForLog((line) => line.msg.startsWith('too many refused subscribes'));
    await server.publish('repo-update', { repo_id: REPOS[0]!, commit_id: 'neighbour' });
    await neighbour.waitFor((m) => m.content['commit_id'] === 'neighbour');
  });

  it('a request that drips its headers past header_timeout is answered 408 and closed, while others are served', async () => {
    const server = await start({ NOTIFICATION_SERVER_HEADER_TIMEOUT: '1' });
    const slow = connectTcp(server.port, '127.0.0.1');
    const head = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Padding: ' + 'x'.repeat(200);
    let sent = 0;
    let answer = '';
    slow.setEncoding('latin1').on('data', (chunk: string) => (answer += chunk));
    slow.on('error', () => {});
    const drip = setInterval(() => {
      if (sent < head.length && slow.writable) slow.write(head[sent++]!);
    }, 50);
    const startedAt = Date.now();
    try {
      assert.equal((await fetch(`${server.url}/ping`)).status, 200, 'a slow client holds nobody else up');
      await new Promise<void>((resolve) => slow.once('close', () => resolve()));
    } finally {
      clearInterval(drip);
      slow.destroy();
    }
    const tookMs = Date.now() - startedAt;
    assert.match(answer, /^HTTP\/1\.1 408 /);
    // 1 s deadline, checked every 250 ms; generous bound for a loaded machine, far below Node's 60 s default.
    assert.ok(tookMs < 8_000, `closed after ${tookMs} ms`);
    assert.ok(sent < head.length, 'cut before the headers were complete');
    assert.equal((await scrape(server.url)).value('notification_requests_refused_total', { reason: 'timeout' }), 1);
  });

  it('past max_connections an upgrade is answered 503 with Retry-After, and admitted again once a connection closes', async () => {
    const server = await start({ NOTIFICATION_SERVER_MAX_CONNECTIONS: '2' });
    const first = await connect(server);
    await connect(server);
    const refused = await upgradeAnswer(server.port);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '60');
    assert.equal((await scrape(server.url)).value('notification_requests_refused_total', { reason: 'connection-cap' }), 1);
    await server.waitForLog((line) => line.msg.startsWith('connection cap reached'));
    assert.equal((await fetch(`${server.url}/ping`)).status, 200, 'the cap is on WebSockets only');
    first.close();
    await first.closed;
    await upgradeUntil(server, 101);
  });

  /** Retries the upgrade, as a client would, until it is answered `status` (the server sees a close a moment after the client). */
  async function upgradeUntil(server: ServerProcess, status: number, headers: Record<string, string> = {}, from?: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    let answer = 0;
    while (Date.now() < deadline && (answer = (await upgradeAnswer(server.port, headers, from)).status) !== status) await new Promise((r) => setTimeout(r, 50));
    assert.equal(answer, status);
  }

  it('past max_connections_per_address an upgrade from that address is answered 429 with Retry-After; other addresses still get in', async () => {
    // No trusted proxy: the TCP peer is the client, whatever X-Forwarded-For says.
    const server = await start({ NOTIFICATION_SERVER_MAX_CONNECTIONS_PER_ADDRESS: '2', NOTIFICATION_SERVER_TRUSTED_PROXIES: 'none' });
    const first = await connect(server);
    await connect(server, { 'x-forwarded-for': '198.51.100.1' });
    const refused = await upgradeAnswer(server.port, { 'x-forwarded-for': '198.51.100.2' });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers['retry-after'], '60');
    assert.match(refused.body, /^too many connections from your address \(max_connections_per_address is 2\); try again in 60 s\n$/);
    assert.equal((await upgradeAnswer(server.port, {}, '127.0.0.2')).status, 101, 'another address is not affected');
    const metrics = await scrape(server.url);
    assert.equal(metrics.value('notification_requests_refused_total', { reason: 'address-cap' }), 1);
    assert.equal(metrics.value('notification_requests_refused_total', { reason: 'connection-cap' }), 0);
    const warning = await server.waitForLog((line) => line.msg.startsWith('connection cap per address reached'));
    assert.equal(warning['remote'], '127.0.0.1');
    first.close();
    await first.closed;
    await upgradeUntil(server, 101);
  });

  it('behind a trusted proxy the cap counts the address it names in X-Forwarded-For; a proxy that names nobody is not capped, and the log says so', async () => {
    // The default trusted_proxies: loopback, where the documented proxy runs.
    const server = await start({ NOTIFICATION_SERVER_MAX_CONNECTIONS_PER_ADDRESS: '2' });
    const office = { 'x-forwarded-for': '203.0.113.50' };
    await connect(server, office);
    await connect(server, { 'x-forwarded-for': '1.2.3.4, 203.0.113.50' });
    assert.equal((await upgradeAnswer(server.port, office)).status, 429);
    assert.equal((await upgradeAnswer(server.port, { 'x-real-ip': '203.0.113.50' })).status, 429);
    assert.equal((await upgradeAnswer(server.port, { 'x-forwarded-for': '203.0.113.51' })).status, 101);
    for (let i = 0; i < 3; i++) await connect(server);
    await server.waitForLog((line) => line.msg.startsWith('a connection came through a trusted proxy that sent no X-Forwarded-For'));
    assert.equal((await scrape(server.url)).value('notification_requests_refused_total', { reason: 'address-cap' }), 2);
  });

  it('past max_connections_per_user a subscribe of one more connection is refused with an error and the connection closed with 4003', async () => {
    const server = await start({ NOTIFICATION_SERVER_MAX_CONNECTIONS_PER_USER: '2' });
    const alice = (id: string) => ({ id, jwt_token: subscriberToken(id, 'alice@example.com') });
    const laptop = await connect(server);
    const desktop = await connect(server);
    laptop.subscribe([alice(REPOS[0]!), alice(REPOS[1]!)]);
    desktop.subscribe([alice(REPOS[0]!)]);
    await laptop.roundTrip();
    await desktop.roundTrip();
    const third = await connect(server);
    third.subscribe([alice(REPOS[2]!)]);
    const refused = await third.waitFor((m) => m.type === 'error');
    assert.equal(refused.content['repo_id'], REPOS[2]);
    assert.match(String(refused.content['message']), /this user already has 2 connections open/);
    assert.deepEqual(await third.closed, { code: 4003, reason: 'too many connections for this user' });
    // The user's connections keep receiving, and other users are not affected.
    const bob = await connect(server);
    bob.subscribe([{ id: REPOS[0]!, jwt_token: subscriberToken(REPOS[0]!, 'bob@example.com') }]);
    await bob.roundTrip();
    await server.publish('repo-update', { repo_id: REPOS[0]!, commit_id: 'for-all' });
    for (const client of [laptop, desktop, bob]) await client.waitFor((m) => m.content['commit_id'] === 'for-all');
    const metrics = await scrapeUntil(server.url, (now) => now.value('notification_connections_closed_total', { reason: 'user-cap' }) === 1);
    assert.equal(metrics.value('notification_subscribes_limited_total', { reason: 'user-cap' }), 1);
    // Once one of alice's connections goes, there is room for another.
    laptop.close();
    await laptop.closed;
    const deadline = Date.now() + 10_000;
    let admitted: TestClient | null = null;
    while (admitted === null && Date.now() < deadline) {
      const next = await connect(server);
      next.subscribe([alice(REPOS[2]!)]);
      await next.roundTrip();
      if (next.messages.some((m) => m.type === 'error')) await new Promise((r) => setTimeout(r, 50));
      else admitted = next;
    }
    assert.ok(admitted, 'no room after a connection of the user closed');
  });

  it('with allowed_origins, only those browser origins get in, and the desktop client still does', async () => {
    const server = await start({ NOTIFICATION_SERVER_ALLOWED_ORIGINS: 'https://cloud.example.com, https://seafile.example.org:8443' });
    const admitted: Array<Record<string, string>> = [
      { origin: 'https://cloud.example.com' },
      { origin: 'https://seafile.example.org:8443' },
      { origin: '127.0.0.1' }, // desktop client, bare host name
      { origin: 'http://127.0.0.1' }, // desktop client, http://<host> of the Host it connected to
      { origin: 'http://cloud.example.com', host: 'cloud.example.com' }, // behind a proxy
      {}, // no Origin: not a browser
    ];
    for (const headers of admitted) assert.equal((await upgradeAnswer(server.port, headers)).status, 101, JSON.stringify(headers));
    const refused = ['https://evil.example', 'http://cloud.example.com:8080', 'https://cloud.example.com.evil.example', 'null', 'http://evil.example'];
    for (const origin of refused) assert.equal((await upgradeAnswer(server.port, { origin })).status, 403, origin);
    assert.equal((await scrape(server.url)).value('notification_requests_refused_total', { reason: 'origin' }), refused.length);
    const desktop = await TestClient.connect(server.wsUrl + '/notification', { protocols: ['notification.seafile.com'], headers: { origin: '127.0.0.1' } });
    clients.push(desktop);
    assert.equal(desktop.socket.protocol, 'notification.seafile.com');
  });

  it('without allowed_origins, every origin gets in (the stock behaviour)', async () => {
    const server = await start({});
    for (const origin of ['https://evil.example', 'null', 'http://anything:1234']) {
      assert.equal((await upgradeAnswer(server.port, { origin })).status, 101, origin);
    }
  });
});
