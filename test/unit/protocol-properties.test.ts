import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_REPO_ID_LENGTH, parseClientMessage, ProtocolError } from '../../src/protocol/client-message.js';
import { EventError, parseEvent, type Audience } from '../../src/protocol/event.js';
import { jsonNumber, jsonObjectWith, jsonSpace, jsonString, jsonStringOf, jsonText, member, anyString } from '../support/json-text.js';
import { check, outcome } from '../support/property.js';

/** Mutations of a text: a character dropped, inserted or replaced somewhere. */
function mutated(text: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.tuple(text, fc.nat(), fc.constantFrom('drop', 'insert', 'replace'), fc.constantFrom(...'{}[]",:\\ 0a-e.\u00e9\ud83d')).map(
    ([source, at, how, char]) => {
      const i = source.length === 0 ? 0 : at % source.length;
      if (how === 'drop') return source.slice(0, i) + source.slice(i + 1);
      if (how === 'insert') return source.slice(0, i) + char + source.slice(i);
      return source.slice(0, i) + char + source.slice(i + 1);
    },
  );
}

const repoIdValue = fc.oneof(fc.uuid(), fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }), fc.constant('x'.repeat(MAX_REPO_ID_LENGTH)));

describe('client message parser (properties)', () => {
  const messageLike = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 60 }),
    jsonText,
    fc.constantFrom('subscribe', 'unsubscribe', 'hello').chain((type) =>
      fc.oneof(
        fc.jsonValue({ maxDepth: 4 }).map((content) => JSON.stringify({ type, content })),
        fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 6 }).map((repos) => JSON.stringify({ type, content: { repos } })),
      ),
    ),
  );

  it('any text is either a typed message or a ProtocolError, never another exception', () => {
    check(
      fc.property(fc.oneof(messageLike, mutated(messageLike)), (text) => {
        const result = outcome(() => parseClientMessage(text));
        if (!result.ok) {
          assert.ok(result.error instanceof ProtocolError, `threw ${String(result.error)}`);
          assert.ok(['malformed', 'unknown-type'].includes(result.error.failure));
          return;
        }
        const message = result.value;
        if (message.type === 'subscribe') {
          for (const entry of message.entries) {
            assert.ok(entry.repoId.length > 0 && entry.repoId.length <= MAX_REPO_ID_LENGTH);
            assert.ok(entry.token === null || typeof entry.token === 'string');
          }
        } else {
          for (const id of message.repoIds) assert.ok(typeof id === 'string' && id.length > 0 && id.length <= MAX_REPO_ID_LENGTH);
        }
      }),
      1000,
    );
  });

  it('every repos entry is either subscribed with its own id and token, in order, or counted as ignored', () => {
    const entry = fc.oneof(
      fc.record({ id: repoIdValue, jwt_token: fc.string({ maxLength: 30 }) }),
      fc.record({ id: repoIdValue }),
      fc.record({ id: fc.jsonValue({ maxDepth: 1 }), jwt_token: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }),
      fc.jsonValue({ maxDepth: 1 }),
    );
    check(
      fc.property(fc.array(entry, { maxLength: 8 }), jsonSpace, (repos, space) => {
        const message = parseClientMessage(`{"type":"subscribe",${space}"content":{"repos":${JSON.stringify(repos)}}}`);
        assert.equal(message.type, 'subscribe');
        const expected = repos.flatMap((repo) => {
          if (typeof repo !== 'object' || repo === null || Array.isArray(repo)) return [];
          const { id, jwt_token: token } = repo as { id?: unknown; jwt_token?: unknown };
          if (typeof id !== 'string' || id === '' || id.length > MAX_REPO_ID_LENGTH) return [];
          return [{ repoId: id, token: typeof token === 'string' ? token : null }];
        });
        assert.deepEqual(message.entries, expected);
        assert.equal(message.ignored, repos.length - expected.length);
      }),
      800,
    );
  });

  it('unsubscribe takes ids in either form, in order, whatever the JSON spelling', () => {
    const id = jsonStringOf(repoIdValue);
    const form = fc.tuple(id, fc.boolean()).map(([repo, asObject]) => ({ repo, text: asObject ? `{"id":${repo.text}}` : repo.text }));
    check(
      fc.property(fc.array(form, { maxLength: 6 }), (entries) => {
        const message = parseClientMessage(`{"content":{"repos":[${entries.map((e) => e.text).join(',')}]},"type":"unsubscribe"}`);
        assert.deepEqual(message, { type: 'unsubscribe', repoIds: entries.map((e) => e.repo.value), ignored: 0 });
      }),
      500,
    );
  });
});

const KNOWN_TYPES = ['repo-update', 'file-lock-changed', 'folder-perm-changed', 'comment-update'];

