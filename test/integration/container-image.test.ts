/**
 * The Dockerfile's image as a drop-in for seafileltd/notification-server: built with real
 * podman from a local base (test/support/container-image.ts), run as Seafile's compose set-up
 * runs the stock one, and spoken to over the protocol: ping, a subscriber and an event, a
 * group permission change resolved through SEAFILE_MYSQL_DB_* against the throwaway MariaDB,
 * the log file on the mounted volume, and a clean stop on SIGTERM.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { logsVolume, Podman } from '../support/container-image.js';
import { seedGroups, type GroupMembers } from '../support/databases.js';
import { requireServiceUrl } from '../support/env.js';
import { caddySite } from '../support/proxies.js';
import { freePort, publishEvent, subscriberToken, TEST_KEY } from '../support/server-process.js';
import { TestClient } from '../support/test-client.js';

// Built by `npm test` (test/support/run-tests.ts) before the tests start.
const image = requireServiceUrl('TEST_CONTAINER_IMAGE');
const mysqlUrl = requireServiceUrl('TEST_MYSQL_URL');

const REPO = '7a1e0c1a-4444-4c4c-8d8d-00000000c0de';
const GROUP = 12;
const groups: GroupMembers = { [GROUP]: ['alice@example.com', 'carol@example.com'] };
const LOG_FILE = 'notification-server.log';

const COMPOSE_FILE = 'docs/deploy/docker/notification-server.yml';
const composeCaddy = caddySite(caddyfileFromLabels(readFileSync(new URL(`../../../${COMPOSE_FILE}`, import.meta.url), 'utf8')), COMPOSE_FILE);

/**
 * The site block caddy-docker-proxy makes of a compose file's `caddy` labels: `caddy.N_directive`
 * nests by its dots, the `N_` prefixes only order siblings. The site and `{{upstreams 8083}}`
 * become the names test/support/proxies.ts swaps for the test's.
 */
function caddyfileFromLabels(compose: string): string {
  interface Directive {
    args: string;
    children: Map<string, Directive>;
  }
  const root: Directive = { args: '', children: new Map() };
  for (const match of compose.matchAll(/^\s+caddy((?:\.[^:\s]+)*):\s*(.*)$/gm)) {
    const value = match[2]!.trim().replace(/^"(.*)"$/, '$1');
    let node = root;
    for (const segment of match[1]!.split('.').filter((part) => part !== '')) {
      let child = node.children.get(segment);
      if (child === undefined) node.children.set(segment, (child = { args: '', children: new Map() }));
      node = child;
    }
    node.args = value;
  }
  if (root.args === '') throw new Error(`${COMPOSE_FILE} has no caddy label`);
  const render = (node: Directive, indent: string): string =>
    [...node.children]
      .map(([segment, child]) => {
        const line = `${indent}${segment.replace(/^\d+_/, '')} ${child.args.replace('{{upstreams 8083}}', '127.0.0.1:8083')}`;
        return child.children.size === 0 ? `${line}\n` : `${line} {\n${render(child, `${indent}    `)}${indent}}\n`;
      })
      .join('');
  return `seafile.example.com {\n${render(root, '    ')}}\n`;
}

/** Polls GET /ping until it answers 200; fails with the container's output if it exits first. */
async function waitForPing(podman: Podman, container: string, baseUrl: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(`${baseUrl}/ping`, { signal: AbortSignal.timeout(2_000) });
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    const state = (await podman.run(['inspect', '--format', '{{.State.Running}}', container])).stdout.trim();
    if (state !== 'true' || Date.now() > deadline) {
      const logs = await podman.run(['logs', container]);
      throw new Error(`the container ${state === 'true' ? 'did not answer /ping in time' : 'exited'}; its output:\n${logs.stdout}${logs.stderr}`);
    }
    await sleep(100);
  }
}

async function subscribed(wsUrl: string, user: string): Promise<TestClient> {
  const client = await TestClient.connect(wsUrl);
  client.subscribe([{ id: REPO, jwt_token: subscriberToken(REPO, user) }]);
  await client.roundTrip();
  return client;
}

/** podman stop (SIGTERM), then the exit code the container's process left. */
async function stopAndExitCode(podman: Podman, container: string): Promise<{ exitCode: string; seconds: number }> {
  const started = performance.now();
  // Far above the server's drain (5 s): exit code 0 then shows it stopped by itself, not by SIGKILL.
  await podman.must(['stop', '--time', '30', container], 60_000);
  const seconds = (performance.now() - started) / 1000;
  const exitCode = (await podman.must(['inspect', '--format', '{{.State.ExitCode}}', container])).trim();
  return { exitCode, seconds };
}

