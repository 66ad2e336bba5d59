import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type WebSocket from 'ws';
import { signToken } from '../../src/auth/jwt.js';
import { DEFAULT_LIMITS, type Limits } from '../../src/config/config.js';
import { Hub } from '../../src/hub/hub.js';
import { Sessions } from '../../src/session/client-session.js';
import { WebSocketConnection } from '../../src/transport/websocket-connection.js';
import { NO_METRICS } from '../../src/metrics/metrics.js';

const KEY = Buffer.from('connection-limits-key');
const silent = pino({ level: 'silent' });

class FakeSocket extends EventEmitter {
  readonly sent: string[] = [];
  closedWith: number | null = null;
  bufferedAmount = 0;
  send(frame: Buffer): void {
    this.sent.push(frame.toString());
  }
  close(code: number): void {
    this.closedWith = code;
    this.emit('close');
  }
  terminate(): void {
    this.emit('close');
  }
  receive(message: unknown): void {
    this.emit('message', Buffer.from(JSON.stringify(message)), false);
  }
}

/** The limits a test names; max_connections_per_user is off unless it names it. */
function setup(limits: Partial<Limits>) {
  let now = 1_700_000_000_000;
  const hub = new Hub({ groups: null, logger: silent, now: () => now });
  const limited: string[] = [];
  const metrics = { ...NO_METRICS, subscribeLimited: (reason: string) => limited.push(reason) };
  const sessions = new Sessions({ hub, key: KEY, logger: silent, now: () => now, metrics, live: { limits: { ...DEFAULT_LIMITS, maxConnectionsPerUser: 0, ...limits } } });
  const open = () => {
    const socket = new FakeSocket();
    const client = { address: '192.0.2.1', unattributed: false };
    const connection = new WebSocketConnection(socket as unknown as WebSocket, client, { sessions, sendQueueBytes: 1 << 20, onClose: () => undefined });
    return { socket, connection };
  };
  const { socket, connection } = open();
  const bad = (id: string) => ({ type: 'subscribe', content: { repos: [{ id, jwt_token: 'not.a.token' }] } });
  const grant = (id: string, username: string) => ({ id, jwt_token: signToken({ repo_id: id, username, exp: Math.floor(now / 1000) + 3600 }, KEY) });
  const good = (id: string, username = 'u') => ({ type: 'subscribe', content: { repos: [grant(id, username)] } });
  return { hub, socket, connection, bad, good, grant, open, limited, advance: (ms: number) => (now += ms) };
}

