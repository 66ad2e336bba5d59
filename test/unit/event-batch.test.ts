import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { decodeEvent } from '../../src/backplane/backplane-message.js';
import type { PrimaryMessage } from '../../src/backplane/cluster-messages.js';
import { WorkerEventBatch } from '../../src/cluster/event-batch.js';
import { parseEvent, type LibraryEvent } from '../../src/protocol/event.js';

const REPO = 'b1b1b1b1-0000-4000-8000-000000000002';

class FakeWorker {
  readonly got: PrimaryMessage[] = [];
  connected = true;
  isConnected(): boolean {
    return this.connected;
  }
  send(message: PrimaryMessage): boolean {
    this.got.push(message);
    return true;
  }
}

function positioned(offset: number): LibraryEvent {
  const event = parseEvent(JSON.stringify({ type: 'repo-update', content: { repo_id: REPO, commit_id: `c${offset}` } }));
  return { ...event, position: { epoch: 'e', offset } };
}

/** Each message a worker got: its kind, and for `events` the offsets it carried. */
function summary(worker: FakeWorker): unknown[] {
  return worker.got.map((m) => (m.nsw === 'events' ? ['events', m.events.map((e) => decodeEvent(e).position?.offset)] : [m.nsw]));
}

describe("the primary's batch of events for its workers", () => {
  it('sends the events of one turn as one message per worker, in order, once', async () => {
    const workers = [new FakeWorker(), new FakeWorker(), new FakeWorker()];
    workers[2]!.connected = false;
    const batch = new WorkerEventBatch(() => workers);
    batch.add(positioned(1));
    batch.add(positioned(2));
    batch.add(positioned(3));
    assert.equal(workers[0]!.got.length, 0, 'nothing sent within the turn');
    await nextTurn();
    batch.add(positioned(4));
    await nextTurn();
    await nextTurn();
    for (const worker of workers.slice(0, 2)) {
      assert.deepEqual(summary(worker), [
        ['events', [1, 2, 3]],
        ['events', [4]],
      ]);
    }
    assert.equal(workers[2]!.got.length, 0, 'a disconnected worker is skipped');
    const sent = workers[0]!.got[0];
    assert.ok(sent?.nsw === 'events' && decodeEvent(sent.events[0]!).frame.toString().includes('"c1"'), 'the frame travels');
    assert.equal(sent, workers[1]!.got[0], 'encoded once: every worker is sent the same message');
  });

  it('sends the queued events before any other message, so a history answer comes after them', async () => {
    const worker = new FakeWorker();
    const batch = new WorkerEventBatch(() => [worker]);
    batch.add(positioned(1));
    batch.send({ nsw: 'followed?', id: 1 });
    batch.add(positioned(2));
    batch.flush();
    await nextTurn();
    assert.deepEqual(summary(worker), [['events', [1]], ['followed?'], ['events', [2]]]);
  });
});
