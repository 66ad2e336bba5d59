import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { publisherToken, ServerProcess, subscriberToken, type LogLine } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';

const OLD_KEY = 'old-key-Zq8vN2xLw5RkT9pYb3HcJ7mD';
const NEW_KEY = 'new-key-Fh4sG6uA1eV8nQ2wX5zK9rB3';
const REPO = '9a8b7c6d-4444-4c4c-8d8d-000000000001';
const GRACE_SECONDS = 3;

/** The server reads seafile.conf from this dir; the test rewrites it and sends SIGHUP. */
async function writeConf(conf: string, lines: string[]): Promise<void> {
  await writeFile(join(conf, 'seafile.conf'), `[notification]\nenabled = true\ndrain_seconds = 0\n${lines.join('\n')}\n`);
}

async function startWith(conf: string): Promise<ServerProcess> {
  // The file must be where the key and level come from: environment settings would win over it.
  return ServerProcess.start({ args: ['-c', conf, '-l', '-'], env: { JWT_PRIVATE_KEY: undefined, NOTIFICATION_SERVER_LOG_LEVEL: undefined } });
}

/** Sends SIGHUP and waits for the reload (or its refusal) to be logged; earlier reloads do not count. */
async function reload(server: ServerProcess): Promise<LogLine> {
  const seen = server.logs.length;
  server.child.kill('SIGHUP');
  return server.waitForLog((line) => server.logs.indexOf(line) >= seen && /^SIGHUP: configuration (not )?reloaded/.test(line.msg), 10_000);
}

async function publishWith(server: ServerProcess, key: string, commit: string): Promise<number> {
  return server.publish('repo-update', { repo_id: REPO, commit_id: commit }, { authorization: `Token ${publisherToken(key)}` });
}

async function subscribed(server: ServerProcess, key: string): Promise<TestClient> {
  const client = await TestClient.connect(server.wsUrl);
  client.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, 'u@example.com', { key }) }]);
  await client.roundTrip();
  return client;
}

const commitsOf = (client: TestClient): unknown[] => client.messages.filter((m) => m.type === 'repo-update').map((m) => m.content['commit_id']);

