import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { EventHistory, HistoryRead } from '../../src/history/event-history.js';
import { judgeRecovery } from '../../src/history/event-history.js';
import { MemoryHistory } from '../../src/history/memory-history.js';
import { parsePosition, type Position } from '../../src/history/position.js';
import { Hub } from '../../src/hub/hub.js';
import type { Subscriber } from '../../src/hub/subscriber.js';
import { parseClientMessage } from '../../src/protocol/client-message.js';
import { parseEvent, type LibraryEvent } from '../../src/protocol/event.js';
import { encodeResync, encodeSubscribed, positionedMessage } from '../../src/protocol/position-frames.js';
import type { Outgoing } from '../../src/protocol/outgoing.js';

const silent = pino({ level: 'silent' });
const farFuture = Date.now() + 3_600_000;

function update(repoId: string, commit: string): LibraryEvent {
  return parseEvent(JSON.stringify({ type: 'repo-update', content: { repo_id: repoId, commit_id: commit } }));
}

function commitsOf(events: readonly LibraryEvent[]): string[] {
  return events.map((e) => (JSON.parse(e.frame.toString()) as { content: { commit_id: string } }).content.commit_id);
}

/** A clock the test moves by hand. */
function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('memory history', () => {
  it('numbers each library on its own, from 1, with no gap, in one epoch', () => {
    const history = new MemoryHistory({ size: 10, ttlMs: 60_000 });
    const offsets = [update('a', '1'), update('b', '1'), update('a', '2'), update('a', '3'), update('b', '2')].map((e) => history.append(e).position);
    assert.deepEqual(offsets.map((p) => `${p?.epoch === history.epoch}:${p?.offset}`), ['true:1', 'true:1', 'true:2', 'true:3', 'true:2']);
  });

  it('gives a returning client exactly the events after its position, in order', () => {
    const history = new MemoryHistory({ size: 10, ttlMs: 60_000 });
    for (const c of ['1', '2', '3', '4']) history.append(update('a', c));
    const read = history.readNow('a', { epoch: history.epoch, offset: 2 });
    assert.equal(read.kind, 'recovered');
    assert.deepEqual(read.kind === 'recovered' && commitsOf(read.events), ['3', '4']);
    assert.deepEqual(read.position, { epoch: history.epoch, offset: 4 });
    const upToDate = history.readNow('a', { epoch: history.epoch, offset: 4 });
    assert.deepEqual(upToDate, { kind: 'recovered', position: { epoch: history.epoch, offset: 4 }, events: [] });
  });

  it('keeps at most history_size events: a client further behind is told to resync', () => {
    const history = new MemoryHistory({ size: 3, ttlMs: 60_000 });
    for (let i = 1; i <= 7; i++) history.append(update('a', String(i)));
    assert.equal(history.size, 3);
    const justInReach = history.readNow('a', { epoch: history.epoch, offset: 4 });
    assert.deepEqual(justInReach.kind === 'recovered' && commitsOf(justInReach.events), ['5', '6', '7']);
    assert.deepEqual(history.readNow('a', { epoch: history.epoch, offset: 3 }), {
      kind: 'resync',
      reason: 'history-gone',
      position: { epoch: history.epoch, offset: 7 },
    });
  });

  it('keeps no event older than history_ttl, but still knows where the library stands', () => {
    const time = clock();
    const history = new MemoryHistory({ size: 100, ttlMs: 10_000 }, time.now);
    history.append(update('a', '1'));
    time.advance(6_000);
    history.append(update('a', '2'));
    time.advance(6_000);
    assert.equal(history.readNow('a', { epoch: history.epoch, offset: 0 }).kind, 'resync');
    const read = history.readNow('a', { epoch: history.epoch, offset: 1 });
    assert.deepEqual(read.kind === 'recovered' && commitsOf(read.events), ['2']);
    time.advance(6_000);
    assert.deepEqual(history.readNow('a', { epoch: history.epoch, offset: 2 }), { kind: 'recovered', position: { epoch: history.epoch, offset: 2 }, events: [] });
    assert.equal(history.readNow('a', { epoch: history.epoch, offset: 1 }).kind, 'resync');
    // Offsets go on from where they were: they never restart within an epoch.
    assert.equal(history.append(update('a', '3')).position?.offset, 3);
  });

  it('a ring that emptied by age and fills again keeps its order', () => {
    const time = clock();
    const history = new MemoryHistory({ size: 4, ttlMs: 10_000 }, time.now);
    for (const c of ['1', '2', '3']) history.append(update('a', c));
    time.advance(5_000);
    for (const c of ['4', '5']) history.append(update('a', c));
    time.advance(6_000); // 1-3 expire
    for (const c of ['6', '7', '8']) history.append(update('a', c));
    const read = history.readNow('a', { epoch: history.epoch, offset: 4 });
    assert.deepEqual(read.kind === 'recovered' && commitsOf(read.events), ['5', '6', '7', '8']);
  });

  it('another epoch (a restarted server) or a position never given out is answered with a resync', () => {
    const history = new MemoryHistory({ size: 10, ttlMs: 60_000 });
    history.append(update('a', '1'));
    const restarted = new MemoryHistory({ size: 10, ttlMs: 60_000 });
    assert.notEqual(restarted.epoch, history.epoch);
    assert.equal(restarted.readNow('a', { epoch: history.epoch, offset: 1 }).kind === 'resync' && (restarted.readNow('a', { epoch: history.epoch, offset: 1 }) as { reason: string }).reason, 'epoch-changed');
    assert.deepEqual(history.readNow('a', { epoch: history.epoch, offset: 5 }), { kind: 'resync', reason: 'unknown-position', position: { epoch: history.epoch, offset: 1 } });
  });

  it('history_size 0 keeps nothing: only a client that missed nothing recovers', () => {
    const history = new MemoryHistory({ size: 0, ttlMs: 60_000 });
    history.append(update('a', '1'));
    assert.equal(history.size, 0);
    assert.equal(history.readNow('a', { epoch: history.epoch, offset: 0 }).kind, 'resync');
    assert.equal(history.readNow('a', { epoch: history.epoch, offset: 1 }).kind, 'recovered');
  });

  it('a mark of events accepted alone (in no history) after the position is answered with a resync', () => {
    const e = (offset: number): LibraryEvent => ({ ...update('a', String(offset)), position: { epoch: 'E', offset } });
    assert.deepEqual(judgeRecovery({ epoch: 'E', top: 3, events: [e(1), e(3)], unshared: [2] }, { epoch: 'E', offset: 1 }), {
      kind: 'resync',
      reason: 'events-not-shared',
      position: { epoch: 'E', offset: 3 },
    });
    const after = judgeRecovery({ epoch: 'E', top: 3, events: [e(1), e(3)], unshared: [2] }, { epoch: 'E', offset: 2 });
    assert.equal(after.kind === 'recovered' && after.events.length, 1);
  });

  it('a position from before a range a failover lost is answered with history-lost; one after it recovers', () => {
    const e = (offset: number): LibraryEvent => ({ ...update('a', String(offset)), position: { epoch: 'E', offset } });
    // The promoted replica had offsets up to 2; a node had seen 5, so 6 marks the loss and 7 is the next event.
    const snapshot = { epoch: 'E', top: 7, events: [e(1), e(2), e(7)], lost: [6] };
    for (const offset of [2, 4, 5]) {
      assert.deepEqual(judgeRecovery(snapshot, { epoch: 'E', offset }), { kind: 'resync', reason: 'history-lost', position: { epoch: 'E', offset: 7 } });
    }
    const after = judgeRecovery(snapshot, { epoch: 'E', offset: 6 });
    assert.deepEqual(after.kind === 'recovered' && after.events.map((event) => event.position?.offset), [7]);
  });

  it('judges a snapshot with a hole in it as gone, never as a partial replay', () => {
    const e = (offset: number): LibraryEvent => ({ ...update('a', String(offset)), position: { epoch: 'E', offset } });
    assert.equal(judgeRecovery({ epoch: 'E', top: 4, events: [e(1), e(3), e(4)] }, { epoch: 'E', offset: 1 }).kind, 'resync');
    assert.equal(judgeRecovery({ epoch: 'E', top: 4, events: [e(2), e(3), e(4)] }, { epoch: 'E', offset: 1 }).kind, 'recovered');
  });
});