describe('the container image, built from the Dockerfile and run with podman', {
  skip: image === undefined ? 'TEST_CONTAINER_IMAGE is not set and the image cannot be built here (podman, runc, debootstrap, root)' : false,
}, () => {
  let podman: Podman;

  before(async () => {
    podman = await Podman.open();
  });
  after(() => podman?.close());

  describe('started with no command, as Seafile\'s notification-server.yml starts the stock image', () => {
    const container = `notification-server-test-default-${process.pid}`;
    let logs: string;
    let port: number;
    let baseUrl: string;

    before(
      async () => {
        logs = await logsVolume();
        port = await freePort();
        baseUrl = `http://127.0.0.1:${port}`;
        const database: string[] = [];
        if (mysqlUrl !== undefined) {
          await seedGroups(mysqlUrl, groups, 'ccnet_container');
          const mysql = new URL(mysqlUrl);
          // The throwaway MariaDB skips grant tables: any user and password get in.
          database.push(
            '--env', 'SEAFILE_MYSQL_DB_HOST=127.0.0.1',
            '--env', `SEAFILE_MYSQL_DB_PORT=${mysql.port}`,
            '--env', 'SEAFILE_MYSQL_DB_USER=seafile',
            '--env', 'SEAFILE_MYSQL_DB_PASSWORD=secret',
            '--env', 'SEAFILE_MYSQL_DB_CCNET_DB_NAME=ccnet_container',
            '--env', 'SEAFILE_MYSQL_DB_SEAFILE_DB_NAME=seafile_db',
          );
        }
        await podman.must([
          'run', '--detach', '--name', container,
          // Host networking reaches the MariaDB on loopback; the server listens on loopback only.
          '--network', 'host',
          '--volume', `${logs}:/shared/seafile/logs`,
          '--env', `JWT_PRIVATE_KEY=${TEST_KEY}`,
          '--env', 'NOTIFICATION_SERVER_HOST=127.0.0.1',
          '--env', `NOTIFICATION_SERVER_PORT=${port}`,
          '--env', 'NOTIFICATION_SERVER_LOG_LEVEL=info',
          '--env', 'SEAFILE_LOG_TO_STDOUT=false',
          ...database,
          image!,
        ]);
        await waitForPing(podman, container, baseUrl);
      },
      { timeout: 90_000 },
    );
    after(async () => {
      await podman?.run(['rm', '--force', '--time', '0', container]);
      if (logs !== undefined) await rm(logs, { recursive: true, force: true });
    });

    test('answers /ping as the stock server does, and its HEALTHCHECK passes', async () => {
      const response = await fetch(`${baseUrl}/ping`);
      assert.equal(response.status, 200);
      assert.equal(await response.text(), '{"ret": "pong"}\n');
      const health = await podman.run(['healthcheck', 'run', container]);
      assert.equal(health.code, 0, health.stdout + health.stderr);
    });

    test('a subscriber with a token signed with JWT_PRIVATE_KEY receives a published event', async () => {
      const client = await subscribed(`ws://127.0.0.1:${port}`, 'alice@example.com');
      try {
        assert.equal(await publishEvent(baseUrl, 'repo-update', { repo_id: REPO, commit_id: 'c-container' }), 200);
        const message = await client.waitFor((m) => m.type === 'repo-update');
        assert.deepEqual(message.content, { repo_id: REPO, commit_id: 'c-container' });
      } finally {
        client.close();
      }
    });

    test(
      'a group permission change reaches the group\'s members only, looked up through SEAFILE_MYSQL_DB_*',
      { skip: mysqlUrl === undefined ? 'TEST_MYSQL_URL is not set and no MariaDB is installed' : false },
      async () => {
        const wsUrl = `ws://127.0.0.1:${port}`;
        const member = await subscribed(wsUrl, 'alice@example.com');
        const outsider = await subscribed(wsUrl, 'bob@example.com');
        try {
          assert.equal(
            await publishEvent(baseUrl, 'folder-perm-changed', { repo_id: REPO, path: '/docs', type: 'group', change_event: 'add', user: '', group: GROUP, perm: 'rw' }),
            200,
          );
          // Events of a library arrive in order: once the marker is in, the permission change would have been too.
          assert.equal(await publishEvent(baseUrl, 'repo-update', { repo_id: REPO, commit_id: 'after-group-change' }), 200);
          for (const client of [member, outsider]) await client.waitFor((m) => m.content['commit_id'] === 'after-group-change');
          assert.deepEqual(member.messages.map((m) => m.type), ['folder-perm-changed', 'repo-update']);
          assert.equal(member.messages[0]!.content['group'], GROUP);
          assert.deepEqual(outsider.messages.map((m) => m.type), ['repo-update']);
        } finally {
          member.close();
          outsider.close();
        }
      },
    );

    test(
      "behind Caddy with notification-server.yml's labels: the ping, a WebSocket at /notification, seahub's comment update at /notification/events",
      { skip: composeCaddy.skip },
      async () => {
        const proxy = await composeCaddy.start(`127.0.0.1:${port}`);
        let client: TestClient | undefined;
        try {
          const ping = await fetch(`${proxy.url}/notification/ping`);
          assert.equal(await ping.text(), '{"ret": "pong"}\n', proxy.log());
          client = await subscribed(`${proxy.wsUrl}/notification`, 'dave@example.com');
          // Seahub's publisher: a token with only exp, comment_updated with an empty file_path.
          const comment = { repo_id: REPO, type: 'comment_updated', file_uuid: '3c0b6e4e-1111-4c4c-8d8d-000000000001', file_path: '' };
          assert.equal(await publishEvent(`${proxy.url}/notification`, 'comment-update', comment), 200, proxy.log());
          const message = await client.waitFor((m) => m.type === 'comment-update');
          assert.deepEqual(message.content, comment);
        } finally {
          client?.close();
          await proxy.stop();
        }
      },
    );

    test('logs to /shared/seafile/logs/notification-server.log on the mounted volume, and runs as the node user, not root', async () => {
      const path = join(logs, LOG_FILE);
      const text = await readFile(path, 'utf8');
      assert.match(text, /listening/);
      assert.match(text, new RegExp(`\\b${port}\\b`));
      // Seafile's logs directory belongs to root: the entrypoint handed the file to the server's user.
      assert.equal((await stat(path)).uid, 1000);
      const status = await podman.must(['exec', container, 'cat', '/proc/1/status']);
      assert.match(status, /^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
      const stdout = await podman.run(['logs', container]);
      assert.doesNotMatch(stdout.stdout, /listening/, 'with a log file, nothing is logged to stdout');
    });

    test('stops cleanly on SIGTERM: connected clients are closed and the exit code is 0', async () => {
      const client = await subscribed(`ws://127.0.0.1:${port}`, 'carol@example.com');
      const { exitCode, seconds } = await stopAndExitCode(podman, container);
      console.error(`# container stopped ${seconds.toFixed(1)} s after SIGTERM`);
      assert.equal(exitCode, '0');
      await client.closed;
      assert.match(await readFile(join(logs, LOG_FILE), 'utf8'), /SIGTERM/);
    });
  });

  describe('given the stock image\'s command line, with SEAFILE_LOG_TO_STDOUT=true', () => {
    const container = `notification-server-test-stock-${process.pid}`;
    let logs: string;
    let port: number;
    let baseUrl: string;

    before(
      async () => {
        logs = await logsVolume();
        port = await freePort();
        baseUrl = `http://127.0.0.1:${port}`;
        await podman.must([
          'run', '--detach', '--name', container,
          // Its own network, as in Seafile's compose set-up: port 8083 inside, published on loopback only.
          '--publish', `127.0.0.1:${port}:8083`,
          '--volume', `${logs}:/shared/seafile/logs`,
          '--env', `JWT_PRIVATE_KEY=${TEST_KEY}`,
          '--env', 'SEAFILE_LOG_TO_STDOUT=true',
          image!,
          '/opt/seafile/notification-server', '-c', '/opt/seafile', '-l', `/shared/seafile/logs/${LOG_FILE}`,
        ]);
        await waitForPing(podman, container, baseUrl);
      },
      { timeout: 90_000 },
    );
    after(async () => {
      await podman?.run(['rm', '--force', '--time', '0', container]);
      if (logs !== undefined) await rm(logs, { recursive: true, force: true });
    });

    test('listens on 0.0.0.0:8083 inside and delivers an event to a subscriber through the published port', async () => {
      const client = await subscribed(`ws://127.0.0.1:${port}`, 'alice@example.com');
      try {
        assert.equal(await publishEvent(baseUrl, 'repo-update', { repo_id: REPO, commit_id: 'c-stock' }), 200);
        await client.waitFor((m) => m.type === 'repo-update' && m.content['commit_id'] === 'c-stock');
      } finally {
        client.close();
      }
      const output = await podman.must(['logs', container]);
      assert.match(output, /listening on 0\.0\.0\.0:8083/);
    });

    test('logs to stdout only: no log file appears on the volume', async () => {
      await assert.rejects(stat(join(logs, LOG_FILE)), { code: 'ENOENT' });
    });

    test('stops cleanly on SIGTERM with exit code 0', async () => {
      const { exitCode } = await stopAndExitCode(podman, container);
      assert.equal(exitCode, '0');
    });
  });
});
