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

  it('a stock variable the server ignores (an unknown log level) is a configuration warning naming what is used', async () => {
    const result = await runCli(['check', '--clients', '100'], {
      env: { ...serverEnv(), NOTIFICATION_SERVER_LOG_LEVEL: 'verbose' },
      openFilesLimit: 4096,
    });
    const lines = result.stdout.split('\n');
    assert.match(lines[0]!, /^OK +configuration: /);
    assert.match(lines[1]!, /^WARN +configuration: invalid log level "verbose" \(NOTIFICATION_SERVER_LOG_LEVEL\).*using log level info \(default\), as the stock server does\. Fix: /);
  });
});

describe("notification-server check --seafile-env: what Seafile 12+ is given, checked against this server", () => {
  const SEAFILE_CHECKS = ['ENABLE_NOTIFICATION_SERVER', 'INNER_NOTIFICATION_SERVER_URL', 'NOTIFICATION_SERVER_URL', 'JWT_PRIVATE_KEY'];
  const ALL_CHECKS = [...CHECKS.slice(0, 4), ...SEAFILE_CHECKS, ...CHECKS.slice(4)];
  let dir: string;
  let server: ServerProcess;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'notif-test-seafile-env-'));
    server = await ServerProcess.start();
  });
  after(async () => {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const serverEnv = (): Record<string, string> => ({ JWT_PRIVATE_KEY: TEST_KEY, NOTIFICATION_SERVER_HOST: '127.0.0.1', NOTIFICATION_SERVER_PORT: String(server.port) });

  /** Check name → its line, after asserting the Seafile lines sit between the server's and the proxy's. */
  function seafileLinesOf(result: CliResult): Map<string, string> {
    const lines = result.stdout.split('\n').filter((line) => line !== '');
    const names = lines.map((line) => /^(?:OK|WARN|FAIL)\s+([^:]+):/.exec(line)?.[1] ?? `unparsable: ${line}`);
    assert.deepEqual(names, ALL_CHECKS, result.stdout + result.stderr);
    return new Map(names.map((name, index) => [name, lines[index]!]));
  }

  async function checkWith(envFile: string, env: Record<string, string> = serverEnv()): Promise<CliResult> {
    const path = join(dir, `${Math.random().toString(36).slice(2)}.env`);
    await writeFile(path, envFile);
    return runCli(['check', '--seafile-env', path, '--clients', '100'], { env, openFilesLimit: 4096 });
  }

  it('a .env that matches the running server is OK on every Seafile line, and no key is printed', async () => {
    const result = await checkWith(
      `# Seafile's .env\nexport ENABLE_NOTIFICATION_SERVER=true\nINNER_NOTIFICATION_SERVER_URL="http://127.0.0.1:${server.port}" # the server\n` +
        `NOTIFICATION_SERVER_URL=https://seafile.example.com/notification\nJWT_PRIVATE_KEY='${TEST_KEY}'\n`,
    );
    const lines = seafileLinesOf(result);
    for (const name of SEAFILE_CHECKS) assert.match(lines.get(name)!, /^OK /, result.stdout);
    assert.match(lines.get('INNER_NOTIFICATION_SERVER_URL')!, new RegExp(`http://127\\.0\\.0\\.1:${server.port}/ping answers`));
    assert.match(lines.get('JWT_PRIVATE_KEY')!, /is the server's \(from JWT_PRIVATE_KEY\); neither is shown/);
    assert.ok(!(result.stdout + result.stderr).includes(TEST_KEY), 'the key is never printed');
    assert.equal(result.code, 0, result.stdout);
  });

  it('each way seaf-server would stay silent is a warning with its fix; neither key is printed', async () => {
    const closed = await closedLoopbackPort();
    const result = await checkWith(
      `ENABLE_NOTIFICATION_SERVER=True\nINNER_NOTIFICATION_SERVER_URL=http://127.0.0.1:${closed}/\n` +
        `NOTIFICATION_SERVER_URL=https://seafile.example.com/\nJWT_PRIVATE_KEY=${OTHER_KEY}\n`,
    );
    const lines = seafileLinesOf(result);
    assert.match(
      lines.get('ENABLE_NOTIFICATION_SERVER')!,
      /^WARN +ENABLE_NOTIFICATION_SERVER: "True" in .*\.env, not exactly "true": seaf-server then answers every client's jwt-token request with 404 and publishes nothing.* Fix: set ENABLE_NOTIFICATION_SERVER=true in .*\.env, then recreate the seafile container/,
    );
    assert.match(
      lines.get('INNER_NOTIFICATION_SERVER_URL')!,
      new RegExp(`^WARN +INNER_NOTIFICATION_SERVER_URL: http://127\\.0\\.0\\.1:${closed}/ping: .*ECONNREFUSED.* seaf-server posts every event to .*/events: none would arrive.* Fix: set INNER_NOTIFICATION_SERVER_URL `),
    );
    assert.match(
      lines.get('NOTIFICATION_SERVER_URL')!,
      /^WARN +NOTIFICATION_SERVER_URL: https:\/\/seafile\.example\.com\/ \(in .*\) does not end in \/notification: .* Fix: set NOTIFICATION_SERVER_URL=https:\/\/<your Seafile host>\/notification/,
    );
    assert.match(
      lines.get('JWT_PRIVATE_KEY')!,
      /^WARN +JWT_PRIVATE_KEY: the key in .*\.env differs from the server's \(from JWT_PRIVATE_KEY\); neither is shown\. .*jwt-expired.* Fix: give both the same key/,
    );
    const output = result.stdout + result.stderr;
    assert.ok(!output.includes(TEST_KEY) && !output.includes(OTHER_KEY), 'neither key is printed');
    assert.equal(result.code, 0, 'warnings only');
  });

  it("what the .env leaves unset is named, with the compose file's default where it has one", async () => {
    const result = await checkWith('SEAFILE_SERVER_HOSTNAME=seafile.example.com\nSEAFILE_SERVER_PROTOCOL=https\nJWT_PRIVATE_KEY=\nNOTIFICATION_SERVER_URL=\n');
    const lines = seafileLinesOf(result);
    assert.match(lines.get('ENABLE_NOTIFICATION_SERVER')!, /^WARN +ENABLE_NOTIFICATION_SERVER: not set in .* \(Seafile's compose file then uses false\): .*404/);
    assert.match(
      lines.get('INNER_NOTIFICATION_SERVER_URL')!,
      /^WARN +INNER_NOTIFICATION_SERVER_URL: not set in .*; Seafile's compose file then gives seaf-server http:\/\/notification-server:8083.*not checked from here.*404 and publishes nothing.* Fix: /,
    );
    assert.match(lines.get('NOTIFICATION_SERVER_URL')!, /^OK +NOTIFICATION_SERVER_URL: https:\/\/seafile\.example\.com\/notification \(Seafile's compose default from SEAFILE_SERVER_HOSTNAME/);
    assert.match(lines.get('JWT_PRIVATE_KEY')!, /^WARN +JWT_PRIVATE_KEY: not set in .*: seaf-server does not start without it/);
  });

  it("without --seafile-env, Seafile's variables in the environment are checked (a URL of the public shape answers too)", async () => {
    const result = await runCli(['check', '--clients', '100'], {
      env: { ...serverEnv(), ENABLE_NOTIFICATION_SERVER: 'true', INNER_NOTIFICATION_SERVER_URL: `http://127.0.0.1:${server.port}/notification` },
      openFilesLimit: 4096,
    });
    const lines = seafileLinesOf(result);
    assert.match(lines.get('ENABLE_NOTIFICATION_SERVER')!, /^OK +ENABLE_NOTIFICATION_SERVER: true in the environment/);
    assert.match(lines.get('INNER_NOTIFICATION_SERVER_URL')!, new RegExp(`^OK .*:${server.port}/notification/ping answers .*/notification/events\\)`));
    assert.match(lines.get('NOTIFICATION_SERVER_URL')!, /^WARN +NOTIFICATION_SERVER_URL: not set in the environment: seahub then gives the web UI no notification server.* Fix: .*then restart seaf-server and seahub/);
    assert.match(lines.get('JWT_PRIVATE_KEY')!, /^OK /);
  });

  it('--help names --seafile-env and the four lines', async () => {
    const help = await runCli(['check', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--seafile-env <file> Seafile's Docker \.env/);
    for (const name of SEAFILE_CHECKS) assert.match(help.stdout, new RegExp(`^  ${name} `, 'm'));
  });

  it('a .env that is missing or malformed stops check with exit 2 and says which file and line', async () => {
    const missing = await runCli(['check', '--seafile-env', join(dir, 'nowhere', '.env')], { env: serverEnv() });
    assert.equal(missing.code, 2);
    assert.equal(missing.stdout, '');
    assert.match(missing.stderr, /^notification-server check: cannot read --seafile-env .*nowhere\/\.env: no such file; give the path of the \.env/);
    const malformed = await checkWith('ENABLE_NOTIFICATION_SERVER=true\nthis is not an assignment\n');
    assert.equal(malformed.code, 2);
    assert.equal(malformed.stdout, '');
    assert.match(malformed.stderr, /\.env:2: expected "=" after this/);
  });
});
