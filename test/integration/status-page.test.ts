import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { chromiumSkipReason, launchChromium } from '../support/chromium.js';
import { ServerProcess, subscriberToken } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';

const TOKEN = 'status-page-admin-token-0123456789';
const REPO = 'c0ffee00-6666-4f4f-a0a0-000000000001';
const BUSY = 'c0ffee00-6666-4f4f-a0a0-000000000002';
const QUIET = 'c0ffee00-6666-4f4f-a0a0-000000000003';
const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/', import.meta.url));

/** The little of the browser's DOM the page functions below use (they run in Chromium, not here). */
interface PageElement {
  textContent: string | null;
  width: number;
  height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } };
}
declare const document: { getElementById(id: string): PageElement | null; querySelector(selector: string): PageElement | null };

const basic = (password: string) => ({ authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` });

/** Reads server-sent events from a streaming response until `count` data messages arrived. */
async function readFeed(response: Response, count: number, timeoutMs = 10_000): Promise<Array<Record<string, unknown>>> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const messages: Array<Record<string, unknown>> = [];
  let buffered = '';
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    while (messages.length < count) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`feed ended after ${messages.length} messages`);
      buffered += value;
      let end;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const data = block.split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)).join('\n');
        if (data !== '') messages.push(JSON.parse(data) as Record<string, unknown>);
      }
    }
    return messages;
  } finally {
    clearTimeout(timer);
    await reader.cancel();
  }
}

describe('the admin status page', () => {
  let server: ServerProcess;
  const clients: TestClient[] = [];

  before(async () => {
    server = await ServerProcess.start({ env: { NOTIFICATION_SERVER_ADMIN_TOKEN: TOKEN } });
  });
  after(async () => {
    for (const client of clients) client.socket.terminate();
    await server.stop();
  });

  it('is off (404) without an admin token', async () => {
    const plain = await ServerProcess.start();
    try {
      for (const path of ['/status', '/status/app.js', '/status/feed']) {
        const response = await fetch(`${plain.url}${path}`, { headers: basic(TOKEN) });
        assert.equal(response.status, 404, path);
        assert.match(await response.text(), /NOTIFICATION_SERVER_ADMIN_TOKEN/);
      }
    } finally {
      await plain.stop();
    }
  });

  it('asks for the token (401 with a Basic challenge) and refuses a wrong one', async () => {
    for (const path of ['/status', '/status/app.js', '/status/feed']) {
      const none = await fetch(`${server.url}${path}`);
      assert.equal(none.status, 401, path);
      assert.match(none.headers.get('www-authenticate') ?? '', /^Basic realm=/);
      assert.equal((await fetch(`${server.url}${path}`, { headers: basic('wrong-token-wrong-token') })).status, 401, path);
    }
    const page = await fetch(`${server.url}/status`, { headers: basic(TOKEN) });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.match(await page.text(), /<script src="\/status\/app.js">/);
    const bearer = await fetch(`${server.url}/status/app.js`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(bearer.status, 200);
    await bearer.arrayBuffer();
  });

  it('the feed sends a snapshot, then each second the levels and the events of that second', async () => {
    const client = await TestClient.connect(server.wsUrl);
    clients.push(client);
    client.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, 'alice@example.com') }]);
    await client.roundTrip();
    const response = await fetch(`${server.url}/status/feed`, { headers: basic(TOKEN) });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reading = readFeed(response, 3);
    assert.equal(await server.publish('repo-update', { repo_id: REPO, commit_id: 'c1' }), 200);
    assert.equal(await server.publish('file-lock-changed', { repo_id: REPO, path: '/a', change_event: 'locked', lock_user: 'a' }), 200);
    const [snapshot, ...updates] = await reading;
    assert.equal(snapshot!['kind'], 'snapshot');
    const tail = updates.flatMap((update) => update['tail'] as Array<{ repoId: string; type: string; recipients: number }>);
    assert.deepEqual(
      tail.map((entry) => [entry.repoId, entry.type, entry.recipients]),
      [[REPO, 'repo-update', 1], [REPO, 'file-lock-changed', 1]],
    );
    const last = updates.at(-1)!['point'] as { connections: number; subscriptions: number };
    assert.equal(last.connections, 1);
    assert.equal(last.subscriptions, 1);
    client.close();
    await client.closed;
  });

  it('shows live counters, charts and the tail in a real Chromium', { skip: chromiumSkipReason() }, async () => {
    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const context = await browser.newContext({ httpCredentials: { username: 'admin', password: TOKEN }, viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('pageerror', (err) => problems.push(err.message));
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(message.text());
      });
      await page.goto(`${server.url}/status`);
      await page.locator('#state', { hasText: 'live' }).waitFor({ timeout: 10_000 });

      const watchers = await Promise.all([1, 2, 3].map(() => TestClient.connect(server.wsUrl)));
      clients.push(...watchers);
      watchers[0]!.subscribe([{ id: BUSY, jwt_token: subscriberToken(BUSY, 'a@example.com') }, { id: QUIET, jwt_token: subscriberToken(QUIET, 'a@example.com') }]);
      watchers[1]!.subscribe([{ id: BUSY, jwt_token: subscriberToken(BUSY, 'b@example.com') }]);
      await Promise.all(watchers.map((watcher) => watcher.roundTrip()));
      const shows = (values: Record<string, string>) =>
        page.waitForFunction((wanted) => Object.entries(wanted).every(([id, value]) => document.getElementById(id)?.textContent === value), values, { timeout: 10_000 });
      await shows({ connections: '3', subscriptions: '3', libraries: '2' });

      for (let i = 0; i < 6; i++) assert.equal(await server.publish('repo-update', { repo_id: BUSY, commit_id: `c${i}` }), 200);
      assert.equal(await server.publish('comment-update', { repo_id: QUIET, type: 'add', file_uuid: 'u', file_path: '/f' }), 200);
      const tailOf = page.locator('#tail li');
      await tailOf.filter({ hasText: QUIET }).waitFor({ timeout: 10_000 });
      assert.deepEqual((await tailOf.first().locator('span').allTextContents()).slice(1), ['comment-update', QUIET, '1']);
      assert.equal(await tailOf.filter({ hasText: BUSY }).count(), 6);
      assert.deepEqual(await tailOf.filter({ hasText: BUSY }).first().locator('span').allTextContents().then((t) => t.slice(1)), ['repo-update', BUSY, '2']);
      await page.waitForFunction((repo) => document.querySelector('#busiest tr td')?.textContent === repo, BUSY, { timeout: 10_000 });
      assert.deepEqual(await page.locator('#busiest tr').first().locator('td').allTextContents(), [BUSY, '6', '2']);
      await page.waitForFunction(() => /^\d+(\.\d+)?$/.test(document.getElementById('latency')?.textContent ?? ''), undefined, { timeout: 10_000 });
      // The events chart has drawn its axes and line: many pixels of its canvas are inked.
      const drawn = await page.evaluate(() => {
        const canvas = document.getElementById('chart-events')!;
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let inked = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i]! > 0) inked++;
        return inked;
      });
      assert.ok(drawn > 100, `the events chart is blank (${drawn} inked pixels)`);

      await mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}status-page.png`, fullPage: true });
      assert.deepEqual(problems, [], 'no script errors or CSP violations');
      for (const watcher of watchers) watcher.close();
      await shows({ connections: '0' });
    } finally {
      await browser?.close();
    }
  });
});
