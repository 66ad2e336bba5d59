import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli, type CliResult } from '../support/cli-process.js';
import { closedLoopbackPort, writeSqliteGroups } from '../support/databases.js';
import { documentedNginx } from '../support/proxies.js';
import type { ProxyProcess } from '../support/proxy-process.js';
import { ServerProcess, TEST_KEY } from '../support/server-process.js';

const nginx = documentedNginx();
const CHECKS = ['configuration', 'server', 'key', 'group database', 'ping', 'websocket', 'idle proxy', 'open files'];
/** The main server pings every second, so the idle proxy check waits 1 + 5 s by default. */
const PING_SETTINGS = { NOTIFICATION_SERVER_PING_INTERVAL: '1', NOTIFICATION_SERVER_DEAD_PEER_TIMEOUT: '3' };
const OTHER_KEY = 'another-key-than-the-test-key-0123456789abcdef';

/** Check name → its line, after asserting there is exactly one line per check, in order. */
function linesOf(result: CliResult): Map<string, string> {
  const lines = result.stdout.split('\n').filter((line) => line !== '');
  const names = lines.map((line) => /^(?:OK|WARN|FAIL)\s+([^:]+):/.exec(line)?.[1] ?? `unparsable: ${line}`);
  assert.deepEqual(names, CHECKS, result.stdout + result.stderr);
  return new Map(names.map((name, index) => [name, lines[index]!]));
}

