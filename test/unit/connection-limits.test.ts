import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type WebSocket from 'ws';
import { signToken } from '../../src/auth/jwt.js';
import { Hub } from '../../src/hub/hub.js';
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

function setup(limits: { maxLibraries: number; subscribeTimeoutMs: number; maxFailedSubscribesPerMinute: number }) {
  let now = 1_700_000_000_000;
  const hub = new Hub({ groups: null, logger: silent, now: () => now });
  const socket = new FakeSocket();
  const connection = new WebSocketConnection(socket as unknown as WebSocket, 'test', {
    hub,
    key: KEY,
    logger: silent,
    sendQueueBytes: 1 << 20,
    now: () => now,
    metrics: NO_METRICS,
    onClose: () => undefined,
    limits,
  });
  const bad = (id: string) => ({ type: 'subscribe', content: { repos: [{ id, jwt_token: 'not.a.token' }] } });
  const good = (id: string) => ({ type: 'subscribe', content: { repos: [{ id, jwt_token: signToken({ repo_id: id, username: 'u', exp: Math.floor(now / 1000) + 3600 }, KEY) }] } });
  return { hub, socket, connection, bad, good, advance: (ms: number) => (now += ms) };
}

describe('per-connection limits', () => {
  it('the refused-subscribe allowance refills over a minute: a slow trickle of bad tokens is answered, a burst is closed', () => {
    const { hub, socket, connection, bad, advance } = setup({ maxLibraries: 10, subscribeTimeoutMs: 0, maxFailedSubscribesPerMinute: 6 });
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
    const { hub, socket, connection, bad } = setup({ maxLibraries: 10, subscribeTimeoutMs: 0, maxFailedSubscribesPerMinute: 0 });
    for (let i = 0; i < 500; i++) socket.receive(bad(`r${i}`));
    assert.equal(socket.sent.length, 500);
    assert.ok(connection.isOpen);
    hub.close();
  });

  it('the library limit counts libraries, not subscribes, and refusals by it keep the connection and spend no allowance', () => {
    const { hub, socket, connection, good } = setup({ maxLibraries: 2, subscribeTimeoutMs: 0, maxFailedSubscribesPerMinute: 1 });
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
    assert.equal(hub.index.countOf(connection), 2);
    hub.close();
  });
});
