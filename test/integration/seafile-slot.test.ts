/**
 * The binary slot of Seafile 10/11: `install-seafile` puts the server where seafile.sh starts the
 * stock one, and the patterns seafile.sh and seafile-monitor.sh use find the real process.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { requireBinary, skipReason } from '../support/binaries.js';
import { runCli } from '../support/cli-process.js';
import { freePort, TEST_KEY } from '../support/server-process.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../../bin/notification-server.js', import.meta.url));
const STOCK = '#!/bin/sh\necho "the stock notification server"\n';

const pkill = requireBinary('pkill', 'procps');
const ps = requireBinary('ps', 'procps');
const skip = skipReason(pkill, 'pkill', 'procps') || skipReason(ps, 'ps', 'procps');

/** pgrep's answer for `pkill -f <pattern>`: the pids it would signal. */
async function pidsMatching(pattern: string): Promise<number[]> {
  const pgrep = pkill!.replace(/pkill$/, 'pgrep');
  try {
    const { stdout } = await run(pgrep, ['-f', pattern]);
    return stdout.trim().split('\n').map(Number);
  } catch (err) {
    if ((err as { code?: number }).code === 1) return [];
    throw err;
  }
}

async function ping(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/ping`, { signal: AbortSignal.timeout(1_000) })).status === 200;
  } catch {
    return false;
  }
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(50);
  }
}

const exited = (child: ChildProcess): Promise<number | null> =>
  child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once('exit', (code) => resolve(code)));

describe('the Seafile 10/11 binary slot', { skip }, () => {
  let top: string;
  let install: string;
  let binDir: string;
  let conf: string;
  let logFile: string;
  let port: number;
  const children: ChildProcess[] = [];

  before(async () => {
    top = await mkdtemp(join(tmpdir(), 'seafile-slot-'));
    install = join(top, 'seafile-server-11.0.13');
    binDir = join(install, 'seafile', 'bin');
    conf = join(top, 'conf');
    logFile = join(top, 'logs', 'notification-server.log');
    port = await freePort();
    await mkdir(binDir, { recursive: true });
    await mkdir(join(install, 'seafile', 'lib'), { recursive: true });
    await mkdir(join(top, 'logs'), { recursive: true });
    await mkdir(conf, { recursive: true });
    await writeFile(join(binDir, 'notification-server'), STOCK);
    await chmod(join(binDir, 'notification-server'), 0o755);
    await writeFile(
      join(conf, 'seafile.conf'),
      `[notification]\nenabled = true\nhost = 127.0.0.1\nport = ${port}\nlog_level = info\njwt_private_key = ${TEST_KEY}\n`,
    );
  });
  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await rm(top, { recursive: true, force: true });
  });

  /** What seafile.sh does: `notification-server -c <conf dir> -l <log> &`, seafile/bin first on PATH. */
  function startAsSeafileDoes(command: string, args: string[]): ChildProcess {
    const child = spawn(command, args, {
      env: { PATH: `${binDir}${delimiter}${process.env['PATH'] ?? ''}`, LD_LIBRARY_PATH: join(install, 'seafile', 'lib') },
      stdio: 'ignore',
    });
    children.push(child);
    return child;
  }

  it('install-seafile puts a wrapper in seafile/bin and keeps the stock binary; twice keeps the stock one', async () => {
    for (let round = 0; round < 2; round++) {
      const result = await runCli(['install-seafile', install]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /installed .*notification-server/);
    }
    assert.equal(await readFile(join(binDir, 'notification-server.stock'), 'utf8'), STOCK);
    await access(join(binDir, 'notification-server'), 1);
  });

  it('seafile.sh start: the server answers, and logs the stock text lines to the -l file', async () => {
    const child = startAsSeafileDoes('notification-server', ['-c', conf, '-l', logFile]);
    await until('the server answers /ping', () => ping(port));
    const log = await readFile(logFile, 'utf8');
    assert.match(log, /^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\] \[INFO\] /m);
    assert.match(log, /\[INFO\] notification server listening on 127\.0\.0\.1:\d+/);
    assert.equal(child.exitCode, null);
  });

  it('seafile-monitor.sh finds it with ps -ef | grep notification-server, seafile.sh stop ends it with pkill -f', async () => {
    const pattern = `notification-server -c ${conf}`;
    const [pid] = await pidsMatching(pattern);
    assert.ok(pid !== undefined, 'pkill -f would find nothing');
    const { stdout } = await run(ps!, ['-ef']);
    const line = stdout.split('\n').find((row) => row.includes('notification-server') && row.split(/\s+/)[1] === String(pid));
    assert.ok(line !== undefined, `ps -ef shows no notification-server line for ${pid}:\n${stdout}`);
    const child = children.at(-1)!;
    await run(pkill!, ['-f', pattern]);
    assert.equal(await exited(child), 0);
    assert.deepEqual(await pidsMatching(pattern), []);
    assert.equal(await ping(port), false);
    // In the order they were logged: the last line is the last word.
    assert.match(await readFile(logFile, 'utf8'), /\[INFO\] SIGTERM: draining connections=0\n\[[^\n]*\[INFO\] stopped\n$/);
  });

  it('started directly with node, the process is found by the same pattern', async () => {
    const child = startAsSeafileDoes(process.execPath, [BIN, '-c', conf, '-l', logFile]);
    await until('the server answers /ping', () => ping(port));
    assert.deepEqual(await pidsMatching(`notification-server -c ${conf}`), [child.pid]);
    await run(pkill!, ['-f', `notification-server -c ${conf}`]);
    assert.equal(await exited(child), 0);
  });

  it('install-seafile --uninstall puts the stock binary back', async () => {
    const result = await runCli(['install-seafile', '--uninstall', install]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await readFile(join(binDir, 'notification-server'), 'utf8'), STOCK);
    await assert.rejects(access(join(binDir, 'notification-server.stock')));
    // Nothing of ours left to undo.
    const again = await runCli(['install-seafile', '--uninstall', install]);
    assert.match(again.stdout, /is not this server's: nothing to undo/);
  });

  it('a directory that is not a Seafile install is refused with exit 2, touching nothing', async () => {
    const result = await runCli(['install-seafile', top]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /is not a Seafile install dir: it has no seafile\/bin/);
  });
});
