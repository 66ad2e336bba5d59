import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { toWire, type PrimaryMessage, type WorkerMessage } from '../../src/backplane/cluster-messages.js';
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

function setup(): { channel: FakeChannel; backplane: IpcBackplane; delivered: LibraryEvent[]; sequencer: MemoryHistory } {
  const channel = new FakeChannel();
  const delivered: LibraryEvent[] = [];
  const backplane = new IpcBackplane({ nodeId: 'w1', workerId: 1, channel, deliver: (e) => delivered.push(e), history: { size: 100, ttlMs: 60_000 } });
  // What the primary numbers with.
  const sequencer = new MemoryHistory({ size: 0, ttlMs: 60_000 });
  return { channel, backplane, delivered, sequencer };
}

describe('the IPC backplane of a cluster worker', () => {
  it('hands its events to the primary and delivers only what the primary sends back, in its order', async () => {
    const { channel, backplane, delivered, sequencer } = setup();
    const starting = backplane.start(1000);
    assert.deepEqual(channel.sent, [{ nsw: 'hello' }]);
    channel.primary({ nsw: 'welcome', epoch: sequencer.epoch, state: 'connected' });
    await starting;
    assert.equal(backplane.state, 'connected');

    backplane.publish(event('mine'));
    assert.equal(delivered.length, 0, 'not delivered before the primary numbered it');
    const published = channel.sent[1];
    assert.equal(published?.nsw, 'publish');

    // Another worker's event was numbered first.
    channel.primary({ nsw: 'event', event: toWire(sequencer.append(event('theirs'))), origin: 2 });
    if (published?.nsw === 'publish') channel.primary({ nsw: 'event', event: toWire(sequencer.append({ ...published.event, frame: Buffer.from(published.event.frame) })), origin: 1 });
    assert.deepEqual(delivered.map((e) => [JSON.parse(e.frame.toString()).content.commit_id, e.position?.offset]), [['theirs', 1], ['mine', 2]]);
    assert.equal(backplane.stats.eventsShared, 1);
    assert.equal(backplane.stats.eventsReceived, 1);
  });

  it('keeps a copy of the history in the primary epoch: a positioned client recovers from this worker', async () => {
    const { channel, backplane, sequencer } = setup();
    const starting = backplane.start(1000);
    channel.primary({ nsw: 'welcome', epoch: sequencer.epoch, state: 'connected' });
    await starting;
    for (const commit of ['a', 'b', 'c']) channel.primary({ nsw: 'event', event: toWire(sequencer.append(event(commit))), origin: 2 });
    const read = await backplane.history.read(REPO, { epoch: sequencer.epoch, offset: 1 });
    assert.equal(read.kind, 'recovered');
    if (read.kind === 'recovered') {
      assert.deepEqual(read.events.map((e) => e.position?.offset), [2, 3]);
      assert.deepEqual(read.position, { epoch: sequencer.epoch, offset: 3 });
    }
    const other = await backplane.history.read(REPO, { epoch: 'another', offset: 1 });
    assert.equal(other.kind === 'resync' && other.reason, 'epoch-changed');
  });

  it('without its primary (channel closed) an event still reaches this worker, without a position', async () => {
    const { channel, backplane, delivered } = setup();
    channel.connected = false;
    backplane.publish(event('alone'));
    assert.equal(delivered.length, 1);
    assert.equal(delivered[0]?.position, undefined);
    assert.equal(backplane.stats.eventsNotShared, 1);
  });
});
