import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { signToken } from '../../src/auth/jwt.js';
import { freePort, ServerProcess, subscriberToken } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';

const BIN = fileURLToPath(new URL('../../../bin/notification-server.js', import.meta.url));
const REPO = '9a8b7c6d-3333-4c4c-8d8d-000000000001';
const run = promisify(execFile);

function tokenFor(key: string, claims: Record<string, unknown>): string {
  return signToken({ exp: Math.floor(Date.now() / 1000) + 600, ...claims }, Buffer.from(key));
}

describe('running the server as an admin would', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'notif-lifecycle-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('SIGTERM closes every WebSocket with 1001 and exits 0', async () => {
    const server = await ServerProcess.start({ env: { NOTIFICATION_SERVER_DRAIN_SECONDS: '1' } });
    const clients = await Promise.all([1, 2, 3].map(() => TestClient.connect(server.wsUrl)));
    const result = await server.stop('SIGTERM');
    for (const client of clients) assert.equal((await client.closed).code, 1001);
    assert.deepEqual(result, { code: 0, signal: null });
  });

  it('SIGUSR1 reopens the log file after logrotate moved it', async () => {
    const log = join(dir, 'notification-server.log');
    const server = await ServerProcess.start({ args: ['-l', log], waitUntilListening: false });
    const deadline = Date.now() + 10_000;
    while (!(await readFile(log, 'utf8').catch(() => '')).includes('listening') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await rename(log, `${log}.1`);
    server.child.kill('SIGUSR1');
    while ((await readFile(log, 'utf8').catch(() => '')) === '' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.match(await readFile(log, 'utf8'), /log file reopened/);
    assert.match(await readFile(`${log}.1`, 'utf8'), /notification server listening/);
    assert.equal((await server.stop()).code, 0);
  });

  it('with no configuration at all, generates a key once, keeps it, and listens on 127.0.0.1', async () => {
    const cwd = await mkdtemp(join(dir, 'embedded-'));
    const port = await freePort();
    const env = { NOTIFICATION_SERVER_PORT: String(port), JWT_PRIVATE_KEY: undefined, NOTIFICATION_SERVER_HOST: undefined };
    const first = await ServerProcess.start({ cwd, env, args: [] });
    const keyFile = join(cwd, '.notification-server', 'jwt_private_key');
    const key = (await readFile(keyFile, 'utf8')).trim();
    assert.match(key, /^[A-Za-z0-9+/]{43}=$/);
    assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
    const listening = first.logs.find((line) => line.msg.startsWith('notification server listening'))!;
    assert.equal(listening['host'], '127.0.0.1');
    assert.ok(first.logs.some((line) => line.msg.includes(keyFile)), 'the log says where the key is');
    assert.ok(!first.logs.some((line) => JSON.stringify(line).includes(key)), 'the key itself is never logged');
    await first.stop();

    const second = await ServerProcess.start({ cwd, env });
    assert.equal((await readFile(keyFile, 'utf8')).trim(), key, 'the same key is reused');
    const client = await TestClient.connect(second.wsUrl);
    client.subscribe([{ id: REPO, jwt_token: tokenFor(key, { repo_id: REPO, username: 'a@b.c' }) }]);
    await client.roundTrip();
    const response = await fetch(`${second.url}/events`, {
      method: 'POST',
      headers: { authorization: `Token ${tokenFor(key, {})}` },
      body: JSON.stringify({ type: 'repo-update', content: { repo_id: REPO, commit_id: 'c' } }),
    });
    assert.equal(response.status, 200);
    await client.waitForCount(1);
    await second.stop();
  });

  it('Seafile 11: reads host, port and jwt_private_key from seafile.conf [notification]', async () => {
    const conf = await mkdtemp(join(dir, 'conf11-'));
    const port = await freePort();
    const key = 'k#e;y with # and ; inside';
    await writeFile(join(conf, 'seafile.conf'), `[fileserver]\nport = 8082\n\n[notification]\nenabled = true\nhost = 127.0.0.1\nport = ${port}\nlog_level = debug\njwt_private_key = ${key}\n`);
    const server = await ServerProcess.start({ args: ['-c', conf, '-l', '-'], env: { JWT_PRIVATE_KEY: undefined, NOTIFICATION_SERVER_PORT: undefined, NOTIFICATION_SERVER_HOST: undefined } });
    assert.equal(server.logs.find((l) => l.msg.startsWith('notification server listening'))!['port'], port);
    const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
    client.subscribe([{ id: REPO, jwt_token: tokenFor(key, { repo_id: REPO, username: 'a@b.c' }) }, { id: 'x', jwt_token: subscriberToken('x', 'a@b.c') }]);
    const reply = await client.waitForCount(1);
    assert.deepEqual(reply[0], { type: 'jwt-expired', content: { repo_id: 'x' } }, 'only the token signed with the other key is refused');
    client.close();
    await server.stop();
  });

  it('Seafile 10.0: notification.conf [general] with the static notification_token for publishers', async () => {
    const conf = await mkdtemp(join(dir, 'conf10-'));
    const port = await freePort();
    await writeFile(
      join(conf, 'notification.conf'),
      `[general]\nhost = 127.0.0.1\nport = ${port}\nlog_level = info\nnotification_token = xP7GGgGPVCQu8r0xNJ+k4Q==\nprivate_key = "M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F\n`,
    );
    const server = await ServerProcess.start({ args: ['-c', conf, '-l', '-'], env: { JWT_PRIVATE_KEY: undefined, NOTIFICATION_SERVER_PORT: undefined, NOTIFICATION_SERVER_HOST: undefined } });
    const key = '"M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F';
    const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
    client.subscribe([{ id: REPO, jwt_token: tokenFor(key, { repo_id: REPO, username: 'a@b.c' }) }]);
    await client.roundTrip();
    const publish = (token: string) =>
      fetch(`http://127.0.0.1:${port}/events`, {
        method: 'POST',
        headers: { 'seafile-repo-token': token },
        body: JSON.stringify({ type: 'repo-update', content: { repo_id: REPO, commit_id: 'c10' } }),
      });
    assert.equal((await publish('wrong')).status, 401);
    assert.equal((await publish('xP7GGgGPVCQu8r0xNJ+k4Q==')).status, 200);
    assert.equal((await client.waitForCount(1))[0]!.content['commit_id'], 'c10');
    client.close();
    await server.stop();
  });

  it('a conf dir without a key stops at start with a message naming JWT_PRIVATE_KEY and exit code 2', async () => {
    const conf = await mkdtemp(join(dir, 'nokey-'));
    await mkdir(conf, { recursive: true });
    await writeFile(join(conf, 'seafile.conf'), '[notification]\nenabled = true\n');
    const server = await ServerProcess.start({ args: ['-c', conf], env: { JWT_PRIVATE_KEY: undefined }, waitUntilListening: false });
    const result = await server.exited;
    assert.equal(result.code, 2);
    assert.match(server.stderr, /JWT_PRIVATE_KEY is not set/);
    assert.match(server.stderr, /keygen/);
  });

  it('--help and help list the commands and options, and keygen prints a key like openssl rand -base64 32', async () => {
    const help = await run(process.execPath, [BIN, '--help']);
    assert.match(help.stdout, /-c, --config-dir/);
    assert.match(help.stdout, /JWT_PRIVATE_KEY/);
    // `help` prints the same text, commands included.
    const bare = await run(process.execPath, [BIN, 'help']);
    assert.equal(bare.stdout, help.stdout);
    for (const command of ['keygen', 'publish', 'listen', 'check', 'install-seafile']) {
      assert.match(help.stdout, new RegExp(`notification-server ${command}\\b`));
    }
    const keygen = await run(process.execPath, [BIN, 'keygen']);
    assert.match(keygen.stdout, /^[A-Za-z0-9+/]{43}=\n$/);
  });
});
