/**
 * The client in a real browser (headless Chromium): the built module loaded as it is, with no
 * bundler and the browser's own WebSocket, against the built server, through a restart.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { chromiumSkipReason, launchChromium } from '../support/chromium.js';
import { ServerProcess, subscriberToken } from '../support/server-process.js';

const REPO = '9d1e0c1a-4444-4b4b-9c9c-000000000001';
const clientDist = fileURLToPath(new URL('../../../client/dist/', import.meta.url));

/** Serves the page's origin: the built client modules, and tokens as seahub's API would. */
async function startPageServer(): Promise<{ server: Server; url: string }> {
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === '/') {
      response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>client test</title>');
    } else if (url.pathname === '/token') {
      const repoId = url.searchParams.get('repo') ?? '';
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: subscriberToken(repoId, 'alice@example.com') }));
    } else if (/^\/client\/[\w-]+\.js$/.test(url.pathname)) {
      readFile(clientDist + url.pathname.slice('/client/'.length)).then(
        (body) => response.writeHead(200, { 'content-type': 'text/javascript' }).end(body),
        () => response.writeHead(404).end(),
      );
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${port}` };
}

describe('NotificationClient in a browser', { skip: chromiumSkipReason() }, () => {
  let browser: Browser;
  let page: Page;
  let pageServer: { server: Server; url: string };
  const servers: ServerProcess[] = [];

  before(async () => {
    pageServer = await startPageServer();
    browser = await launchChromium();
    page = await browser.newPage();
    await page.goto(`${pageServer.url}/`);
  });
  after(async () => {
    await browser?.close();
    await Promise.all(servers.map((server) => server.stop()));
    await new Promise((resolve) => pageServer?.server.close(resolve));
  });

  const received = () => page.evaluate('globalThis.received') as Promise<string[]>;
  const state = () => page.evaluate('globalThis.client.state') as Promise<string>;

  async function waitUntil(done: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await done())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** No subscribe acknowledgement in the protocol: publish probes until one arrives. */
  async function untilSubscribed(server: ServerProcess, label: string): Promise<void> {
    for (let i = 0; ; i++) {
      await server.publish('repo-update', { repo_id: REPO, commit_id: `${label}-probe-${i}` });
      const until = Date.now() + 300;
      while (Date.now() < until) {
        if ((await received()).some((c) => c.startsWith(`${label}-probe-`))) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      if (i > 50) throw new Error(`the browser client did not subscribe (${label})`);
    }
  }

  it('loads as a plain ES module, uses the browser WebSocket, and gets every event after a server restart exactly once', async () => {
    const first = await ServerProcess.start();
    servers.push(first);
    await page.evaluate(`(async () => {
      const { NotificationClient } = await import('/client/index.js');
      globalThis.received = [];
      globalThis.states = [];
      const client = new NotificationClient({
        url: ${JSON.stringify(`${first.url}/notification`)},
        backoff: { initialMs: 100, maxMs: 1000 },
        tokenProvider: async (repoId) => (await (await fetch('/token?repo=' + encodeURIComponent(repoId))).json()).token,
      });
      client.on('repoUpdate', (e) => globalThis.received.push(e.commit_id));
      client.on('state', (s) => globalThis.states.push(s));
      client.subscribe(${JSON.stringify(REPO)});
      globalThis.client = client;
    })()`);
    await untilSubscribed(first, 'first');
    for (let i = 0; i < 3; i++) await first.publish('repo-update', { repo_id: REPO, commit_id: `before-${i}` });
    await waitUntil(async () => (await received()).includes('before-2'), 'the events before the restart');

    await first.stop('SIGTERM');
    await waitUntil(async () => (await state()) === 'reconnecting', 'the browser client to notice the restart');
    const second = await ServerProcess.start({ env: { NOTIFICATION_SERVER_PORT: String(first.port) } });
    servers.push(second);
    await waitUntil(async () => (await state()) === 'open', 'the browser client to reconnect');
    await untilSubscribed(second, 'second');
    for (let i = 0; i < 3; i++) await second.publish('repo-update', { repo_id: REPO, commit_id: `after-${i}` });
    await waitUntil(async () => (await received()).includes('after-2'), 'the events after the restart');

    const commits = await received();
    assert.equal(new Set(commits).size, commits.length, `no event twice: ${commits.join(' ')}`);
    assert.deepEqual(
      commits.filter((c) => !c.includes('-probe-')),
      ['before-0', 'before-1', 'before-2', 'after-0', 'after-1', 'after-2'],
    );
    const states = (await page.evaluate('globalThis.states')) as string[];
    assert.deepEqual(states.slice(0, 2), ['open', 'reconnecting']);
    assert.equal(states.at(-1), 'open');
    await page.evaluate('globalThis.client.close()');
    assert.equal(await state(), 'closed');
  });
});