describe('positions on the wire', () => {
  it('a positioned frame is the stock frame with the position as its last member', () => {
    const body = `{"type":"repo-update","content":{ "repo_id": "a", "commit_id": "c", "n": 12345678901234567890 }}`;
    const event = { ...parseEvent(body), position: { epoch: 'k3x9q2', offset: 18 } };
    const message = positionedMessage(event);
    assert.equal(message.frame.toString(), `{"type":"repo-update","content":{ "repo_id": "a", "commit_id": "c", "n": 12345678901234567890 },"position":{"epoch":"k3x9q2","offset":18}}`);
    assert.deepEqual({ kind: message.kind, repoId: message.repoId, position: message.position }, { kind: 'event', repoId: 'a', position: { epoch: 'k3x9q2', offset: 18 } });
    assert.equal(positionedMessage(event), positionedMessage(event), 'encoded once');
    const unpositioned = parseEvent(body);
    assert.equal(positionedMessage(unpositioned).frame, unpositioned.frame);
    assert.equal(positionedMessage(unpositioned).position, undefined);
  });

  it('subscribed and resync name the library, the position and the reason', () => {
    assert.deepEqual(JSON.parse(encodeSubscribed('a', { epoch: 'E', offset: 3 }).frame.toString()), {
      type: 'subscribed',
      content: { repo_id: 'a', position: { epoch: 'E', offset: 3 } },
    });
    assert.deepEqual(JSON.parse(encodeResync('a', 'history-gone', { epoch: 'E', offset: 9 }).frame.toString()), {
      type: 'resync',
      content: { repo_id: 'a', reason: 'history-gone', position: { epoch: 'E', offset: 9 } },
    });
    assert.deepEqual(JSON.parse(encodeResync('a', 'history-unavailable', null).frame.toString()).content.position, null);
  });

  it('a subscribe entry may carry since; one that is not a position is kept as null', () => {
    const message = parseClientMessage(
      JSON.stringify({
        type: 'subscribe',
        content: {
          repos: [
            { id: 'a', jwt_token: 't', since: { epoch: 'E', offset: 4 } },
            { id: 'b', jwt_token: 't', since: { epoch: 'E', offset: -1 } },
            { id: 'c', jwt_token: 't' },
          ],
        },
      }),
    );
    assert.equal(message.type, 'subscribe');
    const entries = message.type === 'subscribe' ? message.entries : [];
    assert.deepEqual(entries[0]!.since, { epoch: 'E', offset: 4 });
    assert.equal(entries[1]!.since, null);
    assert.ok(!('since' in entries[2]!));
    for (const bad of [null, 'E:4', { epoch: '', offset: 1 }, { epoch: 'E', offset: 1.5 }, { epoch: 'x'.repeat(65), offset: 1 }]) {
      assert.equal(parsePosition(bad), null, JSON.stringify(bad));
    }
  });
});

