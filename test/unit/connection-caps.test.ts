import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { DEFAULT_LIMITS, type Limits } from '../../src/config/config.js';
import { ConnectionsPerAddress } from '../../src/session/connection-caps.js';
import { FailuresPerAddress } from '../../src/session/failure-allowance.js';

const silent = pino({ level: 'silent' });
const client = (address: string, unattributed = false) => ({ address, unattributed });
/** What a component reads its live limits from (config/settings.ts LiveSettings). */
const withLimits = (limits: Partial<Limits>) => ({ limits: { ...DEFAULT_LIMITS, ...limits } });

describe('connections per client address, shared by every transport', () => {
  it('refuses one more past the cap, counts each connection once however often it is released, and forgets an address with none', () => {
    const addresses = new ConnectionsPerAddress({ logger: silent, now: () => 0, live: withLimits({ maxConnectionsPerAddress: 2 }), trustedProxies: [] });
    const first = addresses.count(client('192.0.2.1'));
    addresses.count(client('192.0.2.1'));
    assert.match(addresses.refusal(client('192.0.2.1'), '192.0.2.1') ?? '', /max_connections_per_address is 2/);
    assert.equal(addresses.refusal(client('192.0.2.2'), '192.0.2.2'), null);
    first();
    first();
    assert.equal(addresses.connectionsFrom('192.0.2.1'), 1);
    assert.equal(addresses.refusal(client('192.0.2.1'), '192.0.2.1'), null);
  });

  it('does not count nor refuse what a trusted proxy did not attribute', () => {
    const addresses = new ConnectionsPerAddress({ logger: silent, now: () => 0, live: withLimits({ maxConnectionsPerAddress: 1 }), trustedProxies: [] });
    addresses.count(client('127.0.0.1', true));
    addresses.count(client('127.0.0.1', true));
    assert.equal(addresses.connectionsFrom('127.0.0.1'), 0);
    assert.equal(addresses.refusal(client('127.0.0.1', true), '127.0.0.1'), null);
  });
});

describe('refused tokens per client address (SSE and long polling)', () => {
  it('allows the limit a minute, then refuses with the seconds until one more; refills evenly', () => {
    let now = 0;
    const failures = new FailuresPerAddress(withLimits({ maxFailedSubscribesPerMinute: 6 }), () => now);
    const looping = client('198.51.100.1');
    for (let i = 0; i < 6; i++) assert.equal(failures.take(looping), true);
    assert.equal(failures.take(looping), false);
    assert.deepEqual(failures.refusal(looping)?.retryAfterSeconds, 10);
    assert.equal(failures.refusal(client('198.51.100.2')), null, 'other addresses are not affected');
    now += 10_000;
    assert.equal(failures.refusal(looping), null);
    assert.equal(failures.take(looping), true);
    assert.equal(failures.take(looping), false);
  });

  it('a request whose refused token found the bucket empty is told so, though the bucket refilled meanwhile', () => {
    let now = 0;
    const failures = new FailuresPerAddress(withLimits({ maxFailedSubscribesPerMinute: 6 }), () => now);
    const looping = client('198.51.100.1');
    for (let i = 0; i < 6; i++) failures.take(looping);
    now += 9_999;
    assert.equal(failures.take(looping), false);
    now += 1;
    assert.equal(failures.refusal(looping), null);
    assert.match(failures.exhausted().message, /max_failed_subscribes_per_minute is 6/);
    assert.equal(failures.exhausted().retryAfterSeconds, 10);
  });

  it('keeps no bucket for an address whose bucket refilled: memory follows the addresses that failed in the last minute', () => {
    let now = 0;
    const failures = new FailuresPerAddress(withLimits({ maxFailedSubscribesPerMinute: 100 }), () => now);
    for (let i = 0; i < 1000; i++) failures.take(client(`10.0.${i >> 8}.${i & 255}`));
    assert.equal(failures.size, 1000);
    now += 61_000;
    failures.take(client('192.0.2.9'));
    assert.equal(failures.size, 1);
  });

  it('0 turns it off, and what a trusted proxy did not attribute is not limited', () => {
    const off = new FailuresPerAddress(withLimits({ maxFailedSubscribesPerMinute: 0 }), () => 0);
    for (let i = 0; i < 10; i++) assert.equal(off.take(client('192.0.2.1')), true);
    assert.equal(off.refusal(client('192.0.2.1')), null);
    const on = new FailuresPerAddress(withLimits({ maxFailedSubscribesPerMinute: 1 }), () => 0);
    for (let i = 0; i < 10; i++) assert.equal(on.take(client('127.0.0.1', true)), true);
    assert.equal(on.size, 0);
  });
});
