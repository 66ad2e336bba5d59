import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { signToken, TokenError, verifyToken } from '../../src/auth/jwt.js';
import { authenticatePublisher, PublisherAuthError } from '../../src/auth/publisher-auth.js';
import { SubscribeRefused, verifySubscriberToken } from '../../src/auth/subscriber-token.js';

const key = Buffer.from('M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F');
const now = 1_700_000_000;
const repo = 'a1b2c3d4-0000-4000-8000-000000000001';

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function failure(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof TokenError || err instanceof SubscribeRefused || err instanceof PublisherAuthError) return err.reason;
    throw err;
  }
  assert.fail('expected a refusal');
}

describe('HS256 tokens', () => {
  it('a token signed with the configured key verifies and yields its claims', () => {
    const claims = verifyToken(signToken({ repo_id: repo, username: 'u@x.com', exp: now + 60 }, key), key, now);
    assert.equal(claims['username'], 'u@x.com');
  });

  it('the key is the raw bytes of the configured string, not base64-decoded', () => {
    const header = b64({ alg: 'HS256', typ: 'JWT' });
    const payload = b64({ exp: now + 60 });
    const signature = createHmac('sha256', 'M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F').update(`${header}.${payload}`).digest('base64url');
    assert.doesNotThrow(() => verifyToken(`${header}.${payload}.${signature}`, key, now));
  });

  it('a token signed with another key is refused as a bad signature', () => {
    assert.equal(failure(() => verifyToken(signToken({ exp: now + 60 }, Buffer.from('other')), key, now)), 'signature');
  });

  it('a signature spelled differently in the unused bits of its last character is refused (one spelling per signature)', () => {
    const token = signToken({ exp: now + 60 }, key);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(token.at(-1)!);
    // 32 bytes take 43 characters: the last one holds 4 bits of the signature and 2 unused ones.
    for (const sibling of [last ^ 1, last ^ 2, last ^ 3]) {
      const variant = token.slice(0, -1) + alphabet[sibling]!;
      assert.ok(Buffer.from(variant.split('.')[2]!, 'base64url').equals(Buffer.from(token.split('.')[2]!, 'base64url')), 'same decoded bytes');
      assert.equal(failure(() => verifyToken(variant, key, now)), 'signature');
    }
  });

  it('alg "none" and other algorithms are refused before the signature is looked at', () => {
    const payload = b64({ exp: now + 60 });
    assert.equal(failure(() => verifyToken(`${b64({ alg: 'none' })}.${payload}.`, key, now)), 'algorithm');
    assert.equal(failure(() => verifyToken(`${b64({ alg: 'HS512' })}.${payload}.abc`, key, now)), 'algorithm');
    assert.equal(failure(() => verifyToken(`${b64({ alg: 'RS256' })}.${payload}.abc`, key, now)), 'algorithm');
  });

  it('a token expires exactly at exp', () => {
    const token = signToken({ exp: now + 1 }, key);
    assert.doesNotThrow(() => verifyToken(token, key, now));
    assert.equal(failure(() => verifyToken(token, key, now + 1)), 'expired');
  });

  it('a token without exp, with a future nbf, or malformed is refused', () => {
    assert.equal(failure(() => verifyToken(signToken({ repo_id: repo }, key), key, now)), 'malformed');
    assert.equal(failure(() => verifyToken(signToken({ exp: now + 60, nbf: now + 30 }, key), key, now)), 'not-yet-valid');
    for (const bad of ['', 'a.b', 'a.b.c.d', '!!!.x.y', `${b64([1])}.${b64({})}.x`, 'x'.repeat(10_000)]) {
      assert.equal(failure(() => verifyToken(bad, key, now)), 'malformed', bad.slice(0, 20));
    }
  });
});

describe('subscriber tokens', () => {
  it('a token for library A cannot subscribe library B', () => {
    const token = signToken({ repo_id: repo, username: 'u', exp: now + 60 }, key);
    assert.equal(failure(() => verifySubscriberToken(token, 'other-repo', key, now * 1000)), 'wrong-library');
  });

  it('a valid token grants its user the library until exp', () => {
    const token = signToken({ repo_id: repo, username: 'u@x.com', exp: now + 60 }, key);
    assert.deepEqual(verifySubscriberToken(token, repo, key, now * 1000), { repoId: repo, username: 'u@x.com', expiresAt: (now + 60) * 1000 });
  });
});

describe('publisher auth', () => {
  const credentials = { key, staticToken: 'xP7GGgGPVCQu8r0xNJ+k4Q==' };
  const publisher = signToken({ exp: now + 300 }, key);
  const goPublisher = signToken({ exp: now + 300, repo_id: repo, username: '' }, key);
  const at = now * 1000;

  it('accepts Seafile 12 "Authorization: Token <jwt>", with any scheme word', () => {
    assert.equal(authenticatePublisher({ authorization: `Token ${publisher}` }, credentials, at), 'jwt');
    assert.equal(authenticatePublisher({ authorization: `Bearer ${goPublisher}` }, credentials, at), 'jwt');
  });

  it('accepts Seafile 11 "Seafile-Repo-Token: <jwt>" and Seafile 10.0 "Seafile-Repo-Token: <notification_token>", and says which', () => {
    assert.equal(authenticatePublisher({ 'seafile-repo-token': publisher }, credentials, at), 'legacy-header');
    assert.equal(authenticatePublisher({ 'seafile-repo-token': 'xP7GGgGPVCQu8r0xNJ+k4Q==' }, credentials, at), 'static-token');
  });

  it('refuses a subscriber token (non-empty username) with 403', () => {
    const subscriber = signToken({ exp: now + 300, repo_id: repo, username: 'mallory@x.com' }, key);
    assert.equal(failure(() => authenticatePublisher({ authorization: `Token ${subscriber}` }, credentials, at)), 'subscriber-token');
    try {
      authenticatePublisher({ 'seafile-repo-token': subscriber }, credentials, at);
    } catch (err) {
      assert.ok(err instanceof PublisherAuthError && err.status === 403);
    }
  });

  it('refuses missing, wrong-key, expired and wrong static tokens with 401', () => {
    const cases = [
      {},
      { authorization: `Token ${signToken({ exp: now + 300 }, Buffer.from('other'))}` },
      { authorization: `Token ${signToken({ exp: now - 1 }, key)}` },
      { 'seafile-repo-token': 'not-the-token' },
    ];
    for (const headers of cases) {
      try {
        authenticatePublisher(headers, credentials, at);
        assert.fail(`accepted ${JSON.stringify(headers)}`);
      } catch (err) {
        assert.ok(err instanceof PublisherAuthError, String(err));
        assert.equal(err.status, 401);
      }
    }
  });

  it('without a configured static token, a non-JWT Seafile-Repo-Token is refused', () => {
    assert.throws(() => authenticatePublisher({ 'seafile-repo-token': 'xP7GGgGPVCQu8r0xNJ+k4Q==' }, { key, staticToken: null }, at), PublisherAuthError);
  });
});