describe('SIGHUP reloads the configuration without dropping anyone', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'notif-reload-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a new jwt_private_key: new tokens work at once, old ones during key_grace only, subscriptions stay', async () => {
    const conf = await mkdtemp(join(dir, 'rotate-'));
    await writeConf(conf, [`jwt_private_key = ${OLD_KEY}`, `key_grace = ${GRACE_SECONDS}`]);
    const server = await startWith(conf);
    try {
      const before = await subscribed(server, OLD_KEY);
      assert.equal(await publishWith(server, OLD_KEY, 'c1'), 200);
      await before.waitFor((m) => m.content['commit_id'] === 'c1');

      await writeConf(conf, [`jwt_private_key = ${NEW_KEY}`, `key_grace = ${GRACE_SECONDS}`]);
      const reloaded = await reload(server);
      const rotatedAt = Date.now();
      assert.deepEqual(reloaded['applied'], ['jwt_private_key']);
      const rotation = await server.waitForLog((line) => line.msg.startsWith('SIGHUP: JWT key rotated'));
      assert.match(rotation.msg, new RegExp(`accepted for ${GRACE_SECONDS} s more`));
      for (const line of server.logs) {
        const text = JSON.stringify(line);
        assert.ok(!text.includes(OLD_KEY) && !text.includes(NEW_KEY), `a key was logged: ${text}`);
      }

      // Inside the grace: both keys, for subscribers and publishers.
      const withNew = await subscribed(server, NEW_KEY);
      const withOld = await subscribed(server, OLD_KEY);
      assert.equal(await publishWith(server, NEW_KEY, 'c2'), 200);
      assert.equal(await publishWith(server, OLD_KEY, 'c3'), 200);
      assert.ok(Date.now() - rotatedAt < GRACE_SECONDS * 1000, 'the checks inside the grace took longer than the grace');
      for (const client of [before, withNew, withOld]) await client.waitFor((m) => m.content['commit_id'] === 'c3');
      assert.equal(withOld.messages.filter((m) => m.type === 'jwt-expired').length, 0, 'an old-key subscribe was refused inside the grace');

      // After the grace: only the new key.
      await sleep(GRACE_SECONDS * 1000 - (Date.now() - rotatedAt) + 200);
      assert.equal(await publishWith(server, OLD_KEY, 'refused'), 401);
      const late = await TestClient.connect(server.wsUrl);
      late.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, 'u@example.com', { key: OLD_KEY }) }]);
      assert.deepEqual(await late.waitFor((m) => m.type === 'jwt-expired'), { type: 'jwt-expired', content: { repo_id: REPO } });
      assert.equal(await publishWith(server, NEW_KEY, 'c4'), 200);
      for (const client of [before, withNew, withOld]) await client.waitFor((m) => m.content['commit_id'] === 'c4');
      assert.deepEqual(commitsOf(before), ['c1', 'c2', 'c3', 'c4'], 'the subscription made before the rotation kept receiving');
      assert.deepEqual(commitsOf(late), []);
      for (const client of [before, withNew, withOld, late]) client.close();
    } finally {
      await server.stop();
    }
  });

  it('an invalid configuration is logged with the setting named; the old one stays and the server lives on', async () => {
    const conf = await mkdtemp(join(dir, 'invalid-'));
    await writeConf(conf, [`jwt_private_key = ${OLD_KEY}`]);
    const server = await startWith(conf);
    try {
      const client = await subscribed(server, OLD_KEY);
      await writeConf(conf, [`jwt_private_key = ${NEW_KEY}`, 'max_connections = lots']);
      const refused = await reload(server);
      assert.match(refused.msg, /^SIGHUP: configuration not reloaded, the previous one stays in force: .*max_connections/);
      assert.equal(refused.level, 50, 'logged as an error');
      assert.equal(await publishWith(server, OLD_KEY, 'still-old'), 200);
      assert.equal(await publishWith(server, NEW_KEY, 'not-yet'), 401);
      await client.waitFor((m) => m.content['commit_id'] === 'still-old');
      assert.equal(server.child.exitCode, null);

      await writeConf(conf, [`jwt_private_key = ${OLD_KEY}`]);
      assert.match((await reload(server)).msg, /^SIGHUP: configuration reloaded \(nothing to change\)/);
      client.close();
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });

  it('a SIGHUP while the server is still starting does not kill it: the reload follows once it listens', async () => {
    const conf = await mkdtemp(join(dir, 'early-'));
    await writeConf(conf, [`jwt_private_key = ${OLD_KEY}`]);
    const server = await ServerProcess.start({
      args: ['-c', conf, '-l', '-'],
      env: { JWT_PRIVATE_KEY: undefined, NOTIFICATION_SERVER_LOG_LEVEL: undefined },
      waitUntilListening: false,
    });
    try {
      // The settings are logged before the server starts listening.
      await server.waitForLog((line) => line.msg.startsWith('Settings: '), 15_000);
      await writeConf(conf, [`jwt_private_key = ${NEW_KEY}`]);
      server.child.kill('SIGHUP');
      const listening = await server.waitForLog((line) => line.msg.startsWith('notification server listening'), 15_000);
      const reloaded = await server.waitForLog((line) => line.msg.startsWith('SIGHUP: configuration reloaded'), 10_000);
      assert.ok(server.logs.indexOf(reloaded) > server.logs.indexOf(listening));
      assert.equal(await publishWith(server, NEW_KEY, 'after-early-reload'), 200);
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });

  it('log_level, max_connections and max_event_bytes take effect at once; a setting that needs a restart is named and not applied', async () => {
    const conf = await mkdtemp(join(dir, 'level-'));
    await writeConf(conf, [`jwt_private_key = ${OLD_KEY}`, 'log_level = info']);
    const server = await startWith(conf);
    try {
      assert.equal(await publishWith(server, OLD_KEY, 'quiet'), 200);
      await writeConf(conf, [`jwt_private_key = ${OLD_KEY}`, 'log_level = debug', 'max_frame_bytes = 128', 'max_connections = 1', 'max_event_bytes = 300']);
      const reloaded = await reload(server);
      assert.deepEqual([reloaded['applied'], reloaded['needsRestart']], [['log_level', 'max_connections', 'max_event_bytes'], ['max_frame_bytes']]);
      const restart = await server.waitForLog((line) => line['setting'] === 'max_frame_bytes');
      assert.match(restart.msg, /max_frame_bytes changed but needs a restart/);
      assert.equal(await publishWith(server, OLD_KEY, 'loud'), 200);
      const accepted = server.logs.filter((line) => line.msg === 'event accepted');
      assert.deepEqual(accepted.map((line) => line['repoId']), [REPO], 'only the event after the reload is logged at debug');

      // The frame limit is still the old one (64 KiB): a 1 KiB subscribe is read, not refused.
      const client = await TestClient.connect(server.wsUrl);
      client.send({ type: 'subscribe', content: { repos: [{ id: REPO, jwt_token: subscriberToken(REPO, 'u', { key: OLD_KEY }) }], padding: 'x'.repeat(1024) } });
      await client.roundTrip();
      assert.equal(await publishWith(server, OLD_KEY, 'big-frame-ok'), 200);
      await client.waitFor((m) => m.content['commit_id'] === 'big-frame-ok');

      // The new limits: one connection at most, event bodies of 300 bytes at most.
      await assert.rejects(TestClient.connect(server.wsUrl), /upgrade refused: 503/);
      assert.equal(await publishWith(server, OLD_KEY, 'x'.repeat(300)), 413);
      client.close();
    } finally {
      await server.stop();
    }
  });
});