describe('notification-server check, in front of and behind the documented nginx', { skip: nginx.skip }, () => {
  let dir: string;
  let conf: string;
  let server: ServerProcess;
  let goodProxy: ProxyProcess;
  let proxyWithoutUpgrade: ProxyProcess;
  let serverWithOtherKey: ServerProcess;
  let slowPingServer: ServerProcess;
  let proxyWithShortTimeout: ProxyProcess;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'notif-test-check-'));
    conf = join(dir, 'conf');
    await mkdir(conf);
    // A SQLite deployment: ccnet's group database beside conf/.
    writeSqliteGroups(join(dir, 'ccnet', 'GroupMgr', 'groupmgr.db'), { 1: ['alice@example.com'] });
    server = await ServerProcess.start({ args: ['-c', conf, '-l', '-'], env: PING_SETTINGS });
    goodProxy = await nginx.start(`127.0.0.1:${server.port}`);
    proxyWithoutUpgrade = await nginx.start(`127.0.0.1:${server.port}`, (site) => {
      const broken = site.replace(/^\s*proxy_set_header Upgrade .*\n/m, '');
      assert.notEqual(broken, site, 'the documented config has an Upgrade line to remove');
      return broken;
    });
    serverWithOtherKey = await ServerProcess.start({ env: { JWT_PRIVATE_KEY: OTHER_KEY } });
    // Pings every 3 s behind an nginx that gives up on an upstream silent for 1 s.
    slowPingServer = await ServerProcess.start({ env: { NOTIFICATION_SERVER_PING_INTERVAL: '3', NOTIFICATION_SERVER_DEAD_PEER_TIMEOUT: '9' } });
    proxyWithShortTimeout = await nginx.start(`127.0.0.1:${slowPingServer.port}`, (site) => {
      const short = site.replace(/proxy_read_timeout \S+;/, 'proxy_read_timeout 1s;');
      assert.notEqual(short, site, 'the documented config has a proxy_read_timeout to shorten');
      return short;
    });
  });
  after(async () => {
    await goodProxy?.stop();
    await proxyWithoutUpgrade?.stop();
    await proxyWithShortTimeout?.stop();
    await serverWithOtherKey?.stop();
    await slowPingServer?.stop();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** The server's settings, as its environment gives them. */
  const serverEnv = (): Record<string, string> => ({
    JWT_PRIVATE_KEY: TEST_KEY,
    NOTIFICATION_SERVER_HOST: '127.0.0.1',
    NOTIFICATION_SERVER_PORT: String(server.port),
    ...PING_SETTINGS,
  });

  it('with a good proxy every line is OK and it exits 0; the public URL comes from ccnet.conf SERVICE_URL', async () => {
    await writeFile(join(conf, 'ccnet.conf'), `[General]\nSERVICE_URL = ${goodProxy.url}\n`);
    try {
      const result = await runCli(['check', '-c', conf, '--clients', '100'], { env: serverEnv(), openFilesLimit: 4096 });
      const lines = linesOf(result);
      for (const line of lines.values()) assert.match(line, /^OK /, result.stdout);
      assert.match(lines.get('group database')!, /SQLite .*groupmgr\.db answers/);
      assert.match(lines.get('ping')!, new RegExp(`${goodProxy.url}/notification/ping answers`));
      assert.match(lines.get('websocket')!, new RegExp(`ws://127\\.0\\.0\\.1:${goodProxy.port}/notification upgrades`));
      assert.match(lines.get('key')!, new RegExp(`accepts a token signed with the key from JWT_PRIVATE_KEY`));
      assert.match(lines.get('idle proxy')!, /stayed open 6 s with nothing subscribed/);
      assert.match(lines.get('open files')!, /limit 4096 fits 100 clients/);
      assert.equal(result.code, 0, result.stdout);
    } finally {
      await rm(join(conf, 'ccnet.conf'));
    }
  });

  it('with a proxy that does not pass the Upgrade header the websocket line fails with the fix, and it exits 1', async () => {
    const result = await runCli(['check', '-c', conf, '--public-url', proxyWithoutUpgrade.url, '--clients', '100'], {
      env: serverEnv(),
      openFilesLimit: 4096,
    });
    const lines = linesOf(result);
    assert.match(lines.get('ping')!, /^OK /);
    assert.match(lines.get('websocket')!, /^FAIL +websocket: .*answered 426 instead of 101.* Fix: the proxy does not pass the Upgrade and Connection headers: .*proxy_set_header Upgrade \$http_upgrade/);
    assert.match(lines.get('idle proxy')!, /^WARN +idle proxy: .*not opened: answered 426.*; not checked\.$/);
    assert.equal(result.code, 1);
  });

  it('an open-files limit below the expected clients fails with LimitNOFILE as the fix', async () => {
    const result = await runCli(['check', '-c', conf, '--public-url', goodProxy.url, '--clients', '1000', '--idle-seconds', '1'], {
      env: serverEnv(),
      openFilesLimit: 256,
    });
    assert.match(linesOf(result).get('open files')!, /^FAIL +open files: limit 256 is below 1064 .* Fix: set LimitNOFILE=65536 in the systemd unit/);
    assert.equal(result.code, 1);
  });

  it('a server that is down, a group database that does not answer and an unreachable public URL each fail with a fix', async () => {
    const [serverPort, databasePort, proxyPort] = await Promise.all([closedLoopbackPort(), closedLoopbackPort(), closedLoopbackPort()]);
    const result = await runCli(
      ['check', '--ccnet-db', `mysql://seafile@127.0.0.1:${databasePort}/ccnet_db`, '--public-url', `http://127.0.0.1:${proxyPort}/`],
      { env: { ...serverEnv(), NOTIFICATION_SERVER_PORT: String(serverPort) }, openFilesLimit: 4096 },
    );
    const lines = linesOf(result);
    assert.match(lines.get('configuration')!, /^OK /);
    assert.match(lines.get('server')!, /^FAIL +server: .*ECONNREFUSED.* Fix: start the notification server/);
    assert.match(lines.get('group database')!, new RegExp(`^FAIL +group database: MySQL database ccnet_db at 127\\.0\\.0\\.1:${databasePort} .* Fix: check that the database server runs`));
    assert.match(lines.get('ping')!, /^FAIL +ping: .*ECONNREFUSED.* Fix: check the public URL/);
    assert.match(lines.get('websocket')!, /^FAIL +websocket: .*ECONNREFUSED.* Fix: check the public URL/);
    assert.match(lines.get('key')!, /^WARN +key: .*ECONNREFUSED.*not checked/);
    assert.match(lines.get('idle proxy')!, /^WARN +idle proxy: .*not opened: .*ECONNREFUSED.*; not checked\.$/);
    assert.equal(result.code, 1);
  });

  it('without a public URL or a group database those lines are warnings with a fix, and it exits 0', async () => {
    const result = await runCli(['check', '--clients', '100'], { env: serverEnv(), openFilesLimit: 4096 });
    const lines = linesOf(result);
    assert.match(lines.get('server')!, /^OK /);
    assert.match(lines.get('group database')!, /^WARN +group database: none configured.* Fix: /);
    assert.match(lines.get('ping')!, /^WARN +ping: no public URL known.* Fix: pass --public-url/);
    assert.equal(result.code, 0, result.stdout);
  });

  it('a public URL that is not http(s) fails the three proxy lines with the way to write it', async () => {
    const result = await runCli(['check', '--public-url', 'ftp://seafile.example.com', '--clients', '100'], { env: serverEnv(), openFilesLimit: 4096 });
    const lines = linesOf(result);
    for (const name of ['ping', 'websocket', 'idle proxy']) {
      assert.match(lines.get(name)!, /^FAIL +[^:]+: the public URL ftp:\/\/seafile\.example\.com is not http:\/\/ or https:\/\/.* Fix: write the public URL like https:/);
    }
    assert.equal(result.code, 1);
  });

  it('a server that checks another JWT key fails the key line with the fix, and it exits 1', async () => {
    const result = await runCli(['check', '--clients', '100'], {
      env: { ...serverEnv(), NOTIFICATION_SERVER_PORT: String(serverWithOtherKey.port) },
      openFilesLimit: 4096,
    });
    const lines = linesOf(result);
    assert.match(lines.get('server')!, /^OK /);
    assert.match(
      lines.get('key')!,
      /^FAIL +key: the server at .* refuses a token signed with the key from JWT_PRIVATE_KEY .* Fix: seaf-server, seahub and the notification server must use the same JWT key: compare JWT_PRIVATE_KEY \/ seafile\.conf \[notification\] jwt_private_key$/,
    );
    assert.equal(result.code, 1);
  });

  it('a second, different key in seafile.conf is a key warning though the server accepts the key used', async () => {
    await writeFile(join(conf, 'seafile.conf'), `[notification]\njwt_private_key = ${OTHER_KEY}\n`);
    try {
      const result = await runCli(['check', '-c', conf, '--clients', '100'], { env: serverEnv(), openFilesLimit: 4096 });
      const line = linesOf(result).get('key')!;
      assert.match(line, /^WARN +key: the server accepts the key from JWT_PRIVATE_KEY, but .*jwt_private_key.* differs from JWT_PRIVATE_KEY.* Fix: seaf-server, seahub/);
      assert.equal(result.code, 0, result.stdout);
    } finally {
      await rm(join(conf, 'seafile.conf'));
    }
  });

  it('a proxy that closes a WebSocket idle for less than the ping interval fails the idle proxy line with the fix', async () => {
    const result = await runCli(['check', '--public-url', proxyWithShortTimeout.url, '--clients', '100', '--idle-seconds', '5'], {
      env: {
        ...serverEnv(),
        NOTIFICATION_SERVER_PORT: String(slowPingServer.port),
        NOTIFICATION_SERVER_PING_INTERVAL: '3',
        NOTIFICATION_SERVER_DEAD_PEER_TIMEOUT: '9',
      },
      openFilesLimit: 4096,
    });
    const lines = linesOf(result);
    assert.match(lines.get('websocket')!, /^OK /);
    assert.match(lines.get('idle proxy')!, /^FAIL +idle proxy: .*closed after .* s idle.*within 5 s.* Fix: .*nginx proxy_read_timeout, HAProxy timeout tunnel, Apache ProxyTimeout/);
    assert.equal(result.code, 1);
  });

  it('with no JWT key configured the key line is a warning with where to set it', async () => {
    const { JWT_PRIVATE_KEY: _unset, ...withoutKey } = serverEnv();
    const result = await runCli(['check', '--clients', '100'], { env: withoutKey, openFilesLimit: 4096 });
    assert.match(linesOf(result).get('key')!, /^WARN +key: no JWT key configured.*not checked\. Fix: set JWT_PRIVATE_KEY or seafile\.conf \[notification\] jwt_private_key/);
    assert.equal(result.code, 0, result.stdout);
  });

  it('a bad --idle-seconds is refused before anything is checked, with exit 2', async () => {
    for (const bad of ['0', 'soon', '-5']) {
      const result = await runCli(['check', `--idle-seconds=${bad}`], { env: serverEnv() });
      assert.equal(result.code, 2, bad);
      assert.equal(result.stdout, '', bad);
      assert.match(result.stderr, /--idle-seconds must be a whole number of at least 1/, bad);
    }
  });

  it('a setting the server would refuse fails the configuration line', async () => {
    const result = await runCli(['check', '--clients', '100'], {
      env: { ...serverEnv(), NOTIFICATION_SERVER_PING_INTERVAL: '60', NOTIFICATION_SERVER_DEAD_PEER_TIMEOUT: '30' },
      openFilesLimit: 4096,
    });
    const first = result.stdout.split('\n')[0]!;
    assert.match(first, /^FAIL +configuration: dead_peer_timeout .* must be longer than ping_interval/);
    assert.equal(result.code, 1);
  });
});
