import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { plainAddress, TrustedProxies } from '../../src/transport/client-address.js';
import { check } from '../support/property.js';

describe('the client address behind trusted proxies', () => {
  const proxies = new TrustedProxies(['127.0.0.0/8', '::1', '10.1.0.0/16']);

  it('from a peer that is not a trusted proxy, the peer is the client and the forwarding headers are ignored', () => {
    assert.deepEqual(proxies.clientOf('203.0.113.9', { 'x-forwarded-for': '198.51.100.1', 'x-real-ip': '198.51.100.2' }), { address: '203.0.113.9', unattributed: false });
    assert.deepEqual(new TrustedProxies([]).clientOf('127.0.0.1', { 'x-forwarded-for': '198.51.100.1' }), { address: '127.0.0.1', unattributed: false });
  });

  it('from a trusted proxy, the rightmost X-Forwarded-For entry that is not a trusted proxy is the client', () => {
    assert.deepEqual(proxies.clientOf('127.0.0.1', { 'x-forwarded-for': '198.51.100.7' }), { address: '198.51.100.7', unattributed: false });
    // A client-written entry on the left cannot push the real one aside.
    assert.deepEqual(proxies.clientOf('127.0.0.1', { 'x-forwarded-for': '1.2.3.4, 198.51.100.7' }), { address: '198.51.100.7', unattributed: false });
    // Two trusted hops: the load balancer (10.1.2.3) appended by the local proxy.
    assert.deepEqual(proxies.clientOf('::ffff:127.0.0.1', { 'x-forwarded-for': '1.2.3.4, 198.51.100.7, 10.1.2.3' }), { address: '198.51.100.7', unattributed: false });
    assert.deepEqual(proxies.clientOf('::1', { 'x-forwarded-for': '[2001:db8::5]:4711' }), { address: '2001:db8::5', unattributed: false });
    assert.deepEqual(proxies.clientOf('::1', { 'x-forwarded-for': '198.51.100.7:4711' }), { address: '198.51.100.7', unattributed: false });
    assert.deepEqual(proxies.clientOf('::1', { 'x-forwarded-for': '::FFFF:198.51.100.7' }), { address: '198.51.100.7', unattributed: false });
    // Only trusted hops: the leftmost is the client (an internal one).
    assert.deepEqual(proxies.clientOf('127.0.0.1', { 'x-forwarded-for': '10.1.0.9, 10.1.2.3' }), { address: '10.1.0.9', unattributed: false });
  });

  it('without X-Forwarded-For a trusted proxy may name the client in X-Real-IP', () => {
    assert.deepEqual(proxies.clientOf('127.0.0.1', { 'x-real-ip': '198.51.100.8' }), { address: '198.51.100.8', unattributed: false });
    assert.deepEqual(proxies.clientOf('127.0.0.1', { 'x-forwarded-for': '198.51.100.7', 'x-real-ip': '198.51.100.8' }), { address: '198.51.100.7', unattributed: false });
  });

  it('a trusted proxy that names nobody, or something that is no address, leaves the connection unattributed', () => {
    assert.deepEqual(proxies.clientOf('127.0.0.1', {}), { address: '127.0.0.1', unattributed: true });
    assert.deepEqual(proxies.clientOf('127.0.0.1', { 'x-forwarded-for': 'unknown' }), { address: '127.0.0.1', unattributed: true });
    assert.deepEqual(proxies.clientOf('127.0.0.1', { 'x-forwarded-for': '198.51.100.7, _hidden' }), { address: '127.0.0.1', unattributed: true });
    assert.deepEqual(proxies.clientOf('127.0.0.1', { 'x-real-ip': 'not an address' }), { address: '127.0.0.1', unattributed: true });
  });

  it('writes IPv4-mapped IPv6 peers as IPv4', () => {
    assert.equal(plainAddress('::ffff:10.0.0.1'), '10.0.0.1');
    assert.equal(plainAddress('2001:DB8::1'), '2001:db8::1');
  });

  it('property: whatever the headers say, a peer that is not trusted is its own client', () => {
    const untrusted = fc.ipV4().filter((ip) => !ip.startsWith('127.') && !ip.startsWith('10.1.'));
    check(
      fc.property(untrusted, fc.option(fc.string()), fc.option(fc.string()), (peer, forwarded, realIp) => {
        const headers = { 'x-forwarded-for': forwarded ?? undefined, 'x-real-ip': realIp ?? undefined };
        assert.deepEqual(proxies.clientOf(peer, headers), { address: peer, unattributed: false });
      }),
      200,
    );
  });

  it('property: behind a trusted proxy that appends the peer it saw, a client cannot pass for another address', () => {
    // The client writes any X-Forwarded-For it likes; the proxy appends the client's real address.
    check(
      fc.property(fc.ipV4().filter((ip) => !ip.startsWith('127.') && !ip.startsWith('10.1.')), fc.array(fc.oneof(fc.ipV4(), fc.string()), { maxLength: 4 }), (client, written) => {
        const forwarded = [...written, client].join(', ');
        assert.deepEqual(proxies.clientOf('127.0.0.1', { 'x-forwarded-for': forwarded }), { address: client, unattributed: false });
      }),
      200,
    );
  });
});
