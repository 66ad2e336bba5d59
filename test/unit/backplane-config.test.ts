import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { parseServeFlags } from '../../src/config/flags.js';
import { loadConfig, type LoadedConfig } from '../../src/config/load-config.js';

const KEY = 'M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F';
const SECRET = 'pa55-w0rd-secret';
const USAGE =
  'expected redis://[[user]:password@]host[:port][/db], rediss://... for TLS, ' +
  'redis+sentinel://[[user]:password@]host:port[,host:port...]/<master name>[/db] or ' +
  'redis+cluster://[[user]:password@]host:port[,host:port...] (rediss+... for TLS)';

const scratch = await mkdtemp(join(tmpdir(), 'backplane-config-'));
after(() => rm(scratch, { recursive: true, force: true }));
let counter = 0;

async function confDir(files: Record<string, string>): Promise<string> {
  const dir = join(scratch, `conf-${++counter}`);
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

async function load(env: Record<string, string>, files?: Record<string, string>): Promise<LoadedConfig> {
  const configDir = files === undefined ? null : await confDir(files);
  return loadConfig({ flags: { ...parseServeFlags([]), configDir }, env: { JWT_PRIVATE_KEY: KEY, ...env }, cwd: scratch });
}

async function refusal(env: Record<string, string>, files?: Record<string, string>): Promise<string> {
  try {
    await load(env, files);
  } catch (err) {
    assert.equal((err as Error).name, 'ConfigError');
    return (err as Error).message;
  }
  assert.fail('the configuration was accepted');
}

describe('backplane configuration', () => {
  it('with no Redis configured, events stay in this process', async () => {
    const { config, notices } = await load({});
    assert.deepEqual(config.backplane, { kind: 'memory' });
    assert.ok(!notices.some((notice) => notice.includes('Backplane')));
  });

  it('REDIS_URL selects Redis; the notice names it with the password masked', async () => {
    const { config, notices } = await load({ REDIS_URL: `redis://:${SECRET}@redis.internal:6380/2` });
    assert.deepEqual(config.backplane, {
      kind: 'redis',
      connection: { kind: 'single', url: `redis://:${SECRET}@redis.internal:6380/2` },
      displayUrl: 'redis://:***@redis.internal:6380/2',
      timeoutMs: 5_000,
      holdMs: 0,
      holdBytes: 16 * 1024 * 1024,
    });
    const notice = notices.find((text) => text.startsWith('Backplane:'));
    assert.equal(notice, 'Backplane: Redis at redis://:***@redis.internal:6380/2 (REDIS_URL); events reach every node on it.');
    assert.ok(!notices.join('\n').includes(SECRET));
  });

  it('rediss:// with a user and password is accepted', async () => {
    const { config } = await load({ REDIS_URL: `rediss://notify:${SECRET}@redis.example.com` });
    assert.equal(config.backplane.kind, 'redis');
    assert.equal(config.backplane.kind === 'redis' && config.backplane.displayUrl, 'rediss://notify:***@redis.example.com');
  });

  it('seafile.conf [notification] redis_url, and REDIS_URL beats it', async () => {
    const files = { 'seafile.conf': `[notification]\nenabled = true\njwt_private_key = ${KEY}\nredis_url = redis://10.0.0.5:6379\n` };
    const fromFile = await load({}, files);
    assert.deepEqual(fromFile.config.backplane, {
      kind: 'redis',
      connection: { kind: 'single', url: 'redis://10.0.0.5:6379' },
      displayUrl: 'redis://10.0.0.5:6379',
      timeoutMs: 5_000,
      holdMs: 0,
      holdBytes: 16 * 1024 * 1024,
    });
    assert.ok(fromFile.notices.some((text) => text.includes('(seafile.conf [notification] redis_url)')));
    const fromEnv = await load({ REDIS_URL: 'redis://127.0.0.1:7000' }, files);
    assert.deepEqual(fromEnv.config.backplane.kind === 'redis' && fromEnv.config.backplane.connection, { kind: 'single', url: 'redis://127.0.0.1:7000' });
  });

  it('redis_timeout sets how long Redis may stay silent before its connection is reopened', async () => {
    const fromEnv = await load({ REDIS_URL: 'redis://127.0.0.1', NOTIFICATION_SERVER_REDIS_TIMEOUT: '2' });
    assert.equal(fromEnv.config.backplane.kind === 'redis' && fromEnv.config.backplane.timeoutMs, 2_000);
    assert.ok(fromEnv.notices.some((text) => text.includes('timeout 2 s (NOTIFICATION_SERVER_REDIS_TIMEOUT)')));
    const files = { 'seafile.conf': `[notification]\njwt_private_key = ${KEY}\nredis_url = redis://127.0.0.1\nredis_timeout = 0\n` };
    assert.match(await refusal({}, files), /^invalid redis_timeout "0" \(seafile\.conf \[notification\] redis_timeout, .*\): expected a whole number from 1 to 3600$/);
  });

  it('an invalid URL stops the start with the setting named and the password never shown', async () => {
    assert.equal(
      await refusal({ REDIS_URL: `http://:${SECRET}@redis.internal:6379` }),
      `invalid Redis URL in REDIS_URL: the scheme is http; ${USAGE}`,
    );
    assert.equal(
      await refusal({ REDIS_URL: `redis-host:${SECRET}` }),
      `invalid Redis URL in REDIS_URL: the scheme is redis-host; ${USAGE}`,
    );
    const notAUrl = await refusal({ REDIS_URL: `${SECRET} not a url` });
    assert.match(notAUrl, /^invalid Redis URL in REDIS_URL: expected redis:\/\//);
    assert.ok(!notAUrl.includes(SECRET));
    const withQuery = await load({ REDIS_URL: `redis://redis.internal:6379/1?password=${SECRET}` });
    assert.equal(withQuery.config.backplane.kind === 'redis' && withQuery.config.backplane.displayUrl, 'redis://redis.internal:6379/1');
    const badDb = await refusal({ REDIS_URL: `redis://:${SECRET}@redis.internal/cache` });
    assert.match(badDb, /the database must be a number, not "cache"/);
    assert.ok(!badDb.includes(SECRET));
    const inFile = await refusal({}, { 'seafile.conf': `[notification]\njwt_private_key = ${KEY}\nredis_url = redis:///0\n` });
    assert.match(inFile, /^invalid Redis URL .* in seafile\.conf \[notification\] redis_url, .*seafile\.conf:3: no host/);
  });

  it('redis+sentinel:// names the sentinels and the master; the user and password serve the primary and the sentinels', async () => {
    const { config, notices } = await load({ REDIS_URL: `redis+sentinel://notify:${SECRET}@10.0.0.1:26379,10.0.0.2,[fd00::3]:26380/mymaster/2` });
    assert.deepEqual(config.backplane, {
      kind: 'redis',
      connection: {
        kind: 'sentinel',
        sentinels: [
          { host: '10.0.0.1', port: 26379 },
          { host: '10.0.0.2', port: 26379 },
          { host: 'fd00::3', port: 26380 },
        ],
        name: 'mymaster',
        username: 'notify',
        password: SECRET,
        sentinelUsername: 'notify',
        sentinelPassword: SECRET,
        db: 2,
        tls: false,
      },
      displayUrl: 'redis+sentinel://notify:***@10.0.0.1:26379,10.0.0.2,[fd00::3]:26380/mymaster/2',
      timeoutMs: 5_000,
      holdMs: 30_000,
      holdBytes: 16 * 1024 * 1024,
    });
    const notice = notices.find((text) => text.startsWith('Backplane:'));
    assert.equal(
      notice,
      'Backplane: Redis through Sentinel at redis+sentinel://notify:***@10.0.0.1:26379,10.0.0.2,[fd00::3]:26380/mymaster/2 ' +
        '(REDIS_URL, events held up to 30 s while it fails over); events reach every node on it.',
    );
    assert.ok(!notices.join('\n').includes(SECRET));
  });

  it('rediss+sentinel:// is TLS to both; sentinel_username and sentinel_password give the sentinels their own ACL user', async () => {
    const { config } = await load({ REDIS_URL: `rediss+sentinel://:${SECRET}@s1:26379,s2:26379/seafile?sentinel_username=watch&sentinel_password=other%40pw` });
    assert.ok(config.backplane.kind === 'redis' && config.backplane.connection.kind === 'sentinel');
    const { connection, displayUrl } = config.backplane;
    assert.equal(connection.tls, true);
    assert.equal(connection.username, null);
    assert.equal(connection.password, SECRET);
    assert.equal(connection.sentinelUsername, 'watch');
    assert.equal(connection.sentinelPassword, 'other@pw');
    assert.equal(displayUrl, 'rediss+sentinel://:***@s1:26379,s2:26379/seafile');
  });

  it('redis_failover_hold and redis_failover_hold_bytes set how long and how much is held while Redis fails over', async () => {
    const { config } = await load({
      REDIS_URL: 'redis+sentinel://s1/m',
      NOTIFICATION_SERVER_REDIS_FAILOVER_HOLD: '5',
      NOTIFICATION_SERVER_REDIS_FAILOVER_HOLD_BYTES: '1000',
    });
    assert.ok(config.backplane.kind === 'redis');
    assert.equal(config.backplane.holdMs, 5_000);
    assert.equal(config.backplane.holdBytes, 1_000);
    const single = await load({ REDIS_URL: 'redis://127.0.0.1', NOTIFICATION_SERVER_REDIS_FAILOVER_HOLD: '10' });
    assert.equal(single.config.backplane.kind === 'redis' && single.config.backplane.holdMs, 10_000);
    assert.match(await refusal({ REDIS_URL: 'redis+sentinel://s1/m', NOTIFICATION_SERVER_REDIS_FAILOVER_HOLD: 'long' }), /^invalid redis_failover_hold "long" .*expected a whole number from 0 to 600$/);
  });

  it('a Sentinel or Cluster URL that cannot work stops the start with what is wrong, the password never shown', async () => {
    const cases: Array<[string, RegExp]> = [
      [`redis+sentinel://:${SECRET}@s1:26379,s2:26379`, /^invalid Redis URL redis\+sentinel:\/\/:\*\*\*@s1:26379,s2:26379 in REDIS_URL: no master name: add \/<master name> after the sentinels/],
      [`redis+sentinel://:${SECRET}@/mymaster`, /: no host;/],
      [`redis+sentinel://:${SECRET}@s1:99999/mymaster`, /the port of "s1:99999" must be from 1 to 65535/],
      [`redis+sentinel://:${SECRET}@s1:port/mymaster`, /"s1:port" is not host or host:port/],
      [`redis+sentinel://:${SECRET}@s1,,s2/mymaster`, /"" is not host or host:port/],
      [`redis+sentinel://:${SECRET}@s1/mymaster/cache`, /the database must be a number, not "cache"/],
      [`redis+sentinel://:${SECRET}@s1/mymaster/1/2`, /expected at most \/<master name>\/<db> after the sentinels/],
      [`redis+sentinel://:${SECRET}@s1/mymaster?sentinelPassword=x`, /unknown option "sentinelPassword" \(known: sentinel_username, sentinel_password\)/],
      [`redis+sentinel://:%E0%A4%A@s1/mymaster`, /the user or password is not valid percent-encoding/],
      [`redis+cluster://:${SECRET}@n1:7000,n2:7000/0`, /a cluster has no database number or name/],
      [`redis+sentinel:s1/mymaster`, /^invalid Redis URL in REDIS_URL: expected redis:\/\//],
    ];
    for (const [url, expected] of cases) {
      const message = await refusal({ REDIS_URL: url });
      assert.match(message, expected, url);
      assert.ok(!message.includes(SECRET), url);
    }
  });

  it('redis+cluster:// names the seed nodes, with TLS, credentials and a failover hold', async () => {
    const { config, notices } = await load({ REDIS_URL: `rediss+cluster://notify:${SECRET}@n1:7000,[::1]:7001,n3` });
    assert.deepEqual(config.backplane, {
      kind: 'redis',
      connection: {
        kind: 'cluster',
        nodes: [{ host: 'n1', port: 7000 }, { host: '::1', port: 7001 }, { host: 'n3', port: 6379 }],
        username: 'notify',
        password: SECRET,
        tls: true,
      },
      displayUrl: 'rediss+cluster://notify:***@n1:7000,[::1]:7001,n3',
      timeoutMs: 5000,
      holdMs: 30_000,
      holdBytes: 16 * 1024 * 1024,
    });
    assert.ok(notices.some((n) => n.startsWith('Backplane: Redis Cluster at rediss+cluster://notify:***@')));
  });
});
