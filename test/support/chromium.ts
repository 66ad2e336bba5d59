/** Debian's Chromium for the browser tests, driven by playwright-core (which downloads no browser). */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { isCi } from './env.js';

/** `CHROMIUM_PATH`, else the usual install paths; undefined when there is none. */
export function findChromium(): string | undefined {
  const candidates = [process.env['CHROMIUM_PATH'], '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
  return candidates.find((path): path is string => path !== undefined && path !== '' && existsSync(path));
}

/** The skip reason for a browser test, or false; under CI=true a missing browser throws instead. */
export function chromiumSkipReason(): string | false {
  if (findChromium() !== undefined) return false;
  if (isCi()) throw new Error('no Chromium (Debian: chromium; or set CHROMIUM_PATH) and CI=true: the browser tests must run');
  return 'no Chromium here (apt-get install chromium, or set CHROMIUM_PATH)';
}

// Without the background-networking flags Chromium keeps dialling Google's hosts, which a closed network refuses.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

export function launchChromium(): Promise<Browser> {
  const executablePath = findChromium();
  if (executablePath === undefined) throw new Error('no Chromium: apt-get install chromium, or set CHROMIUM_PATH');
  return chromium.launch({ executablePath, args: ARGS });
}
