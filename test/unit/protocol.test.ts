import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseClientMessage, ProtocolError } from '../../src/protocol/client-message.js';
import { encodeJwtExpired, EventError, parseEvent } from '../../src/protocol/event.js';
import { rawMember } from '../../src/protocol/raw-json.js';

describe('client messages', () => {
  it('a subscribe may name many libraries', () => {
    const message = parseClientMessage('{"type":"subscribe","content":{"repos":[{"id":"r1","jwt_token":"t1"},{"id":"r2","jwt_token":"t2"}]}}');
    assert.deepEqual(message, { type: 'subscribe', entries: [{ repoId: 'r1', token: 't1' }, { repoId: 'r2', token: 't2' }], ignored: 0 });
  });

  it('a subscribe entry without a token is kept (it will be answered jwt-expired); one without an id is ignored', () => {
    const message = parseClientMessage('{"type":"subscribe","content":{"repos":[{"id":"r1"},{"jwt_token":"t"},"r3"]}}');
    assert.deepEqual(message, { type: 'subscribe', entries: [{ repoId: 'r1', token: null }], ignored: 2 });
  });

  it('unsubscribe takes objects (current clients) and plain ids (older servers)', () => {
    assert.deepEqual(parseClientMessage('{"type":"unsubscribe","content":{"repos":[{"id":"r1"},"r2",7]}}'), {
      type: 'unsubscribe',
      repoIds: ['r1', 'r2'],
      ignored: 1,
    });
  });

  it('malformed JSON, a missing type or missing repos is a malformed message', () => {
    for (const text of ['{', '[]', '{"type":1}', '{"type":"subscribe"}', '{"type":"subscribe","content":{"repos":{}}}']) {
      assert.throws(() => parseClientMessage(text), (err) => err instanceof ProtocolError && err.failure === 'malformed', text);
    }
  });

  it('an unknown type is reported as such', () => {
    assert.throws(() => parseClientMessage('{"type":"hello","content":{}}'), (err) => err instanceof ProtocolError && err.failure === 'unknown-type');
  });

  it('an id longer than any Seafile repo id is ignored', () => {
    const message = parseClientMessage(JSON.stringify({ type: 'unsubscribe', content: { repos: ['x'.repeat(256)] } }));
    assert.equal(message.type === 'unsubscribe' && message.ignored, 1);
  });
});

describe('publisher events', () => {
  it('the content is forwarded byte for byte: unknown fields, number formatting, non-ASCII', () => {
    const body = '{"type":"file-lock-changed","content":{"repo_id":"r1","path":"/Bücher/日本.txt","change_event":"locked","lock_user":"a@b.c","expire":1.50,"big":12345678901234567890}}';
    const event = parseEvent(body);
    assert.equal(
      event.frame.toString(),
      '{"type":"file-lock-changed","content":{"repo_id":"r1","path":"/Bücher/日本.txt","change_event":"locked","lock_user":"a@b.c","expire":1.50,"big":12345678901234567890}}',
    );
    assert.equal(event.repoId, 'r1');
    assert.deepEqual(event.audience, { kind: 'library' });
  });

  it('folder-perm-changed targets the user, else the group, else everyone', () => {
    const perm = (user: string, group: number) =>
      parseEvent(JSON.stringify({ type: 'folder-perm-changed', content: { repo_id: 'r', path: '/', type: 'user', change_event: 'add', user, group, perm: 'r' } })).audience;
    assert.deepEqual(perm('u@x.com', -1), { kind: 'user', username: 'u@x.com' });
    assert.deepEqual(perm('u@x.com', 5), { kind: 'user', username: 'u@x.com' });
    assert.deepEqual(perm('', 5), { kind: 'group', groupId: 5 });
    assert.deepEqual(perm('', -1), { kind: 'library' });
  });

  it('a folder-perm-changed without a usable group is refused rather than guessed', () => {
    assert.throws(() => parseEvent('{"type":"folder-perm-changed","content":{"repo_id":"r","user":""}}'), EventError);
    assert.throws(() => parseEvent('{"type":"folder-perm-changed","content":{"repo_id":"r","user":"","group":"5"}}'), EventError);
    assert.throws(() => parseEvent('{"type":"folder-perm-changed","content":{"repo_id":"r","user":3,"group":5}}'), EventError);
  });

  it('unknown event types with a repo_id are accepted for the library', () => {
    const event = parseEvent('{"type":"some-future-event","content":{"repo_id":"r9","x":[1,{"y":"}"}]}}');
    assert.equal(event.frame.toString(), '{"type":"some-future-event","content":{"repo_id":"r9","x":[1,{"y":"}"}]}}');
  });

  it('bad bodies are refused with a message naming what is missing', () => {
    const cases: Array<[string, RegExp]> = [
      ['not json', /not valid JSON/],
      ['[1]', /JSON object/],
      ['{"content":{"repo_id":"r"}}', /type/],
      ['{"type":"repo-update"}', /content/],
      ['{"type":"repo-update","content":{"commit_id":"c"}}', /repo_id/],
      ['{"type":"repo-update","content":{"repo_id":""}}', /repo_id/],
    ];
    for (const [body, message] of cases) assert.throws(() => parseEvent(body), message, body);
  });

  it('jwt-expired escapes the client-supplied repo id', () => {
    const { frame } = encodeJwtExpired('a"},"x":{"');
    assert.deepEqual(JSON.parse(frame.toString()), { type: 'jwt-expired', content: { repo_id: 'a"},"x":{"' } });
  });
});

describe('raw JSON members', () => {
  it('finds a member among others, with whitespace, escapes and nesting', () => {
    const text = ' { "a" : "x\\"}" , "content" :  {"k": [1, "]"], "s": "\\\\"}  , "z": null } ';
    assert.equal(rawMember(text, 'content'), '{"k": [1, "]"], "s": "\\\\"}');
    assert.equal(rawMember(text, 'z'), 'null');
    assert.equal(rawMember(text, 'missing'), null);
  });

  it('the last duplicate wins, as in JSON.parse', () => {
    assert.equal(rawMember('{"content":1,"content":{"b":2}}', 'content'), '{"b":2}');
  });

  it('agrees with JSON.parse on every member of a varied object', () => {
    const value = { a: 1, b: -2.5e3, c: 'q"\\/\u2028', d: [true, false, null, { e: [] }], f: {}, 'g"h': 'i' };
    const text = JSON.stringify(value, null, 2);
    for (const [name, member] of Object.entries(value)) assert.deepEqual(JSON.parse(rawMember(text, name)!), member, name);
  });
});
