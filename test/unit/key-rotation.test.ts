import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { signToken, TokenError, verifyToken } from '../../src/auth/jwt.js';
import { KeyRing } from '../../src/auth/key-ring.js';
import { authenticatePublisher, PublisherAuthError } from '../../src/auth/publisher-auth.js';
import { SubscribeRefused, verifySubscriberToken } from '../../src/auth/subscriber-token.js';
import { DEFAULT_LIMITS, DEFAULTS, type Config } from '../../src/config/config.js';
import { planReload } from '../../src/config/reload-plan.js';
import { DEFAULT_HISTORY_LIMITS } from '../../src/history/event-history.js';

const OLD = Buffer.from('the-old-key-0123456789abcdef');
const NEW = Buffer.from('the-new-key-0123456789abcdef');
const OTHER = Buffer.from('a-key-nobody-configured-0123');
const REPO = '9a8b7c6d-3333-4c4c-8d8d-000000000001';
const START_MS = 1_800_000_000_000;

/** A clock the test moves by hand. */
function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = START_MS;
  return { now: () => t, advance: (ms) => (t += ms) };
}

const subscriberTokenFor = (key: Buffer) => signToken({ repo_id: REPO, username: 'u@x.com', exp: START_MS / 1000 + 3600 }, key);
const publisherTokenFor = (key: Buffer) => signToken({ exp: START_MS / 1000 + 3600 }, key);

function signatureRefused(check: () => unknown): boolean {
  try {
    check();
    return false;
  } catch (err) {
    if (err instanceof SubscribeRefused || err instanceof TokenError || err instanceof PublisherAuthError) return err.reason === 'signature';
    throw err;
  }
}

describe('key rotation with a grace period', () => {
  it('before any rotation only the configured key is accepted', () => {
    const c = clock();
    const ring = new KeyRing(OLD, c.now);
    assert.deepEqual(ring.accepted(), [OLD]);
    assert.equal(ring.rotate(Buffer.from(OLD), 60_000), false, 'the same key again is no rotation');
    assert.deepEqual(ring.accepted(), [OLD]);
  });

  it('after a rotation, tokens of the previous key are accepted until the grace ends, then refused', () => {
    const c = clock();
    const ring = new KeyRing(OLD, c.now);
    assert.equal(ring.rotate(NEW, 60_000), true);
    const oldToken = subscriberTokenFor(OLD);
    const newToken = subscriberTokenFor(NEW);
    assert.equal(verifySubscriberToken(newToken, REPO, ring, c.now()).username, 'u@x.com');
    assert.equal(verifySubscriberToken(oldToken, REPO, ring, c.now()).username, 'u@x.com');
    assert.ok(signatureRefused(() => verifySubscriberToken(subscriberTokenFor(OTHER), REPO, ring, c.now())), 'a third key is never accepted');
    c.advance(59_999);
    assert.equal(verifySubscriberToken(oldToken, REPO, ring, c.now()).repoId, REPO, 'still inside the grace');
    c.advance(1);
    assert.ok(signatureRefused(() => verifySubscriberToken(oldToken, REPO, ring, c.now())), 'the grace has ended');
    assert.equal(verifySubscriberToken(newToken, REPO, ring, c.now()).repoId, REPO);
    assert.deepEqual(ring.accepted(), [NEW]);
  });

  it('publishers get the same grace, on both the Authorization and the legacy header', () => {
    const c = clock();
    const ring = new KeyRing(OLD, c.now);
    ring.rotate(NEW, 10_000);
    const credentials = { key: ring, staticToken: null };
    assert.equal(authenticatePublisher({ authorization: `Token ${publisherTokenFor(OLD)}` }, credentials, c.now()), 'jwt');
    assert.equal(authenticatePublisher({ 'seafile-repo-token': publisherTokenFor(OLD) }, credentials, c.now()), 'legacy-header');
    c.advance(10_000);
    assert.ok(signatureRefused(() => authenticatePublisher({ authorization: `Token ${publisherTokenFor(OLD)}` }, credentials, c.now())));
    assert.equal(authenticatePublisher({ authorization: `Token ${publisherTokenFor(NEW)}` }, credentials, c.now()), 'jwt');
  });

  it('a grace of 0 refuses the previous key at once', () => {
    const c = clock();
    const ring = new KeyRing(OLD, c.now);
    ring.rotate(NEW, 0);
    assert.ok(signatureRefused(() => verifyToken(publisherTokenFor(OLD), ring, c.now() / 1000)));
    assert.deepEqual(ring.accepted(), [NEW]);
  });

  it('rotating twice within the grace keeps only the key just replaced', () => {
    const c = clock();
    const ring = new KeyRing(OLD, c.now);
    ring.rotate(NEW, 60_000);
    c.advance(1_000);
    ring.rotate(OTHER, 60_000);
    assert.deepEqual(ring.accepted(), [OTHER, NEW]);
    assert.ok(signatureRefused(() => verifyToken(publisherTokenFor(OLD), ring, c.now() / 1000)));
    c.advance(60_000);
    assert.deepEqual(ring.accepted(), [OTHER]);
  });

  it('an expired token of the previous key is refused as expired, not let through', () => {
    const c = clock();
    const ring = new KeyRing(OLD, c.now);
    ring.rotate(NEW, 60_000);
    const expired = signToken({ repo_id: REPO, username: 'u', exp: START_MS / 1000 - 1 }, OLD);
    assert.throws(() => verifySubscriberToken(expired, REPO, ring, c.now()), (err: SubscribeRefused) => err.reason === 'expired');
  });
});

