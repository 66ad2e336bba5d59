import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackplaneMessageError, decodeBackplaneMessage, decodeEvent, encodeBackplaneMessage, encodeEvent, type BackplaneMessage } from '../../src/backplane/backplane-message.js';
import { decodeGapNotice, encodeGapNotice } from '../../src/backplane/gap-notice.js';
import { MemoryBackplane } from '../../src/backplane/memory-backplane.js';
import { backplaneChannel } from '../../src/backplane/open-backplane.js';
import { OriginSequences } from '../../src/backplane/origin-sequences.js';
import { reconnectDelay } from '../../src/backplane/reconnect-delay.js';
import { DEFAULT_HISTORY_LIMITS } from '../../src/history/event-history.js';
import { parseEvent, type LibraryEvent } from '../../src/protocol/event.js';

const REPO = '9c3e0c1a-5555-4b4b-9c9c-000000000001';

function message(event: LibraryEvent, seq = 1): BackplaneMessage {
  return { origin: 'web1:4242:9f3a0c', seq, acceptedAt: 1_732_600_000_000, event };
}

function header(fields: Record<string, unknown>, frame = '{"type":"repo-update","content":{}}'): Buffer {
  const base = { v: 1, origin: 'web1:1:aa', seq: 1, at: 1, type: 'repo-update', repo: REPO, audience: { kind: 'library' } };
  return Buffer.from(`${JSON.stringify({ ...base, ...fields })}\n${frame}`);
}

describe('backplane messages', () => {
  it('carry the frame byte for byte, newlines and big numbers included, with origin, sequence and audience', () => {
    const body = `{"type":"repo-update","content":{\n  "repo_id": "${REPO}",\n  "commit_id": "abc", "size": 12345678901234567890\n}}`;
    const event = parseEvent(body);
    const decoded = decodeBackplaneMessage(encodeBackplaneMessage(message(event, 17)));
    assert.equal(decoded.origin, 'web1:4242:9f3a0c');
    assert.equal(decoded.seq, 17);
    assert.equal(decoded.acceptedAt, 1_732_600_000_000);
    assert.equal(decoded.event.type, 'repo-update');
    assert.equal(decoded.event.repoId, REPO);
    assert.deepEqual(decoded.event.audience, { kind: 'library' });
    assert.ok(decoded.event.frame.equals(event.frame));
    assert.match(decoded.event.frame.toString(), /12345678901234567890/);
  });

  it('carry the position the Redis script appended to the header, and refuse a half one', () => {
    const event = { ...parseEvent(JSON.stringify({ type: 'repo-update', content: { repo_id: REPO } })), position: { epoch: 'k3x9q2Hs', offset: 18 } };
    const bytes = encodeBackplaneMessage(message(event));
    assert.match(bytes.toString(), /"audience":\{"kind":"library"\},"offset":18,"epoch":"k3x9q2Hs"\}\n\{"type"/);
    assert.deepEqual(decodeBackplaneMessage(bytes).event.position, { epoch: 'k3x9q2Hs', offset: 18 });
    assert.equal(decodeBackplaneMessage(encodeBackplaneMessage(message(parseEvent(JSON.stringify({ type: 'x', content: { repo_id: REPO } }))))).event.position, undefined);
    assert.throws(() => decodeBackplaneMessage(header({ offset: 3 })), /bad epoch/);
    assert.throws(() => decodeBackplaneMessage(header({ offset: 0, epoch: 'e' })), /bad offset/);
  });

  it('keep a user or a group audience', () => {
    const forUser = parseEvent(JSON.stringify({ type: 'folder-perm-changed', content: { repo_id: REPO, user: 'alice@example.com', group: -1 } }));
    const forGroup = parseEvent(JSON.stringify({ type: 'folder-perm-changed', content: { repo_id: REPO, user: '', group: 42 } }));
    assert.deepEqual(decodeBackplaneMessage(encodeBackplaneMessage(message(forUser))).event.audience, { kind: 'user', username: 'alice@example.com' });
    assert.deepEqual(decodeBackplaneMessage(encodeBackplaneMessage(message(forGroup))).event.audience, { kind: 'group', groupId: 42 });
  });

  it('carry an event between a cluster primary and its workers in the same form, without a sender', () => {
    const event = { ...parseEvent(JSON.stringify({ type: 'repo-update', content: { repo_id: REPO, commit_id: 'c' } })), position: { epoch: 'e1', offset: 3 } };
    const bytes = encodeEvent(event);
    assert.equal(bytes.toString(), `{"v":1,"type":"repo-update","repo":"${REPO}","audience":{"kind":"library"},"offset":3,"epoch":"e1"}\n${event.frame.toString()}`);
    // Over the IPC channel the bytes arrive as a Uint8Array.
    const decoded = decodeEvent(new Uint8Array(bytes));
    assert.deepEqual({ ...decoded, frame: decoded.frame.toString() }, { ...event, frame: event.frame.toString() });
    assert.throws(() => decodeBackplaneMessage(bytes), /bad origin/, 'between nodes the sender is required');
    assert.equal(decodeEvent(encodeBackplaneMessage(message(event))).repoId, REPO);
  });

  it('that are not ours are refused with a reason, never half-read', () => {
    const refused: Array<[Buffer, RegExp]> = [
      [Buffer.from('hello'), /no header line/],
      [Buffer.from('not json\n{}'), /not JSON/],
      [header({ v: 2 }), /unknown version 2/],
      [header({ seq: 0 }), /bad seq/],
      [header({ seq: 1.5 }), /bad seq/],
      [header({ origin: '' }), /bad origin/],
      [header({ repo: 7 }), /bad repo/],
      [header({ audience: { kind: 'group', groupId: 'x' } }), /bad audience/],
      [header({ audience: { kind: 'everyone' } }), /bad audience/],
      [header({}, ''), /no frame/],
    ];
    for (const [bytes, reason] of refused) {
      assert.throws(() => decodeBackplaneMessage(bytes), (err: unknown) => err instanceof BackplaneMessageError && reason.test(err.message), bytes.toString());
    }
  });
});

