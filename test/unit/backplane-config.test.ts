import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { parseServeFlags } from '../../src/config/flags.js';
import { loadConfig, type LoadedConfig } from '../../src/config/load-config.js';

const KEY = 'M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F';
const SECRET = 'pa55-w0rd-secret';

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
    assert.deepEqual(config.backplane, { kind: 'redis', url: `redis://:${SECRET}@redis.internal:6380/2`, displayUrl: 'redis://:***@redis.internal:6380/2', timeoutMs: 5_000 });
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
    assert.deepEqual(fromFile.config.backplane, { kind: 'redis', url: 'redis://10.0.0.5:6379', displayUrl: 'redis://10.0.0.5:6379', timeoutMs: 5_000 });
    assert.ok(fromFile.notices.some((text) => text.includes('(seafile.conf [notification] redis_url)')));
    const fromEnv = await load({ REDIS_URL: 'redis://127.0.0.1:7000' }, files);
    assert.equal(fromEnv.config.backplane.kind === 'redis' && fromEnv.config.backplane.url, 'redis://127.0.0.1:7000');
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
      'invalid Redis URL in REDIS_URL: the scheme is http; ' +
        'expected redis://[[user]:password@]host[:port][/db] or rediss://... for TLS',
    );
    assert.equal(
      await refusal({ REDIS_URL: `redis-host:${SECRET}` }),
      'invalid Redis URL in REDIS_URL: the scheme is redis-host; expected redis://[[user]:password@]host[:port][/db] or rediss://... for TLS',
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
});