class PositionedSubscriber implements Subscriber {
  static next = 1000;
  readonly id = PositionedSubscriber.next++;
  readonly positioned = true;
  readonly received: Array<{ type: string; content: Record<string, unknown>; position?: Position }> = [];
  send(message: Outgoing): void {
    const parsed = JSON.parse(message.frame.toString()) as { type: string; content: Record<string, unknown>; position?: Position };
    // What the hub says a message is must be what its frame says: transports rely on it.
    const framePosition = parsed.position ?? (parsed.content['position'] as Position | null | undefined) ?? undefined;
    assert.deepEqual(message.position, framePosition, 'the position handed along is the one in the frame');
    assert.equal(message.repoId, parsed.content['repo_id']);
    assert.equal(message.kind, ['subscribed', 'resync', 'jwt-expired', 'error'].includes(parsed.type) ? parsed.type : 'event');
    this.received.push(parsed);
  }
  /** `type:commit@offset` for events, `subscribed@offset`, `resync:reason@offset`. */
  log(): string[] {
    return this.received.map((m) => {
      const at = (m.position ?? (m.content['position'] as Position | null))?.offset ?? 'null';
      if (m.type === 'subscribed') return `subscribed@${at}`;
      if (m.type === 'resync') return `resync:${String(m.content['reason'])}@${at}`;
      return `${String(m.content['commit_id'] ?? m.type)}@${at}`;
    });
  }
}

