import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { OriginPolicy } from '../../src/transport/origin-policy.js';
import { check } from '../support/property.js';

describe('origin policy', () => {
  const policy = new OriginPolicy(['https://cloud.example.com', 'http://seafile.lan:8000']);

  it('admits the allowed origins as browsers spell them', () => {
    assert.ok(policy.admits('https://cloud.example.com', 'notify.internal:8083'));
    assert.ok(policy.admits('https://CLOUD.example.com:443', undefined));
    assert.ok(policy.admits('http://seafile.lan:8000', undefined));
  });

  it('admits the desktop client: its bare host name, or http://<host> without the port for this server', () => {
    assert.ok(policy.admits('cloud.example.com', 'cloud.example.com'));
    assert.ok(policy.admits('10.0.0.7', '10.0.0.7'));
    assert.ok(policy.admits('[::1]', '[::1]'));
    assert.ok(policy.admits('http://notify.internal', 'notify.internal:8083'), 'the Host it connected to');
    assert.ok(policy.admits('http://cloud.example.com', '127.0.0.1:8083'), 'an allowed origin\'s host, behind a proxy');
    assert.ok(policy.admits('http://[::1]', '[::1]:8083'));
  });

  it('admits a request without Origin (not a browser) and refuses other browser origins, "null" included', () => {
    assert.ok(policy.admits(undefined, 'x'));
    for (const origin of ['https://evil.example', 'http://evil.example', 'http://cloud.example.com:8080', 'https://seafile.lan:8000', 'null', 'NULL', 'http://notify.internal/', 'https://cloud.example.com.evil.example', 'not a url']) {
      assert.ok(!policy.admits(origin, 'notify.internal:8083'), origin);
    }
  });

  it('never admits a browser origin outside the list, whatever the Host says (property)', () => {
    const origin = fc.tuple(fc.constantFrom('https', 'http'), fc.domain(), fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined })).map(([scheme, host, port]) => ({
      text: `${scheme}://${host}${port === undefined ? '' : `:${port}`}`,
      url: new URL(`${scheme}://${host}${port === undefined ? '' : `:${port}`}`),
    }));
    check(
      fc.property(origin, fc.domain(), (given, host) => {
        const allowed = policy.admits(given.text, `${host}:8083`);
        const listed = ['https://cloud.example.com', 'http://seafile.lan:8000'].includes(given.url.origin);
        const desktopForm = given.url.protocol === 'http:' && given.url.port === '' && (given.url.hostname === host || given.url.hostname === 'cloud.example.com' || given.url.hostname === 'seafile.lan');
        assert.equal(allowed, listed || desktopForm, given.text);
      }),
      300,
    );
  });
});
