import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { publisherToken, ServerProcess, subscriberToken } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';

const REPO = '0d3c7a5e-1111-4a4a-8b8b-000000000001';
const OTHER = '0d3c7a5e-1111-4a4a-8b8b-000000000002';

describe('the wire protocol against the running server', () => {
  let server: ServerProcess;
  const clients: TestClient[] = [];

  before(async () => {
    server = await ServerProcess.start();
  });
  after(async () => {
    for (const client of clients) client.socket.terminate();
    await server.stop();
  });

  async function subscribed(repos: string[], username = 'alice@example.com', path = '/'): Promise<TestClient> {
    const client = await TestClient.connect(server.wsUrl + path);
    clients.push(client);
    client.subscribe(repos.map((id) => ({ id, jwt_token: subscriberToken(id, username) })));
    await client.roundTrip();
    return client;
  }

  it('answers /ping, /ping/ and /notification/ping with exactly {"ret": "pong"}', async () => {
    for (const path of ['/ping', '/ping/', '/notification/ping']) {
      const response = await fetch(server.url + path);
      assert.equal(response.status, 200, path);
      assert.equal(await response.text(), '{"ret": "pong"}\n', path);
    }
    assert.equal((await fetch(server.url + '/nowhere')).status, 404);
  });

  it('accepts WebSockets at / and /notification, echoing the desktop subprotocol and giving browsers none', async () => {
    const desktop = await TestClient.connect(server.wsUrl + '/notification', {
      protocols: ['notification.seafile.com'],
      headers: { origin: '127.0.0.1', 'user-agent': 'Seafile/9.0.4 (Linux)' },
    });
    assert.equal(desktop.socket.protocol, 'notification.seafile.com');
    const browser = await TestClient.connect(server.wsUrl + '/', { headers: { origin: 'https://cloud.example.com' } });
    assert.equal(browser.socket.protocol, '');
    const debianClient = await TestClient.connect(server.wsUrl + '/', { protocols: ['notification.seafile.com'], headers: { origin: 'http://127.0.0.1' } });
    assert.equal(debianClient.socket.protocol, 'notification.seafile.com');
    clients.push(desktop, browser, debianClient);
  });

  it('answers a client ping at once with a pong carrying the same payload', async () => {
    const client = await subscribed([REPO]);
    const pong = new Promise<string>((resolve) => client.socket.once('pong', (data) => resolve(data.toString())));
    client.socket.ping('are-you-there');
    assert.equal(await pong, 'are-you-there');
  });

  it('refuses an upgrade on another path, and tells a plain GET of / to use a WebSocket', async () => {
    await assert.rejects(TestClient.connect(server.wsUrl + '/elsewhere'), /404/);
    assert.equal((await fetch(server.url + '/')).status, 426);
  });

  it('a subscribe naming many libraries subscribes the valid ones and answers jwt-expired for each invalid one', async () => {
    const client = await TestClient.connect(server.wsUrl);
    clients.push(client);
    const expired = Math.floor(Date.now() / 1000) - 10;
    client.subscribe([
      { id: REPO, jwt_token: subscriberToken(REPO, 'alice@example.com') },
      { id: 'bad-key', jwt_token: subscriberToken('bad-key', 'alice@example.com', { key: 'another key' }) },
      { id: 'wrong-repo', jwt_token: subscriberToken(OTHER, 'alice@example.com') },
      { id: 'expired', jwt_token: subscriberToken('expired', 'alice@example.com', { exp: expired }) },
      { id: 'no-token' },
    ]);
    await client.waitForCount(4);
    assert.deepEqual(
      client.messages.map((m) => m),
      ['bad-key', 'wrong-repo', 'expired', 'no-token'].map((id) => ({ type: 'jwt-expired', content: { repo_id: id } })),
    );
    assert.equal(await server.publish('repo-update', { repo_id: REPO, commit_id: 'c1' }), 200);
    const update = await client.waitFor((m) => m.type === 'repo-update');
    assert.deepEqual(update.content, { repo_id: REPO, commit_id: 'c1' });
  });

  it('forwards repo-update, file-lock-changed and comment-update byte for byte to every subscriber of the library', async () => {
    const a = await subscribed([REPO]);
    const b = await subscribed([REPO], 'bob@example.com');
    const outsider = await subscribed([OTHER]);
    const bodies = [
      `{"type":"repo-update","content":{"repo_id":"${REPO}","commit_id":"5e1f"}}`,
      `{"type":"file-lock-changed","content":{"repo_id":"${REPO}","path":"/Ünïcode/文件.docx","change_event":"locked","lock_user":"bob@example.com","expire":1764000000}}`,
      `{"type":"comment-update","content":{"repo_id":"${REPO}","type":"add_comment","file_uuid":"u-1","file_path":"/a.md"}}`,
      `{"type":"a-future-event","content":{"repo_id":"${REPO}","anything":[1,2.50]}}`,
    ];
    for (const body of bodies) {
      const response = await fetch(`${server.url}/events/`, { method: 'POST', headers: { authorization: `Token ${publisherToken()}` }, body });
      assert.equal(response.status, 200);
      assert.equal(await response.text(), '');
    }
    await a.waitForCount(4);
    await b.waitForCount(4);
    assert.deepEqual(a.raw, bodies);
    assert.deepEqual(b.raw, bodies);
    await outsider.roundTrip();
    assert.deepEqual(outsider.raw, []);
  });

  it('serves POST /notification/events and /notification/events/ as /events: a proxy may pass the prefix on', async () => {
    const client = await subscribed([REPO]);
    // Seahub's comment update: a token with exp only, posted to NOTIFICATION_SERVER_URL + "/events".
    const token = publisherToken(undefined, Math.floor(Date.now() / 1000) + 500);
    const bodies = ['/notification/events', '/notification/events/'].map(
      (path) => `{"type":"comment-update","content":{"repo_id":"${REPO}","type":"comment_updated","file_uuid":"${path}","file_path":""}}`,
    );
    for (const [index, path] of ['/notification/events', '/notification/events/'].entries()) {
      const response = await fetch(server.url + path, { method: 'POST', headers: { authorization: `Token ${token}` }, body: bodies[index] });
      assert.equal(response.status, 200, path);
      assert.equal(await response.text(), '', path);
    }
    await client.waitForCount(2);
    assert.deepEqual(client.raw, bodies);
    // The same rules as on /events: a token naming a user cannot publish, GET is not publishing.
    const forged = `{"type":"repo-update","content":{"repo_id":"${REPO}","commit_id":"forged"}}`;
    const refused = await fetch(`${server.url}/notification/events`, {
      method: 'POST',
      headers: { authorization: `Token ${subscriberToken(REPO, 'mallory@example.com')}` },
      body: forged,
    });
    assert.equal(refused.status, 403);
    assert.match(await refused.text(), /subscriber token .* cannot publish/);
    assert.equal((await fetch(`${server.url}/notification/events`)).status, 405);
    assert.equal((await fetch(`${server.url}/notification/eventsx`, { method: 'POST', body: forged })).status, 404);
    await client.roundTrip();
    assert.equal(client.raw.length, 2, 'nothing else arrived');
  });

  it('folder-perm-changed with a user reaches that user only; with neither user nor group, everyone', async () => {
    const alice = await subscribed([REPO], 'alice@example.com');
    const bob = await subscribed([REPO], 'bob@example.com');
    const perm = { repo_id: REPO, path: '/docs', type: 'user', change_event: 'add', perm: 'rw' };
    await server.publish('folder-perm-changed', { ...perm, user: 'bob@example.com', group: -1 });
    await server.publish('folder-perm-changed', { ...perm, user: '', group: -1, path: '/all' });
    await bob.waitForCount(2);
    await alice.waitForCount(1);
    await alice.roundTrip();
    assert.deepEqual(alice.messages.map((m) => m.content['path']), ['/all']);
    assert.deepEqual(bob.messages.map((m) => m.content['path']), ['/docs', '/all']);
  });

  it('unsubscribe (object or plain id form) stops delivery for that library only', async () => {
    const client = await subscribed([REPO, OTHER]);
    client.send({ type: 'unsubscribe', content: { repos: [REPO] } });
    await client.roundTrip();
    await server.publish('repo-update', { repo_id: REPO, commit_id: 'x' });
    await server.publish('repo-update', { repo_id: OTHER, commit_id: 'y' });
    await client.waitForCount(1);
    await client.roundTrip();
    assert.deepEqual(client.messages.map((m) => m.content['repo_id']), [OTHER]);
  });

  it('keeps the order of 200 back-to-back events on every connection', async () => {
    const a = await subscribed([REPO]);
    const b = await subscribed([REPO]);
    const token = publisherToken();
    // One keep-alive socket, requests written back to back: the server accepts them in this order.
    const socket: Socket = connect(server.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    let requests = '';
    for (let i = 0; i < 200; i++) {
      const body = JSON.stringify({ type: 'repo-update', content: { repo_id: REPO, commit_id: String(i) } });
      requests += `POST /events HTTP/1.1\r\nHost: x\r\nAuthorization: Token ${token}\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    }
    socket.write(requests);
    await a.waitForCount(200, 15_000);
    await b.waitForCount(200, 15_000);
    socket.destroy();
    const expected = Array.from({ length: 200 }, (_, i) => String(i));
    assert.deepEqual(a.messages.map((m) => m.content['commit_id']), expected);
    assert.deepEqual(b.messages.map((m) => m.content['commit_id']), expected);
  });

  it('answers bad publisher requests clearly: 405, 401, 403, 400 and 413', async () => {
    const post = (headers: Record<string, string>, body: string, method = 'POST') =>
      fetch(`${server.url}/events`, { method, headers, body: method === 'GET' ? undefined : body });
    const auth = { authorization: `Token ${publisherToken()}` };
    const ok = JSON.stringify({ type: 'repo-update', content: { repo_id: REPO, commit_id: 'c' } });
    assert.equal((await post(auth, '', 'GET')).status, 405);
    assert.equal((await post({}, ok)).status, 401);
    assert.equal((await post({ authorization: `Token ${publisherToken('wrong key')}` }, ok)).status, 401);
    assert.equal((await post({ authorization: `Token ${publisherToken(undefined, Math.floor(Date.now() / 1000) - 1)}` }, ok)).status, 401);
    assert.equal((await post({ authorization: `Token ${subscriberToken(REPO, 'mallory@example.com')}` }, ok)).status, 403);
    const bad = await post(auth, '{"type":');
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /not valid JSON/);
    assert.equal((await post(auth, '{"content":{"repo_id":"r"}}')).status, 400);
    assert.equal((await post(auth, '{"type":"repo-update","content":{}}')).status, 400);
    assert.equal((await post(auth, JSON.stringify({ type: 'repo-update', content: { repo_id: REPO, pad: 'x'.repeat(70_000) } }))).status, 413);
    assert.equal((await post(auth, ok)).status, 200, 'the server still accepts good events');
  });

  it('closes a client that sends malformed JSON (1007) or a binary frame (1003), and tells one that sends an unknown type', async () => {
    const malformed = await TestClient.connect(server.wsUrl);
    clients.push(malformed);
    malformed.send('{"type": "subscribe", ');
    const closed = await malformed.closed;
    assert.equal(closed.code, 1007);
    assert.match(closed.reason, /not valid JSON/);

    const binary = await TestClient.connect(server.wsUrl);
    clients.push(binary);
    binary.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    assert.equal((await binary.closed).code, 1003);

    const curious = await subscribed([REPO]);
    curious.send({ type: 'hello', content: {} });
    const reply = await curious.waitFor((m) => m.type === 'error');
    assert.match(String(reply.content['message']), /unknown message type "hello"/);
    await server.publish('repo-update', { repo_id: REPO, commit_id: 'still-here' });
    await curious.waitFor((m) => m.type === 'repo-update');
  });

  it('closes a connection that sends a frame over the size limit (1009) and stays up for others', async () => {
    const big = await TestClient.connect(server.wsUrl);
    clients.push(big);
    big.send(JSON.stringify({ type: 'subscribe', content: { repos: [], pad: 'x'.repeat(70 * 1024) } }));
    assert.equal((await big.closed).code, 1009);
    const healthy = await subscribed([REPO]);
    await server.publish('repo-update', { repo_id: REPO, commit_id: 'after-big' });
    await healthy.waitForCount(1);
  });
});