const RUNNING: Config = {
  host: '127.0.0.1',
  port: 8083,
  logLevel: 'info',
  logFile: null,
  logFormat: null,
  jwtPrivateKey: 'old-key',
  jwtKeySource: 'seafile.conf [notification] jwt_private_key',
  keyGraceMs: DEFAULTS.keyGraceMs,
  notificationToken: null,
  groupDatabase: null,
  groupCacheTtlMs: DEFAULTS.groupCacheTtlMs,
  groupLookupTimeoutMs: DEFAULTS.groupLookupTimeoutMs,
  backplane: { kind: 'memory' },
  history: DEFAULT_HISTORY_LIMITS,
  limits: DEFAULT_LIMITS,
  pingIntervalMs: DEFAULTS.pingIntervalMs,
  deadPeerMs: DEFAULTS.deadPeerMs,
  drainMs: DEFAULTS.drainMs,
  allowedOrigins: null,
  trustedProxies: [...DEFAULTS.trustedProxies],
  eventsListen: null,
  metrics: true,
  adminToken: null,
  workers: 1,
};

describe('what a reload applies and what needs a restart', () => {
  it('the same configuration changes nothing', () => {
    const plan = planReload(RUNNING, structuredClone(RUNNING));
    assert.deepEqual([plan.applied, plan.needsRestart], [[], []]);
    assert.deepEqual(plan.config, RUNNING);
  });

  it('key, static token, log level and limits are taken over', () => {
    const next: Config = {
      ...RUNNING,
      jwtPrivateKey: 'new-key',
      notificationToken: 'static-secret',
      logLevel: 'debug',
      limits: { ...RUNNING.limits, maxConnections: 5, maxEventBodyBytes: 1000 },
    };
    const plan = planReload(RUNNING, next);
    assert.deepEqual(plan.applied, ['jwt_private_key', 'notification_token', 'log_level', 'max_connections', 'max_event_bytes']);
    assert.deepEqual(plan.needsRestart, []);
    assert.deepEqual(plan.config, next);
  });

  it('host, port, Redis, group database and frame size are named and keep their running value', () => {
    const next: Config = {
      ...RUNNING,
      port: 9000,
      host: '0.0.0.0',
      backplane: { kind: 'redis', connection: { kind: 'single', url: 'redis://127.0.0.1:6379' }, displayUrl: 'redis://127.0.0.1:6379', timeoutMs: 5000, holdMs: 0, holdBytes: 0 },
      groupDatabase: { kind: 'sqlite', path: '/tmp/groupmgr.db' },
      limits: { ...RUNNING.limits, maxFrameBytes: 10, subscribeTimeoutMs: 0 },
    };
    const plan = planReload(RUNNING, next);
    assert.deepEqual(plan.applied, ['subscribe_timeout']);
    assert.deepEqual(plan.needsRestart, ['host', 'port', 'group database', 'Redis backplane (redis_url, redis_timeout, redis_failover_hold)', 'max_frame_bytes']);
    assert.deepEqual(plan.config, { ...RUNNING, limits: { ...RUNNING.limits, subscribeTimeoutMs: 0 } });
  });

  it('the caps per address and per user are taken over; trusted proxies and the group lookup timeout need a restart', () => {
    const next: Config = {
      ...RUNNING,
      trustedProxies: ['10.0.0.5'],
      groupLookupTimeoutMs: 1_000,
      limits: { ...RUNNING.limits, maxConnectionsPerAddress: 7, maxConnectionsPerUser: 3 },
    };
    const plan = planReload(RUNNING, next);
    assert.deepEqual(plan.applied, ['max_connections_per_address', 'max_connections_per_user']);
    assert.deepEqual(plan.needsRestart, ['group_lookup_timeout', 'trusted_proxies']);
    assert.deepEqual(plan.config, { ...RUNNING, limits: { ...RUNNING.limits, maxConnectionsPerAddress: 7, maxConnectionsPerUser: 3 } });
  });
});
