import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireBinary, skipReason } from '../support/binaries.js';
import { readDeployFile } from '../support/deploy-files.js';
import { ServerProcess } from '../support/server-process.js';

const systemdAnalyze = requireBinary('systemd-analyze', 'systemd');
const logrotate = requireBinary('logrotate', 'logrotate');

function run(command: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

/** Replaces `from` (which must be in the snippet, so the docs cannot drift from the test) by `to`. */
function substitute(text: string, from: string, to: string, file: string): string {
  if (!text.includes(from)) throw new Error(`docs/deploy/${file} no longer contains ${JSON.stringify(from)}: update this test`);
  return text.split(from).join(to);
}

async function waitForFile(path: string, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(path, 'utf8').catch(() => '');
    if (pattern.test(text)) return text;
    if (Date.now() > deadline) throw new Error(`${path} did not show ${pattern} within ${timeoutMs} ms; it holds: ${text.slice(-500)}`);
    await sleep(50);
  }
}

describe('docs/deploy files, run by the tools that read them', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'notif-test-deploy-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('systemd-analyze verify accepts notification-server.service without a warning', { skip: skipReason(systemdAnalyze, 'systemd-analyze', 'systemd') }, async () => {
    let unit = readDeployFile('notification-server.service');
    // verify checks that the program exists: point it at this machine's node.
    unit = substitute(unit, 'ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `, 'notification-server.service');
    const path = join(dir, 'notification-server.service');
    await writeFile(path, unit);
    const { code, output } = await run(systemdAnalyze!, ['verify', path]);
    assert.equal(code, 0, output);
    // Unknown keys and unparsable values are only warnings, with the file's name in them.
    assert.doesNotMatch(output, /notification-server\.service/, output);
  });

  it('logrotate with notification-server.logrotate moves the log and the server writes a new one', { skip: skipReason(logrotate, 'logrotate', 'logrotate') }, async () => {
    const log = join(dir, 'notification-server.log');
    const server = await ServerProcess.start({ args: ['-l', log], waitUntilListening: false });
    try {
      await waitForFile(log, /notification server listening/);
      let config = readDeployFile('notification-server.logrotate');
      config = substitute(config, '/opt/seafile/logs/notification-server.log', log, 'notification-server.logrotate');
      // No systemd here: signal the test's server the way systemctl kill would.
      config = substitute(
        config,
        'systemctl kill --signal=SIGUSR1 --kill-whom=main notification-server.service',
        `kill -USR1 ${server.child.pid}`,
        'notification-server.logrotate',
      );
      const configPath = join(dir, 'logrotate.conf');
      await writeFile(configPath, config);
      // logrotate refuses a config file others may write.
      await chmod(configPath, 0o600);
      const { code, output } = await run(logrotate!, ['--force', '--state', join(dir, 'logrotate.state'), configPath]);
      assert.equal(code, 0, output);
      assert.match(await readFile(`${log}.1`, 'utf8'), /notification server listening/);
      await waitForFile(log, /log file reopened/);
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });
});
