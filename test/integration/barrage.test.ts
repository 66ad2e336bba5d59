import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { scrape, scrapeUntil, Scrape } from '../support/prometheus-text.js';
import { RawWebSocket } from '../support/raw-websocket.js';
import { ServerProcess, subscriberToken } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';

const REPO = 'ba77a6e0-0000-4000-8000-000000000001';
const OTHER = 'ba77a6e0-0000-4000-8000-000000000002';
const EVENTS = 300;

function rssKib(pid: number): number {
  const line = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(line, 'VmRSS missing from /proc status');
  return Number(line[1]);
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A token that claims to need no signature. */
function unsignedToken(repoId: string): string {
  return `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ repo_id: repoId, username: 'mallory@example.com', exp: Math.floor(Date.now() / 1000) + 3600 })}.`;
}

/** A masked frame header for any payload length, with the 64-bit form past 65535. */
function frameHeader(opcode: number, length: number): Buffer {
  const header = Buffer.alloc(14);
  header[0] = 0x80 | opcode;
  header[1] = 0x80 | 127;
  header.writeBigUInt64BE(BigInt(length), 2);
  randomBytes(4).copy(header, 10);
  return header;
}

describe('a barrage of bad input against the running server', () => {
  let server: ServerProcess;
  const healthy: TestClient[] = [];

  before(async () => {
    server = await ServerProcess.start();
  });
  after(async () => {
    for (const client of healthy) client.socket.terminate();
    await server.stop();
  });

  it('refuses every abuse, counts each one, and keeps delivering every event to healthy clients in order', async () => {
    for (let i = 0; i < 2; i++) {
      const client = await TestClient.connect(server.wsUrl);
      client.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, `healthy${i}@example.com`) }]);
      await client.roundTrip();
      healthy.push(client);
    }
    const rssBefore = rssKib(server.child.pid!);
    const before = await scrape(server.url);

    // Events flow the whole time the abuse goes on.
    let publishing = true;
    const publisher = (async () => {
      let sent = 0;
      while (publishing || sent < EVENTS) {
        assert.equal(await server.publish('repo-update', { repo_id: REPO, commit_id: `c${sent}` }), 200);
        sent++;
        if (sent >= EVENTS && !publishing) break;
        if (sent >= EVENTS) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return sent;
    })();

    const abuses: Array<Promise<unknown>> = [];

    // A frame cut short: the header promises 100 bytes, 10 come, then the TCP connection ends.
    const truncated = await RawWebSocket.connect(server.port);
    truncated.socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | 100]), randomBytes(4), randomBytes(10)]));
    setTimeout(() => truncated.destroy(), 100);
    abuses.push(truncated.closed);

    const invalidUtf8 = await RawWebSocket.connect(server.port);
    invalidUtf8.sendFrame(1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    abuses.push(invalidUtf8.closed);

    const binary = await RawWebSocket.connect(server.port);
    binary.sendFrame(2, randomBytes(32));
    abuses.push(binary.closed);

    // A header announcing 1 TiB: refused from the header, before any payload is buffered.
    const huge = await RawWebSocket.connect(server.port);
    huge.socket.write(frameHeader(1, 2 ** 40));
    abuses.push(huge.closed);

    // Deeply nested JSON within the frame limit: unclosed, so invalid JSON.
    const nested = await TestClient.connect(server.wsUrl);
    nested.send('['.repeat(60_000));
    abuses.push(nested.closed.then(({ code }) => assert.equal(code, 1007)));

    // Balanced nesting is valid JSON but not a message: answered or closed, never a crash.
    const balanced = await TestClient.connect(server.wsUrl);
    balanced.socket.send('['.repeat(30_000) + ']'.repeat(30_000));

    // Forged and foreign tokens, each refused with jwt-expired; the connection stays.
    const forger = await TestClient.connect(server.wsUrl);
    forger.subscribe([
      { id: OTHER, jwt_token: unsignedToken(OTHER) },
      { id: OTHER, jwt_token: subscriberToken(OTHER, 'mallory@example.com', { key: 'another key entirely' }) },
      { id: OTHER, jwt_token: subscriberToken(REPO, 'mallory@example.com') },
    ]);
    abuses.push(forger.waitForCount(3, 15_000).then((messages) => assert.deepEqual(messages.map((m) => m.type), ['jwt-expired', 'jwt-expired', 'jwt-expired'])));

    // A subscriber token is no publisher credential.
    abuses.push(
      server
        .publish('repo-update', { repo_id: REPO, commit_id: 'forged' }, { authorization: `Token ${subscriberToken(REPO, 'mallory@example.com')}` })
        .then((status) => assert.equal(status, 403)),
    );

    // Thousands of refused subscribes on one connection: closed with 4002 past the bucket.
    const flooder = await TestClient.connect(server.wsUrl);
    const badToken = subscriberToken(OTHER, 'mallory@example.com', { key: 'another key entirely' });
    for (let i = 0; i < 3000 && flooder.socket.readyState === flooder.socket.OPEN; i++) {
      flooder.subscribe([{ id: OTHER, jwt_token: badToken }]);
    }
    abuses.push(flooder.closed.then(({ code }) => assert.equal(code, 4002)));

    // Thousands of valid subscribes on one connection: accepted, the connection stays.
    const greedy = await TestClient.connect(server.wsUrl);
    for (let i = 0; i < 2000; i++) {
      const id = `ba77a6e0-0000-4000-8000-1${String(i).padStart(11, '0')}`;
      greedy.subscribe([{ id, jwt_token: subscriberToken(id, 'greedy@example.com') }]);
    }
    abuses.push(greedy.roundTrip(30_000));

    // A request whose headers come one byte at a time: it must not stop anything else.
    const slow = connect(server.port, '127.0.0.1');
    const slowRequest = `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n`;
    let slowAt = 0;
    const drip = setInterval(() => {
      if (slowAt < slowRequest.length && slow.writable) slow.write(slowRequest[slowAt++]!);
    }, 10);
    slow.on('error', () => {});

    // Not HTTP at all.
    const garbage = connect(server.port, '127.0.0.1');
    garbage.on('error', () => {});
    garbage.resume();
    garbage.write('\x00\x01 not http at all\r\n\r\n');
    abuses.push(new Promise((resolve) => garbage.once('close', resolve)));

    await Promise.all(abuses);
    publishing = false;
    const sent = await publisher;
    clearInterval(drip);
    slow.destroy();

    for (const client of healthy) {
      const messages = await client.waitForCount(sent, 30_000);
      assert.deepEqual(
        messages.map((m) => m.content['commit_id']),
        Array.from({ length: sent }, (_, i) => `c${i}`),
        'a healthy client missed an event or got them out of order',
      );
    }
    // The balanced-nesting connection is either still open or closed as malformed.
    assert.ok(balanced.socket.readyState === balanced.socket.OPEN || (await balanced.closed).code === 1007);

    const closes = (reason: string) => (after: Scrape) => Scrape.delta(before, after, 'notification_connections_closed_total', { reason });
    const after = await scrapeUntil(
      server.url,
      (current) => closes('abnormal')(current) >= 1 && closes('malformed')(current) >= 2 && closes('binary')(current) >= 1 && closes('too-big')(current) >= 1 && closes('failed-subscribes')(current) >= 1,
      15_000,
    );
    const auth = (endpoint: string, reason: string) => Scrape.delta(before, after, 'notification_auth_failures_total', { endpoint, reason });
    assert.ok(auth('subscribe', 'algorithm') >= 1, 'alg none not counted');
    assert.ok(auth('subscribe', 'signature') >= 100, 'signatures from another key not counted');
    assert.equal(auth('subscribe', 'wrong-library'), 1);
    assert.equal(auth('events', 'subscriber-token'), 1);
    assert.ok(Scrape.delta(before, after, 'notification_requests_refused_total', { reason: 'bad-request' }) >= 1, 'a request that is not HTTP not counted');

    const ready = await fetch(`${server.url}/health/ready`);
    await ready.arrayBuffer();
    assert.equal(ready.status, 200);
    const rssAfter = rssKib(server.child.pid!);
    // Generous: the abuse must not leave the server holding hundreds of megabytes.
    assert.ok(rssAfter - rssBefore < 200 * 1024, `RSS grew from ${rssBefore} kB to ${rssAfter} kB`);
    greedy.socket.terminate();
    forger.socket.terminate();
    balanced.socket.terminate();
  });
});
