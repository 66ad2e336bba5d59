import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { signToken, TokenError, verifyToken, type Claims } from '../../src/auth/jwt.js';
import { authenticatePublisher, PublisherAuthError, type PublisherHeaders } from '../../src/auth/publisher-auth.js';
import { SubscribeRefused, verifySubscriberToken } from '../../src/auth/subscriber-token.js';
import { check, outcome } from '../support/property.js';

const KEY = Buffer.from('M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F');
const NOW = 1_700_000_000;
const NOW_MS = NOW * 1000;

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const hmac = (key: Buffer, input: string) => createHmac('sha256', key).update(input).digest('base64url');

/** A token over any header and payload text, signed with `key` as HS256 would be. */
function forge(header: string, payload: string, key: Buffer): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${hmac(key, input)}`;
}

const keys = fc.oneof(fc.string({ minLength: 1, maxLength: 50 }), fc.uint8Array({ minLength: 1, maxLength: 64 }).map((a) => Buffer.from(a).toString('latin1')));
const otherKey = keys.map((k) => Buffer.from(k)).filter((k) => !k.equals(KEY));
const username = fc.oneof(fc.emailAddress(), fc.string({ unit: 'binary', maxLength: 20 }));
const repoId = fc.oneof(fc.uuid(), fc.string({ minLength: 1, maxLength: 40 }));
const future = fc.integer({ min: NOW + 1, max: NOW + 10 * 365 * 86400 });
const past = fc.integer({ min: 0, max: NOW });
const subscriberClaims = fc.record({ repo_id: repoId, username, exp: future });
const base64urlText = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), maxLength: 60 });
const tokenLike = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.array(base64urlText, { minLength: 1, maxLength: 5 }).map((parts) => parts.join('.')),
  fc.tuple(fc.jsonValue({ maxDepth: 2 }), fc.jsonValue({ maxDepth: 2 }), base64urlText).map(([h, p, s]) => `${b64(h)}.${b64(p)}.${s}`),
  fc.tuple(fc.jsonValue({ maxDepth: 2 }), fc.jsonValue({ maxDepth: 2 })).map(([h, p]) => forge(JSON.stringify(h), JSON.stringify(p), KEY)),
);

function reasonOf(fn: () => unknown): string {
  const result = outcome(fn);
  assert.ok(!result.ok, 'expected a refusal, got acceptance');
  const { error } = result;
  if (error instanceof TokenError || error instanceof SubscribeRefused || error instanceof PublisherAuthError) return error.reason;
  throw error;
}

describe('HS256 token checks (properties)', () => {
  it('any token text verifies or is refused with a TokenError, never another exception', () => {
    check(
      fc.property(tokenLike, fc.integer({ min: 0, max: 2 ** 40 }), (token, now) => {
        const result = outcome(() => verifyToken(token, KEY, now));
        if (result.ok) {
          const exp = result.value['exp'];
          assert.ok(typeof exp === 'number' && exp > now, 'an accepted token has a future exp');
          return;
        }
        assert.ok(result.error instanceof TokenError, `threw ${String(result.error)}`);
      }),
      600,
    );
  });

  it('a token signed with the configured key verifies and returns its claims', () => {
    check(
      fc.property(subscriberClaims, fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }), (claims, extra) => {
        const all: Claims = { ...extra, ...claims };
        assert.deepEqual(verifyToken(signToken(all, KEY), KEY, NOW), JSON.parse(JSON.stringify(all)));
      }),
      300,
    );
  });

  it('any header whose alg is not exactly "HS256" is refused, whatever the signature (alg "none" included)', () => {
    const alg = fc.oneof(
      fc.constantFrom('none', 'None', 'NONE', 'hs256', 'HS256 ', ' HS256', 'HS384', 'HS512', 'RS256', 'ES256', 'PS256', ''),
      fc.string({ maxLength: 8 }).filter((a) => a !== 'HS256'),
      fc.jsonValue({ maxDepth: 1 }).filter((a) => a !== 'HS256'),
    );
    const header = fc.tuple(alg, fc.boolean(), fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 2 })).map(([a, withAlg, extra]) =>
      JSON.stringify(withAlg ? { ...extra, alg: a } : Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'alg'))),
    );
    const signature = fc.oneof(fc.constant('signed'), fc.constant(''), base64urlText);
    check(
      fc.property(header, subscriberClaims, signature, (headerText, claims, how) => {
        const signed = forge(headerText, JSON.stringify(claims), KEY);
        const token = how === 'signed' ? signed : `${signed.slice(0, signed.lastIndexOf('.'))}.${how}`;
        assert.equal(reasonOf(() => verifyToken(token, KEY, NOW)), 'algorithm');
      }),
      500,
    );
  });

  it('a token signed with any other key is refused as a bad signature', () => {
    check(
      fc.property(subscriberClaims, otherKey, (claims, key) => {
        assert.equal(reasonOf(() => verifyToken(signToken(claims, key), KEY, NOW)), 'signature');
      }),
      300,
    );
  });

  it('a token changed in any one character of its payload or signature is refused', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. ';
    check(
      fc.property(subscriberClaims, fc.nat(), fc.constantFrom(...alphabet), (claims, at, char) => {
        const token = signToken(claims, KEY);
        const start = token.indexOf('.') + 1;
        const i = start + (at % (token.length - start));
        fc.pre(token[i] !== char);
        const tampered = token.slice(0, i) + char + token.slice(i + 1);
        assert.ok(['signature', 'malformed'].includes(reasonOf(() => verifyToken(tampered, KEY, NOW))), tampered);
      }),
      600,
    );
  });

  it('a payload with changed claims, re-encoded without the key, is refused', () => {
    check(
      fc.property(subscriberClaims, subscriberClaims, (claims, forged) => {
        fc.pre(JSON.stringify(claims) !== JSON.stringify(forged));
        const [header, , signature] = signToken(claims, KEY).split('.');
        assert.equal(reasonOf(() => verifyToken(`${header}.${b64(forged)}.${signature}`, KEY, NOW)), 'signature');
      }),
      300,
    );
  });

  it('a token expires exactly at exp, and one without a numeric exp is refused', () => {
    check(
      fc.property(past, fc.jsonValue({ maxDepth: 1 }).filter((v) => typeof v !== 'number'), (exp, notNumber) => {
        assert.equal(reasonOf(() => verifyToken(signToken({ exp }, KEY), KEY, NOW)), 'expired');
        assert.equal(reasonOf(() => verifyToken(signToken({ exp: notNumber }, KEY), KEY, NOW)), 'malformed');
      }),
      300,
    );
  });
});

describe('subscriber tokens (properties)', () => {
  it('a valid token grants exactly its own library to its own user until exp', () => {
    check(
      fc.property(subscriberClaims, (claims) => {
        assert.deepEqual(verifySubscriberToken(signToken(claims, KEY), claims.repo_id, KEY, NOW_MS), {
          repoId: claims.repo_id,
          username: claims.username,
          expiresAt: claims.exp * 1000,
        });
      }),
      300,
    );
  });

  it('a token for one library never subscribes another', () => {
    check(
      fc.property(subscriberClaims, repoId, (claims, other) => {
        fc.pre(other !== claims.repo_id);
        assert.equal(reasonOf(() => verifySubscriberToken(signToken(claims, KEY), other, KEY, NOW_MS)), 'wrong-library');
      }),
      300,
    );
  });

  it('any token and library id is either a grant for that id or a SubscribeRefused', () => {
    check(
      fc.property(fc.oneof(tokenLike, subscriberClaims.map((c) => signToken(c, KEY))), repoId, (token, id) => {
        const result = outcome(() => verifySubscriberToken(token, id, KEY, NOW_MS));
        if (result.ok) {
          assert.equal(result.value.repoId, id);
          assert.ok(result.value.expiresAt > NOW_MS);
        } else {
          assert.ok(result.error instanceof SubscribeRefused, `threw ${String(result.error)}`);
        }
      }),
      500,
    );
  });
});

describe('publisher auth (properties)', () => {
  const staticToken = fc.option(fc.string({ minLength: 1, maxLength: 30 }), { nil: null });
  const publisherClaims = fc.oneof(
    fc.record({ exp: future }),
    fc.record({ exp: future, repo_id: repoId, username: fc.constant('') }),
  );
  const credential = (secret: string | null) =>
    fc.oneof(
      tokenLike,
      publisherClaims.map((c) => signToken(c, KEY)),
      subscriberClaims.map((c) => signToken(c, KEY)),
      fc.record({ exp: past }).map((c) => signToken(c, KEY)),
      fc.tuple(publisherClaims, otherKey).map(([c, k]) => signToken(c, k)),
      fc.constant(secret ?? ''),
    );
  const headers = (secret: string | null): fc.Arbitrary<PublisherHeaders> =>
    fc.record(
      {
        authorization: fc.oneof(
          fc.string({ maxLength: 20 }),
          fc.tuple(fc.constantFrom('Token', 'Bearer', 'token', '', 'Basic'), fc.constantFrom(' ', '  ', '\t'), credential(secret)).map(([s, w, t]) => `${s}${w}${t}`),
        ),
        'seafile-repo-token': fc.oneof(credential(secret), fc.array(credential(secret), { maxLength: 2 })),
      },
      { requiredKeys: [] },
    );

  /** What the server must accept: the static secret as Seafile-Repo-Token, or an unexpired key-signed JWT without a username. */
  function mayPublish(token: string, secret: string | null): boolean {
    if (secret !== null && token === secret) return true;
    const claims = outcome(() => verifyToken(token, KEY, NOW));
    if (!claims.ok) return false;
    const user = claims.value['username'];
    return !(typeof user === 'string' && user !== '');
  }

  it('accepts exactly the credentials a publisher may hold; refuses the rest with 401/403 and a typed error', () => {
    check(
      fc.property(staticToken.chain((secret) => fc.tuple(fc.constant(secret), headers(secret))), ([secret, given]) => {
        const result = outcome(() => authenticatePublisher(given, { key: KEY, staticToken: secret }, NOW_MS));
        const authorization = given.authorization?.trim() ?? '';
        const repoToken = Array.isArray(given['seafile-repo-token']) ? given['seafile-repo-token'][0] : given['seafile-repo-token'];
        let expected: boolean;
        if (authorization !== '') {
          const words = authorization.split(/\s+/);
          expected = mayPublish(words[1] ?? words[0]!, null);
        } else {
          expected = repoToken !== undefined && repoToken !== '' && mayPublish(repoToken, secret);
        }
        if (result.ok) {
          assert.ok(expected, `accepted ${JSON.stringify(given)}`);
          return;
        }
        assert.ok(result.error instanceof PublisherAuthError, `threw ${String(result.error)}`);
        assert.ok(!expected, `refused ${JSON.stringify(given)}: ${result.error.message}`);
        assert.equal(result.error.status, result.error.reason === 'subscriber-token' ? 403 : 401);
      }),
      600,
    );
  });

  it('a subscriber token never publishes, in either header', () => {
    check(
      fc.property(subscriberClaims.filter((c) => c.username !== ''), fc.boolean(), (claims, asAuthorization) => {
        const token = signToken(claims, KEY);
        const given = asAuthorization ? { authorization: `Token ${token}` } : { 'seafile-repo-token': token };
        assert.equal(reasonOf(() => authenticatePublisher(given, { key: KEY, staticToken: null }, NOW_MS)), 'subscriber-token');
      }),
      200,
    );
  });
});
