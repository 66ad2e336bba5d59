import assert from 'node:assert/strict';
import { test } from 'node:test';

import { httpBaseUrl, webSocketUrl } from '../../src/cli/server-url.js';
import { ConfigError } from '../../src/config/config.js';

test('publish posts to <url>/events, keeping a proxy path and accepting a ws:// URL', () => {
  assert.equal(new URL('events', httpBaseUrl('http://127.0.0.1:8083')).href, 'http://127.0.0.1:8083/events');
  assert.equal(new URL('events', httpBaseUrl('https://seafile.example.com/notification')).href, 'https://seafile.example.com/notification/events');
  assert.equal(new URL('events', httpBaseUrl('ws://127.0.0.1:8083/?x=1#y')).href, 'http://127.0.0.1:8083/events');
  assert.equal(new URL('events', httpBaseUrl('wss://h/notification/')).href, 'https://h/notification/events');
});

test('listen connects to the URL as given, an http(s) URL turned into ws(s)', () => {
  assert.equal(webSocketUrl('http://127.0.0.1:8083').href, 'ws://127.0.0.1:8083/');
  assert.equal(webSocketUrl('https://seafile.example.com/notification').href, 'wss://seafile.example.com/notification');
  assert.equal(webSocketUrl('ws://[::1]:8083').href, 'ws://[::1]:8083/');
});

test('a URL that is not one, or of another scheme, is refused with the way to write it', () => {
  assert.throws(() => httpBaseUrl('127.0.0.1:8083'), (error: unknown) => error instanceof ConfigError && /use http:\/\/|not a URL/.test(error.message));
  assert.throws(() => webSocketUrl('ftp://host/'), (error: unknown) => error instanceof ConfigError && /use http:\/\/, https:\/\/, ws:\/\/ or wss:\/\//.test(error.message));
  assert.throws(() => webSocketUrl('not a url'), (error: unknown) => error instanceof ConfigError && /is not a URL/.test(error.message));
});