/** A history whose reads the test releases by hand, over a real memory history. */
class SlowHistory implements EventHistory {
  readonly pending: Array<() => void> = [];
  constructor(readonly inner: MemoryHistory) {}
  read(repoId: string, since: Position | null): Promise<HistoryRead> {
    return new Promise((resolve) => this.pending.push(() => resolve(this.inner.readNow(repoId, since))));
  }
  release(): void {
    for (const go of this.pending.splice(0)) go();
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('hub: replay, then live', () => {
  function setUp(size = 100) {
    const history = new MemoryHistory({ size, ttlMs: 60_000 });
    const slow = new SlowHistory(history);
    const hub = new Hub({ groups: null, logger: silent, history: slow });
    const publish = (repoId: string, commit: string): void => hub.publish(history.append(update(repoId, commit)));
    return { history, slow, hub, publish };
  }

  it('a client returning with since gets what it missed, then subscribed, then live events: no gap, no duplicate', async () => {
    const { history, slow, hub, publish } = setUp();
    for (const c of ['1', '2', '3']) publish('a', c);
    const client = new PositionedSubscriber();
    hub.subscribe(client, { repoId: 'a', username: 'u', expiresAt: farFuture }, { epoch: history.epoch, offset: 1 });
    // Published while the history is being read: held, then sent once, after the replay.
    publish('a', '4');
    slow.release();
    await tick();
    publish('a', '5');
    assert.deepEqual(client.log(), ['2@2', '3@3', '4@4', 'subscribed@4', '5@5']);
  });

  it('without since, subscribed tells where the library stands; events in flight at that moment are not repeated', async () => {
    const { slow, hub, publish } = setUp();
    publish('a', '1');
    const client = new PositionedSubscriber();
    hub.subscribe(client, { repoId: 'a', username: 'u', expiresAt: farFuture });
    slow.release();
    await tick();
    publish('a', '2');
    assert.deepEqual(client.log(), ['subscribed@1', '2@2']);
  });

  it('a client further back than the history is told to resync, then gets live events', async () => {
    const { history, slow, hub, publish } = setUp(2);
    for (const c of ['1', '2', '3', '4']) publish('a', c);
    const client = new PositionedSubscriber();
    hub.subscribe(client, { repoId: 'a', username: 'u', expiresAt: farFuture }, { epoch: history.epoch, offset: 1 });
    slow.release();
    await tick();
    publish('a', '5');
    assert.deepEqual(client.log(), ['resync:history-gone@4', '5@5']);
  });

  it('a position from another epoch, or a since that is not a position, is answered with resync', async () => {
    const { slow, hub, publish } = setUp();
    publish('a', '1');
    const client = new PositionedSubscriber();
    hub.subscribe(client, { repoId: 'a', username: 'u', expiresAt: farFuture }, { epoch: 'gone', offset: 1 });
    hub.subscribe(client, { repoId: 'b', username: 'u', expiresAt: farFuture }, null);
    slow.release();
    await tick();
    assert.deepEqual(client.log().sort(), ['resync:epoch-changed@1', 'resync:unknown-position@0']);
  });

  it('a replay skips what was not meant for the user, as live delivery does', async () => {
    const { history, slow, hub } = setUp();
    const perm = (user: string): LibraryEvent =>
      history.append(parseEvent(JSON.stringify({ type: 'folder-perm-changed', content: { repo_id: 'a', path: '/p', type: 'user', change_event: 'add', user, group: -1, perm: 'r' } })));
    hub.publish(perm('bob'));
    hub.publish(perm('alice'));
    const alice = new PositionedSubscriber();
    hub.subscribe(alice, { repoId: 'a', username: 'alice', expiresAt: farFuture }, { epoch: history.epoch, offset: 0 });
    slow.release();
    await tick();
    hub.publish(perm('bob'));
    hub.publish(history.append(update('a', 'x')));
    assert.deepEqual(alice.log(), ['folder-perm-changed@2', 'subscribed@2', 'x@4']);
  });

  it('stock subscribers keep getting the stock frame, byte for byte', () => {
    const { hub, history } = setUp();
    const received: Buffer[] = [];
    hub.subscribe({ id: 1, send: ({ frame }) => received.push(frame) }, { repoId: 'a', username: 'u', expiresAt: farFuture }, { epoch: 'x', offset: 1 });
    const event = history.append(update('a', '1'));
    hub.publish(event);
    assert.equal(received.length, 1);
    assert.equal(received[0], event.frame);
  });

  it('a live event that skips offsets (this node missed some) starts a catch-up from the history', async () => {
    const { history, slow, hub, publish } = setUp();
    const client = new PositionedSubscriber();
    hub.subscribe(client, { repoId: 'a', username: 'u', expiresAt: farFuture });
    slow.release();
    await tick();
    publish('a', '1');
    history.append(update('a', '2')); // accepted elsewhere, never reached this node
    publish('a', '3');
    slow.release();
    await tick();
    publish('a', '4');
    assert.deepEqual(client.log(), ['subscribed@0', '1@1', '2@2', '3@3', 'subscribed@3', '4@4']);
  });

  it('catchUp after a backplane outage replays from the last position each subscriber was given', async () => {
    const { history, slow, hub, publish } = setUp();
    const client = new PositionedSubscriber();
    hub.subscribe(client, { repoId: 'a', username: 'u', expiresAt: farFuture });
    slow.release();
    await tick();
    publish('a', '1');
    history.append(update('a', '2'));
    history.append(update('a', '3'));
    hub.catchUp();
    slow.release();
    await tick();
    assert.deepEqual(client.log(), ['subscribed@0', '1@1', '2@2', '3@3', 'subscribed@3']);
    assert.equal(hub.positionedSubscriptions, 1);
    hub.removeSubscriber(client);
    assert.equal(hub.positionedSubscriptions, 0);
  });

  it('a catch-up asked for while a read is in flight runs once that read is done', async () => {
    const { slow, hub, publish, history } = setUp();
    const client = new PositionedSubscriber();
    hub.subscribe(client, { repoId: 'a', username: 'u', expiresAt: farFuture });
    hub.catchUp();
    slow.release();
    await tick();
    history.append(update('a', '1')); // accepted elsewhere while this node was away
    slow.release();
    await tick();
    publish('a', '2');
    assert.deepEqual(client.log(), ['subscribed@0', '1@1', 'subscribed@1', '2@2']);
  });

  it('resync tells the positioned subscribers of the named libraries where their library stands', async () => {
    const { slow, hub, publish } = setUp();
    const [onA, onB] = [new PositionedSubscriber(), new PositionedSubscriber()];
    hub.subscribe(onA, { repoId: 'a', username: 'u', expiresAt: farFuture });
    hub.subscribe(onB, { repoId: 'b', username: 'u', expiresAt: farFuture });
    slow.release();
    await tick();
    publish('a', '1');
    hub.resync(new Set(['a']), 'events-not-shared');
    slow.release();
    await tick();
    publish('a', '2');
    assert.deepEqual(onA.log(), ['subscribed@0', '1@1', 'resync:events-not-shared@1', '2@2']);
    assert.deepEqual(onB.log(), ['subscribed@0']);
  });

  it('renewing a token without since goes on from where the subscription was, losing nothing in flight', async () => {
    const { slow, hub, publish, history } = setUp();
    const client = new PositionedSubscriber();
    hub.subscribe(client, { repoId: 'a', username: 'u', expiresAt: farFuture });
    slow.release();
    await tick();
    publish('a', '1');
    history.append(update('a', '2')); // numbered, not yet arrived here
    hub.subscribe(client, { repoId: 'a', username: 'u', expiresAt: farFuture + 1 });
    slow.release();
    await tick();
    assert.deepEqual(client.log(), ['subscribed@0', '1@1', '2@2', 'subscribed@2']);
  });
});
