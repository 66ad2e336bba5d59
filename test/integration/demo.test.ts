/**
 * `npm run demo` in real Chromium: lock icons follow lock events, the page recovers by itself
 * from a server restart (and catches up on what changed meanwhile), and with WebSocket upgrades
 * refused it keeps updating through a fallback. Screenshots go to test-artifacts/.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { startDemo, type Demo } from '../../demo/demo-server.js';
import { chromiumSkipReason, launchChromium } from '../support/chromium.js';
import { freePort } from '../support/server-process.js';

const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/', import.meta.url));
const WAIT = { timeout: 20_000 };

describe('the demo page in Chromium', { skip: chromiumSkipReason() }, () => {
  let demo: Demo;
  let browser: Browser;

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    demo = await startDemo({ pagePort: 0, serverPort: await freePort(), logLevel: 'error' });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await demo?.close();
  });

  const row = (page: Page, path: string) => page.locator(`li[data-path="${path}"]`);
  const lockIcon = (page: Page, path: string) => row(page, path).locator('.lock');
  async function open(query = ''): Promise<Page> {
    const page = await browser.newPage();
    await page.goto(`${demo.pageUrl}${query}`);
    await page.locator('#state[data-state="open"]').waitFor(WAIT);
    // Open is not yet subscribed: a restart before `subscribed` would leave no position to resync from.
    await page.locator('#files[data-live="true"]').waitFor(WAIT);
    return page;
  }

  it('a lock event shows the lock icon in every open page, without a reload; a commit shows the banner', async () => {
    const page = await open();
    const other = await open();
    await lockIcon(page, '/report.docx').waitFor({ state: 'hidden', ...WAIT });
    await row(page, '/report.docx').getByRole('button', { name: 'Lock' }).click();
    for (const each of [page, other]) await lockIcon(each, '/report.docx').waitFor({ state: 'visible', ...WAIT });
    assert.match((await lockIcon(other, '/report.docx').textContent()) ?? '', /demo@example\.com/);
    await lockIcon(other, '/report.docx').getByRole('img', { name: 'locked' }).waitFor(WAIT);
    await page.locator('#commit').click();
    for (const each of [page, other]) await each.locator('#banner', { hasText: 'Library updated' }).waitFor(WAIT);
    await other.screenshot({ path: `${ARTIFACTS}demo-locked.png`, fullPage: true });
    await row(page, '/report.docx').getByRole('button', { name: 'Unlock' }).click();
    for (const each of [page, other]) await lockIcon(each, '/report.docx').waitFor({ state: 'hidden', ...WAIT });
    await other.close();
    await page.close();
  });

  it('recovers by itself from a server restart, catches up on a lock changed while the server was down, and stays live', async () => {
    const page = await open();
    await demo.stopServer();
    await page.locator('#state[data-state="reconnecting"]').waitFor(WAIT);
    // Locked while the server is down: the event cannot be delivered, the state changes all the same.
    await row(page, '/budget.xlsx').getByRole('button', { name: 'Lock' }).click();
    await page.locator('#log', { hasText: 'the notification server is down' }).waitFor(WAIT);
    assert.equal(await row(page, '/budget.xlsx').getAttribute('data-locked'), 'false');
    await demo.startServer();
    await page.locator('#state[data-state="open"]').waitFor(WAIT);
    // The restarted server has a new history: the client is told to resync and the page re-reads the list.
    await lockIcon(page, '/budget.xlsx').waitFor({ state: 'visible', ...WAIT });
    await page.locator('#banner', { hasText: 'Reconnected' }).waitFor(WAIT);
    await row(page, '/notes.md').getByRole('button', { name: 'Lock' }).click();
    await lockIcon(page, '/notes.md').waitFor({ state: 'visible', ...WAIT });
    await page.screenshot({ path: `${ARTIFACTS}demo-after-restart.png`, fullPage: true });
    for (const path of ['/budget.xlsx', '/notes.md']) {
      await row(page, path).getByRole('button', { name: 'Unlock' }).click();
      await lockIcon(page, path).waitFor({ state: 'hidden', ...WAIT });
    }
    await page.close();
  });

  it('with WebSocket upgrades refused it falls back to SSE and still shows each lock live', async () => {
    const page = await open('?no-websocket');
    const badge = (await page.locator('#state').textContent()) ?? '';
    assert.match(badge, /open · sse/);
    const watcher = await open();
    await row(watcher, '/slides/keynote.pptx').getByRole('button', { name: 'Lock' }).click();
    await lockIcon(page, '/slides/keynote.pptx').waitFor({ state: 'visible', ...WAIT });
    await page.screenshot({ path: `${ARTIFACTS}demo-no-websocket.png`, fullPage: true });
    await row(page, '/slides/keynote.pptx').getByRole('button', { name: 'Unlock' }).click();
    for (const each of [page, watcher]) await lockIcon(each, '/slides/keynote.pptx').waitFor({ state: 'hidden', ...WAIT });
    assert.match((await page.locator('#log').textContent()) ?? '', /cannot connect \(websocket: 1006\)/);
    await watcher.close();
    await page.close();
  });
});