describe('event parser (properties)', () => {
  const eventLike = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 60 }),
    jsonText,
    fc.record({ type: fc.oneof(fc.constantFrom(...KNOWN_TYPES), fc.jsonValue({ maxDepth: 1 })), content: fc.jsonValue({ maxDepth: 3 }) }, { requiredKeys: [] }).map((e) =>
      JSON.stringify(e),
    ),
    fc
      .record({
        type: fc.constant('folder-perm-changed'),
        content: fc.record({ repo_id: fc.oneof(fc.uuid(), fc.jsonValue({ maxDepth: 1 })), user: fc.jsonValue({ maxDepth: 1 }), group: fc.oneof(fc.integer(), fc.double(), fc.jsonValue({ maxDepth: 1 })) }, { requiredKeys: [] }),
      })
      .map((e) => JSON.stringify(e)),
  );

  it('any body is either an event whose frame is the body\'s type and content, or an EventError', () => {
    check(
      fc.property(fc.oneof(eventLike, mutated(eventLike)), (body) => {
        const result = outcome(() => parseEvent(body));
        if (!result.ok) {
          assert.ok(result.error instanceof EventError, `threw ${String(result.error)}`);
          return;
        }
        const event = result.value;
        // The endpoint decodes bodies as strict UTF-8: a lone surrogate never reaches the parser.
        if (/\p{Cs}/u.test(body)) return;
        const sent = JSON.parse(body) as { type: string; content: Record<string, unknown> };
        assert.deepEqual(JSON.parse(event.frame.toString('utf8')), { type: sent.type, content: sent.content });
        assert.equal(event.type, sent.type);
        assert.equal(event.repoId, sent.content['repo_id']);
      }),
      1000,
    );
  });

  const userText = fc.oneof(fc.constant('""'), fc.constant('null'), jsonString.map((s) => s.text));
  const groupText = fc.oneof(fc.constant('-1'), fc.integer({ min: -1, max: 2 ** 31 }).map(String));
  const typeString = fc.oneof(fc.constantFrom(...KNOWN_TYPES).chain((t) => jsonStringOf(fc.constant(t))), jsonStringOf(anyString.filter((t) => t !== '')));

  const publisherBody = typeString.chain((type) => {
    const perm = type.value === 'folder-perm-changed';
    const required = [member('repo_id', jsonStringOf(repoIdValue).map((s) => s.text))];
    if (perm) required.push(member('user', userText), member('group', groupText));
    return fc
      .tuple(
        jsonObjectWith(required, ['repo_id', 'user', 'group']),
        fc.option(jsonText, { nil: undefined }),
        fc.option(jsonText, { nil: undefined }),
        fc.array(fc.tuple(jsonString.filter((k) => k.value !== 'type' && k.value !== 'content'), jsonText), { maxLength: 3 }),
        fc.nat(),
        fc.nat(),
        jsonSpace,
        jsonSpace,
      )
      .map(([content, decoyContent, decoyType, extra, typeAt, contentAt, before, after]) => {
        // Earlier duplicates lose, as in JSON.parse; the real ones come last among their kind.
        const parts = extra.map(([key, value]) => `${key.text}:${value}`);
        if (decoyContent !== undefined) parts.splice(0, 0, `"content":${decoyContent}`);
        if (decoyType !== undefined) parts.splice(0, 0, `"type":${decoyType}`);
        const lastDecoy = (decoyContent !== undefined ? 1 : 0) + (decoyType !== undefined ? 1 : 0);
        const place = (at: number) => lastDecoy + (at % (parts.length - lastDecoy + 1));
        parts.splice(place(typeAt), 0, `"type"${before}:${after}${type.text}`);
        parts.splice(place(contentAt), 0, `"content":${content}`);
        return { body: `${before}{${parts.join(`,${after}`)}}${after}`, type: type.value, content };
      });
  });

  function expectedAudience(type: string, content: Record<string, unknown>): Audience {
    if (type !== 'folder-perm-changed') return { kind: 'library' };
    const { user, group } = content as { user: unknown; group: number };
    if (typeof user === 'string' && user !== '') return { kind: 'user', username: user };
    return group === -1 ? { kind: 'library' } : { kind: 'group', groupId: group };
  }

  it('a valid event\'s content reaches subscribers as the exact bytes the publisher sent', () => {
    check(
      fc.property(publisherBody, ({ body, type, content }) => {
        const event = parseEvent(body);
        const expected = Buffer.concat([Buffer.from(`{"type":${JSON.stringify(type)},"content":`), Buffer.from(content), Buffer.from('}')]);
        assert.ok(event.frame.equals(expected), `frame ${event.frame.toString()} is not ${expected.toString()}`);
        assert.ok(Buffer.from(body).includes(Buffer.from(content)), 'the content bytes are a slice of the body');
        const parsed = JSON.parse(content) as Record<string, unknown>;
        assert.equal(event.type, type);
        assert.equal(event.repoId, parsed['repo_id']);
        assert.deepEqual(event.audience, expectedAudience(type, parsed));
      }),
      1000,
    );
  });

  it('numbers keep their spelling (big integers, trailing zeros, exponents) in the forwarded content', () => {
    check(
      fc.property(fc.array(jsonNumber, { minLength: 1, maxLength: 5 }), (numbers) => {
        const content = `{"repo_id":"r","n":[${numbers.join(', ')}]}`;
        const event = parseEvent(`{"type":"repo-update","content":${content}}`);
        assert.equal(event.frame.toString(), `{"type":"repo-update","content":${content}}`);
      }),
      300,
    );
  });
});
