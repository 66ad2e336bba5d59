import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { decodeEvent, encodeEvent } from '../../src/backplane/backplane-message.js';
import { readToWire, type PrimaryMessage, type WorkerMessage } from '../../src/backplane/cluster-messages.js';
import type { BackplaneGap, BackplaneReceiver } from '../../src/backplane/backplane.js';
import { IpcBackplane } from '../../src/backplane/ipc-backplane.js';
import { MemoryHistory } from '../../src/history/memory-history.js';
import { parseEvent, type LibraryEvent } from '../../src/protocol/event.js';

const REPO = 'b1b1b1b1-0000-4000-8000-000000000001';

/** The worker's end of the IPC channel; `primary` says what the primary would. */
class FakeChannel extends EventEmitter {
  readonly sent: WorkerMessage[] = [];
  connected = true;
  send(message: WorkerMessage): boolean {
    this.sent.push(message);
    return true;
  }
  primary(message: PrimaryMessage): void {
    this.emit('message', message);
  }
}

function event(commit: string): LibraryEvent {
  return parseEvent(JSON.stringify({ type: 'repo-update', content: { repo_id: REPO, commit_id: commit } }));
}

interface Setup {
  channel: FakeChannel;
  backplane: IpcBackplane;
  delivered: LibraryEvent[];
  gaps: BackplaneGap[];
  sequencer: MemoryHistory;
  /** Starts the backplane with a receiver that records what it is handed. */
  start(): Promise<void>;
}

function setup(): Setup {
  const channel = new FakeChannel();
  const delivered: LibraryEvent[] = [];
  const gaps: BackplaneGap[] = [];
  const backplane = new IpcBackplane({
    nodeId: 'w1',
    channel,
    readTimeoutMs: 50,
  });
  const receiver: BackplaneReceiver = { deliver: (e) => delivered.push(e), onGap: (gap) => gaps.push(gap), followedLibraries: () => [REPO, 'other'] };
  // What the primary numbers with, and keeps.
  const sequencer = new MemoryHistory({ size: 100, ttlMs: 60_000 });
  return { channel, backplane, delivered, gaps, sequencer, start: () => backplane.start(1000, receiver) };
}

describe('the IPC backplane of a cluster worker', () => {
  it('hands its events to the primary and delivers only what the primary sends back, in its order', async () => {
    const { channel, backplane, start, delivered, sequencer } = setup();
    const starting = start();
    assert.deepEqual(channel.sent, [{ nsw: 'hello', id: 1 }]);
    channel.primary({ nsw: 'welcome', id: 1 });
    await starting;
    assert.equal(backplane.state, 'connected');

    backplane.publish(event('mine'));
    assert.equal(delivered.length, 0, 'not delivered before the primary numbered it');
    const published = channel.sent[1];
    assert.equal(published?.nsw, 'publish');

    // Another worker's event was numbered first.
    channel.primary({ nsw: 'events', events: [encodeEvent(sequencer.append(event('theirs')))] });
    // As the primary gets it: a Uint8Array, not a Buffer.
    if (published?.nsw === 'publish') channel.primary({ nsw: 'events', events: [encodeEvent(sequencer.append(decodeEvent(new Uint8Array(published.event))))] });
    assert.deepEqual(delivered.map((e) => [JSON.parse(e.frame.toString()).content.commit_id, e.position?.offset]), [['theirs', 1], ['mine', 2]]);
  });

  it('reads the history from the primary: the answer to each read goes to that read', async () => {
    const { channel, backplane, start, sequencer } = setup();
    const starting = start();
    channel.primary({ nsw: 'welcome', id: 1 });
    await starting;
    for (const commit of ['a', 'b', 'c']) sequencer.append(event(commit));
    const since = { epoch: sequencer.epoch, offset: 1 };
    const reading = backplane.history.read(REPO, since);
    const other = backplane.history.read(REPO, { epoch: 'another', offset: 1 });
    const [first, second] = channel.sent.slice(-2);
    assert.deepEqual(first, { nsw: 'read', id: 1, repoId: REPO, since });
    assert.equal(second?.nsw === 'read' && second.id, 2);
    // Answered out of order.
    channel.primary({ nsw: 'history', id: 2, read: readToWire(sequencer.readNow(REPO, { epoch: 'another', offset: 1 })) });
    channel.primary({ nsw: 'history', id: 1, read: readToWire(sequencer.readNow(REPO, since)) });
    const read = await reading;
    assert.equal(read.kind, 'recovered');
    if (read.kind === 'recovered') {
      assert.deepEqual(read.events.map((e) => [JSON.parse(e.frame.toString()).content.commit_id, e.position?.offset]), [['b', 2], ['c', 3]]);
      assert.deepEqual(read.position, { epoch: sequencer.epoch, offset: 3 });
    }
    const resync = await other;
    assert.equal(resync.kind === 'resync' && resync.reason, 'epoch-changed');
  });

  it('a read the primary never answers, or made without a primary, is a resync (history-unavailable), never a partial replay', async () => {
    const { channel, backplane, start } = setup();
    const starting = start();
    channel.primary({ nsw: 'welcome', id: 1 });
    await starting;
    const unanswered = await backplane.history.read(REPO, { epoch: 'e', offset: 1 });
    assert.deepEqual(unanswered, { kind: 'resync', reason: 'history-unavailable', position: null });
    channel.connected = false;
    const alone = await backplane.history.read(REPO, { epoch: 'e', offset: 1 });
    assert.deepEqual(alone, { kind: 'resync', reason: 'history-unavailable', position: null });
  });

  it('tells the primary which libraries its subscribers follow, and hands a gap the primary forwards to its own reaction', async () => {
    const { channel, backplane, start, gaps } = setup();
    const starting = start();
    channel.primary({ nsw: 'welcome', id: 1 });
    await starting;
    channel.primary({ nsw: 'followed?', id: 7 });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(channel.sent.at(-1), { nsw: 'followed', id: 7, libraries: [REPO, 'other'] });
    const gap: BackplaneGap = { cutOff: 'another-node', node: 'n2', libraries: new Set([REPO]), outageMs: 1200 };
    channel.primary({ nsw: 'gap', gap: structuredClone(gap) });
    channel.primary({ nsw: 'gap', gap: structuredClone({ ...gap, cutOff: 'this-node', libraries: 'all' }) });
    assert.deepEqual(gaps, [gap, { ...gap, cutOff: 'this-node', libraries: 'all' }]);
  });

  it('without its primary (channel closed) an event still reaches this worker, without a position', async () => {
    const { channel, backplane, start, delivered } = setup();
    const starting = start();
    channel.primary({ nsw: 'welcome', id: 1 });
    await starting;
    channel.connected = false;
    const sent = channel.sent.length;
    backplane.publish(event('alone'));
    assert.equal(delivered.length, 1);
    assert.equal(delivered[0]?.position, undefined);
    assert.equal(channel.sent.length, sent, 'nothing sent to a primary that is gone');
  });
});