describe('per-connection limits', () => {
  it('the refused-subscribe allowance refills over a minute: a slow trickle of bad tokens is answered, a burst is closed', () => {
    const { hub, socket, connection, bad, advance } = setup({ maxLibrariesPerConnection: 10, subscribeTimeoutMs: 0, maxFailedSubscribesPerMinute: 6 });
    for (let i = 0; i < 6; i++) socket.receive(bad(`r${i}`));
    assert.equal(socket.sent.length, 6);
    advance(10_000); // one more allowed: 6 per minute is one per 10 s
    socket.receive(bad('r6'));
    assert.equal(socket.sent.length, 7);
    assert.ok(connection.isOpen);
    advance(5_000);
    socket.receive(bad('r7'));
    assert.equal(socket.closedWith, 4002);
    assert.equal(socket.sent.length, 7, 'the refusal past the allowance gets no answer but the close');
    hub.close();
  });

  it('with max_failed_subscribes_per_minute = 0 refusals are never limited', () => {
    const { hub, socket, connection, bad } = setup({ maxLibrariesPerConnection: 10, subscribeTimeoutMs: 0, maxFailedSubscribesPerMinute: 0 });
    for (let i = 0; i < 500; i++) socket.receive(bad(`r${i}`));
    assert.equal(socket.sent.length, 500);
    assert.ok(connection.isOpen);
    hub.close();
  });

  it('the library limit counts libraries, not subscribes, and refusals by it keep the connection and spend no allowance', () => {
    const { hub, socket, connection, good } = setup({ maxLibrariesPerConnection: 2, subscribeTimeoutMs: 0, maxFailedSubscribesPerMinute: 1 });
    socket.receive(good('a'));
    socket.receive(good('b'));
    socket.receive(good('a'));
    assert.deepEqual(socket.sent, []);
    for (let i = 0; i < 5; i++) socket.receive(good('c'));
    assert.equal(socket.sent.length, 5);
    assert.deepEqual(JSON.parse(socket.sent[0]!), {
      type: 'error',
      content: { repo_id: 'c', message: "subscribe refused: this connection already follows 2 libraries, the server's limit; unsubscribe one first" },
    });
    assert.ok(connection.isOpen);
    assert.equal(connection.libraries, 2);
    hub.close();
  });

  it('a library refused by the library limit is counted as library-cap', () => {
    const { hub, socket, good, limited } = setup({ maxLibrariesPerConnection: 1, subscribeTimeoutMs: 0, maxFailedSubscribesPerMinute: 0 });
    socket.receive(good('a'));
    socket.receive(good('b'));
    assert.deepEqual(limited, ['library-cap']);
    hub.close();
  });

  describe('connections per user', () => {
    const limits = { maxLibrariesPerConnection: 100, subscribeTimeoutMs: 0, maxFailedSubscribesPerMinute: 0, maxConnectionsPerUser: 2 };

    it('a connection counts for a user from its first subscription under that user; one more than the limit is refused and closed with 4003', () => {
      const { hub, socket: first, good, open, limited } = setup(limits);
      const second = open();
      const third = open();
      first.receive(good('a', 'alice'));
      first.receive(good('b', 'alice')); // the same connection: still one
      second.socket.receive(good('a', 'alice'));
      assert.equal(hub.subscribersOfUser('alice'), 2);
      third.socket.receive(good('c', 'alice'));
      assert.deepEqual(JSON.parse(third.socket.sent[0]!), {
        type: 'error',
        content: { repo_id: 'c', message: "subscribe refused: this user already has 2 connections open, the server's limit; close one first" },
      });
      assert.equal(third.socket.closedWith, 4003);
      assert.deepEqual(limited, ['user-cap']);
      assert.equal(hub.subscribersOfUser('alice'), 2);
      // Other users are not affected.
      const bob = open();
      bob.socket.receive(good('a', 'bob'));
      assert.ok(bob.connection.isOpen);
      assert.equal(bob.connection.libraries, 1);
      hub.close();
    });

    it('room again once a connection of the user holds nothing of theirs: unsubscribed, or closed', () => {
      const { hub, socket: first, connection, good, open } = setup(limits);
      const second = open();
      first.receive(good('a', 'alice'));
      second.socket.receive(good('a', 'alice'));
      first.receive({ type: 'unsubscribe', content: { repos: [{ id: 'a' }] } });
      const third = open();
      third.socket.receive(good('a', 'alice'));
      assert.equal(third.connection.libraries, 1);
      second.connection.terminate('normal');
      const fourth = open();
      fourth.socket.receive(good('b', 'alice'));
      assert.equal(fourth.connection.libraries, 1);
      assert.equal(hub.subscribersOfUser('alice'), 2);
      assert.ok(connection.isOpen);
      hub.close();
    });

    it('a connection that holds another user\'s library keeps it and stays open when one user is over the limit', () => {
      const { hub, good, grant, open } = setup(limits);
      open().socket.receive(good('a', 'alice'));
      open().socket.receive(good('a', 'alice'));
      const shared = open();
      shared.socket.receive({ type: 'subscribe', content: { repos: [grant('x', 'carol'), grant('y', 'alice')] } });
      assert.equal(shared.socket.closedWith, null);
      assert.equal(shared.connection.libraries, 1);
      assert.equal(JSON.parse(shared.socket.sent[0]!).content.repo_id, 'y');
      hub.close();
    });

    it('0 means no limit', () => {
      const { hub, good, open } = setup({ ...limits, maxConnectionsPerUser: 0 });
      for (let i = 0; i < 50; i++) open().socket.receive(good('a', 'alice'));
      assert.equal(hub.subscribersOfUser('alice'), 50);
      hub.close();
    });
  });
});