describe('origin sequences', () => {
  it('deliver each sequence number of an origin once, drop repeats and older ones, count the gaps', () => {
    const sequences = new OriginSequences(() => 0);
    assert.deepEqual(sequences.check('a', 5), { deliver: true, missed: 0 });
    assert.deepEqual(sequences.check('a', 6), { deliver: true, missed: 0 });
    assert.deepEqual(sequences.check('a', 6), { deliver: false });
    assert.deepEqual(sequences.check('a', 3), { deliver: false });
    assert.deepEqual(sequences.check('a', 10), { deliver: true, missed: 3 });
    assert.deepEqual(sequences.check('b', 1), { deliver: true, missed: 0 });
    assert.deepEqual(sequences.check('b', 2), { deliver: true, missed: 0 });
  });

  it('forget an origin not heard from for an hour (a restarted node is a new origin)', () => {
    let now = 0;
    const sequences = new OriginSequences(() => now);
    sequences.check('gone', 1);
    now = 30 * 60_000;
    sequences.check('alive', 1);
    now = 61 * 60_000;
    sequences.check('alive', 2);
    assert.equal(sequences.size, 1);
  });
});

describe('reconnect delay', () => {
  const policy = { baseMs: 100, maxMs: 5_000 };

  it('doubles from the base and never exceeds the cap', () => {
    const ceiling = (attempt: number): number => reconnectDelay(attempt, policy, () => 0.999999);
    assert.deepEqual([1, 2, 3, 4].map(ceiling), [100, 200, 400, 800]);
    assert.equal(ceiling(7), 5_000);
    assert.equal(ceiling(1_000_000), 5_000);
  });

  it('is jittered between half and all of its ceiling', () => {
    assert.equal(reconnectDelay(3, policy, () => 0), 200);
    assert.equal(reconnectDelay(3, policy, () => 0.5), 300);
    const seen = new Set(Array.from({ length: 50 }, () => reconnectDelay(10, policy)));
    assert.ok(seen.size > 1, 'every delay was the same: nodes would retry in step');
    for (const delay of seen) assert.ok(delay >= 2_500 && delay <= 5_000, String(delay));
  });
});

describe('memory backplane', () => {
  it('hands an event to this node at once, with the next position of its library, and is always connected', async () => {
    const delivered: LibraryEvent[] = [];
    const backplane = new MemoryBackplane('node', DEFAULT_HISTORY_LIMITS);
    await backplane.start(0, { deliver: (event) => delivered.push(event) });
    const event = parseEvent(JSON.stringify({ type: 'repo-update', content: { repo_id: REPO } }));
    backplane.publish(event);
    backplane.publish(event);
    backplane.publish(parseEvent(JSON.stringify({ type: 'repo-update', content: { repo_id: 'other' } })));
    assert.deepEqual(delivered[0], { ...event, position: { epoch: backplane.history.epoch, offset: 1 } });
    assert.deepEqual(delivered.map((e) => e.position?.offset), [1, 2, 1]);
    assert.ok(delivered[0]!.frame.equals(event.frame), 'the stock frame is untouched');
    const read = await backplane.history.read(REPO, { epoch: backplane.history.epoch, offset: 1 });
    assert.equal(read.kind, 'recovered');
    assert.deepEqual(read.kind === 'recovered' && read.events.map((e) => e.position?.offset), [2]);
    assert.equal(backplane.state, 'connected');
    await backplane.close();
    assert.equal(backplane.state, 'closed');
  });
});

describe('backplane channel', () => {
  it('is the same for nodes sharing a key, different for another deployment, and does not show the key', () => {
    const key = Buffer.from('shared-secret-key');
    assert.equal(backplaneChannel(key), backplaneChannel(Buffer.from('shared-secret-key')));
    assert.notEqual(backplaneChannel(key), backplaneChannel(Buffer.from('another-deployment')));
    assert.ok(!backplaneChannel(key).includes('shared-secret-key'));
  });
});

describe('gap notices', () => {
  it('carry the node, its libraries (or all) and the outage; a history loss has no outage', () => {
    const cutOff = { cutOff: 'another-node', node: 'web1:1:aa', libraries: new Set([REPO]), outageMs: 2_500 } as const;
    assert.deepEqual(decodeGapNotice(Buffer.from(encodeGapNotice(cutOff))), cutOff);
    const lost = { cutOff: 'history-lost', node: 'web1:1:aa', libraries: 'all', outageMs: 0 } as const;
    assert.deepEqual(decodeGapNotice(Buffer.from(encodeGapNotice(lost))), lost);
    assert.equal(encodeGapNotice(lost), '{"v":1,"node":"web1:1:aa","outageMs":0,"libraries":"all","lost":true}');
  });

  it('are null when not ours to read', () => {
    for (const bytes of ['not json', 'null', '{"v":2,"node":"n","libraries":"all"}', '{"v":1,"libraries":"all"}', '{"v":1,"node":"n","libraries":[1]}']) {
      assert.equal(decodeGapNotice(Buffer.from(bytes)), null, bytes);
    }
  });
});
