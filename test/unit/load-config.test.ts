import { availableParallelism } from 'node:os';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { DEFAULT_LIMITS } from '../../src/config/config.js';
import { parseServeFlags, type ServeFlags } from '../../src/config/flags.js';
import { parseDatabaseUrl } from '../../src/config/group-database.js';
import { generateKey } from '../../src/config/jwt-key.js';
import { loadConfig, type LoadedConfig } from '../../src/config/load-config.js';
import { SEAFILE_10_NOTIFICATION_CONF, SEAFILE_10_SEAFILE_CONF, SEAFILE_11_CONF } from '../support/manual-confs.js';

const KEY = 'M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F';

const CCNET_MYSQL_CONF = `[General]
SERVICE_URL = https://seafile.example.com

[Database]
ENGINE = mysql
HOST = 127.0.0.1
PORT = 3306
USER = seafile
PASSWD = p#ss;w0rd=
DB = ccnet_db
CONNECTION_CHARSET = utf8
`;

const scratch = await mkdtemp(join(tmpdir(), 'load-config-'));
after(() => rm(scratch, { recursive: true, force: true }));

let counter = 0;

/** A Seafile top dir: `<top>/conf/<files>`, optionally `<top>/ccnet/GroupMgr/groupmgr.db`. */
async function seafileTop(files: Record<string, string>, options: { sqlite?: boolean } = {}): Promise<{ top: string; conf: string }> {
  const top = join(scratch, `top-${++counter}`);
  const conf = join(top, 'conf');
  await mkdir(conf, { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(conf, name), text);
  if (options.sqlite === true) {
    await mkdir(join(top, 'ccnet', 'GroupMgr'), { recursive: true });
    await writeFile(join(top, 'ccnet', 'GroupMgr', 'groupmgr.db'), '');
  }
  return { top, conf };
}

async function emptyDir(): Promise<string> {
  const dir = join(scratch, `cwd-${++counter}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

function flags(overrides: Partial<ServeFlags> = {}): ServeFlags {
  return { ...parseServeFlags([]), ...overrides };
}

async function load(
  overrides: Partial<ServeFlags>,
  env: Record<string, string | undefined> = {},
  cwd?: string,
): Promise<LoadedConfig> {
  return loadConfig({ flags: flags(overrides), env, cwd: cwd ?? (await emptyDir()) });
}

// ------------------------------------------------------------ generations

test('Seafile 11: seafile.conf [notification] and ccnet.conf [Database] configure everything', async () => {
  const { conf } = await seafileTop({ 'seafile.conf': SEAFILE_11_CONF, 'ccnet.conf': CCNET_MYSQL_CONF });
  const { config, notices } = await load({ configDir: conf });
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.port, 8083);
  assert.equal(config.logLevel, 'info');
  assert.equal(config.jwtPrivateKey, KEY);
  assert.equal(config.jwtKeySource, 'seafile.conf [notification] jwt_private_key');
  assert.equal(config.logFile, join(conf, 'notification-server.log'));
  assert.equal(config.notificationToken, null);
  assert.deepEqual(config.groupDatabase, {
    kind: 'mysql',
    host: '127.0.0.1',
    port: 3306,
    user: 'seafile',
    password: 'p#ss;w0rd=',
    database: 'ccnet_db',
    socketPath: null,
    ssl: false,
  });
  assert.ok(notices.some((n) => n.includes(`Config dir ${conf}: read seafile.conf [notification], no notification.conf, ccnet.conf [Database]`)));
  assert.ok(notices.some((n) => n.includes('MySQL database ccnet_db at 127.0.0.1:3306 as seafile')));
});

test('Seafile 10.0: the key seaf-server signs with (seafile.conf private_key) wins over notification.conf and its stray quote', async () => {
  const { conf } = await seafileTop({
    'seafile.conf': SEAFILE_10_SEAFILE_CONF,
    'notification.conf': SEAFILE_10_NOTIFICATION_CONF,
    'ccnet.conf': CCNET_MYSQL_CONF,
  });
  const { config, notices } = await load({ configDir: conf });
  assert.equal(config.jwtPrivateKey, KEY);
  assert.equal(config.jwtKeySource, 'seafile.conf [notification] private_key');
  assert.equal(config.notificationToken, 'xP7GGgGPVCQu8r0xNJ+k4Q==');
  assert.equal(config.host, '127.0.0.1');
  assert.ok(
    notices.some(
      (n) =>
        n.startsWith('notification.conf [general] private_key differs from seafile.conf [notification] private_key, which is used') &&
        n.includes('unmatched quote'),
    ),
  );
  assert.ok(notices.some((n) => n.includes('static token from seafile.conf [notification] notification_token')));
});

test('Seafile 10.0 notification.conf alone: the key is used with its stray quote, and a notice says so', async () => {
  const { conf } = await seafileTop({ 'notification.conf': SEAFILE_10_NOTIFICATION_CONF });
  const { config, notices } = await load({ configDir: conf });
  assert.equal(config.jwtPrivateKey, `"${KEY}`);
  assert.equal(config.jwtKeySource, 'notification.conf [general] private_key');
  assert.equal(config.notificationToken, 'xP7GGgGPVCQu8r0xNJ+k4Q==');
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.port, 8083);
  assert.ok(notices.some((n) => n.includes('lone double quote')));
});

test('Seafile 12: the environment alone configures key, listener and the MySQL group database', async () => {
  const { config, notices } = await load(
    {},
    {
      JWT_PRIVATE_KEY: KEY,
      NOTIFICATION_SERVER_PORT: '8083',
      NOTIFICATION_SERVER_LOG_LEVEL: 'info',
      SEAFILE_MYSQL_DB_HOST: 'db',
      SEAFILE_MYSQL_DB_PASSWORD: 'secret#;',
      SEAFILE_LOG_TO_STDOUT: 'true',
    },
  );
  assert.equal(config.host, '0.0.0.0');
  assert.equal(config.jwtPrivateKey, KEY);
  assert.equal(config.jwtKeySource, 'JWT_PRIVATE_KEY');
  assert.equal(config.logFile, null);
  assert.deepEqual(config.groupDatabase, {
    kind: 'mysql',
    host: 'db',
    port: 3306,
    user: 'seafile',
    password: 'secret#;',
    database: 'ccnet_db',
    socketPath: null,
    ssl: false,
  });
  for (const notice of notices) assert.ok(!notice.includes('secret#;'), notice);
});

test('Seafile 12 database variables override the defaults', async () => {
  const { config } = await load(
    {},
    {
      JWT_PRIVATE_KEY: KEY,
      SEAFILE_MYSQL_DB_HOST: 'mariadb',
      SEAFILE_MYSQL_DB_PORT: '3307',
      SEAFILE_MYSQL_DB_USER: 'notif',
      SEAFILE_MYSQL_DB_PASSWORD: 'pw',
      SEAFILE_MYSQL_DB_CCNET_DB_NAME: 'ccnet',
    },
  );
  assert.deepEqual(config.groupDatabase, {
    kind: 'mysql',
    host: 'mariadb',
    port: 3307,
    user: 'notif',
    password: 'pw',
    database: 'ccnet',
    socketPath: null,
    ssl: false,
  });
});

test('the manual page as rendered (no [notification] header) is refused with file and line', async () => {
  const { conf } = await seafileTop({ 'seafile.conf': 'enabled = true\nhost =\nport = 8083\n' });
  await assert.rejects(load({ configDir: conf }), {
    name: 'ConfigError',
    message: `${join(conf, 'seafile.conf')}:1: key "enabled" comes before any [section] header`,
  });
});

// ------------------------------------------------------------- precedence

test('a flag beats the environment which beats seafile.conf which beats notification.conf', async () => {
  const { conf } = await seafileTop({
    'seafile.conf': `[notification]\nhost = 10.0.0.2\nport = 8002\nlog_level = warning\njwt_private_key = ${KEY}\n`,
    'notification.conf': '[general]\nhost = 10.0.0.1\nport = 8001\nlog_level = debug\n',
  });
  const env = { NOTIFICATION_SERVER_HOST: '10.0.0.3', NOTIFICATION_SERVER_PORT: '8003', NOTIFICATION_SERVER_LOG_LEVEL: 'error' };

  const withFlags = await load({ configDir: conf, host: '10.0.0.4', port: 8004, logLevel: 'trace' }, env);
  assert.deepEqual([withFlags.config.host, withFlags.config.port, withFlags.config.logLevel], ['10.0.0.4', 8004, 'debug']);
  assert.ok(withFlags.notices.some((n) => n.includes('host 10.0.0.4 (--host), port 8004 (--port), log level debug (--log-level)')));

  const withEnv = await load({ configDir: conf }, env);
  assert.deepEqual([withEnv.config.host, withEnv.config.port, withEnv.config.logLevel], ['10.0.0.3', 8003, 'error']);

  const withSeafileConf = await load({ configDir: conf });
  assert.deepEqual([withSeafileConf.config.host, withSeafileConf.config.port, withSeafileConf.config.logLevel], ['10.0.0.2', 8002, 'warn']);
});

test('notification.conf fills in what seafile.conf leaves out, setting by setting', async () => {
  const { conf } = await seafileTop({
    'seafile.conf': `[notification]\nport = 8002\njwt_private_key = ${KEY}\n`,
    'notification.conf': '[general]\nhost = 10.0.0.1\nport = 8001\nlog_level = debug\n',
  });
  const { config } = await load({ configDir: conf });
  assert.deepEqual([config.host, config.port, config.logLevel], ['10.0.0.1', 8002, 'debug']);
});

test('an empty host in seafile.conf (as the manual ships it) means the default', async () => {
  const { conf } = await seafileTop({ 'seafile.conf': `[notification]\nenabled = true\nhost =\nport = 8083\njwt_private_key = ${KEY}\n` });
  const { config } = await load({ configDir: conf });
  assert.equal(config.host, '0.0.0.0');
});

test('an empty environment variable counts as unset', async () => {
  const { conf } = await seafileTop({ 'seafile.conf': `[notification]\nport = 8002\njwt_private_key = ${KEY}\n` });
  const { config } = await load({ configDir: conf }, { NOTIFICATION_SERVER_PORT: '', NOTIFICATION_SERVER_HOST: '  ' });
  assert.equal(config.port, 8002);
  assert.equal(config.host, '0.0.0.0');
});

test('JWT_PRIVATE_KEY beats seafile.conf jwt_private_key, and the difference is reported without either key', async () => {
  const { conf } = await seafileTop({
    'seafile.conf': SEAFILE_11_CONF,
    'notification.conf': `[general]\nprivate_key = ${KEY}\n`,
  });
  const { config, notices } = await load({ configDir: conf }, { JWT_PRIVATE_KEY: 'from-the-environment' });
  assert.equal(config.jwtPrivateKey, 'from-the-environment');
  assert.equal(config.jwtKeySource, 'JWT_PRIVATE_KEY');
  assert.ok(notices.some((n) => n.startsWith('seafile.conf [notification] jwt_private_key differs from JWT_PRIVATE_KEY, which is used')));
  for (const notice of notices) {
    assert.ok(!notice.includes(KEY) && !notice.includes('from-the-environment'), notice);
  }
});

test('seafile.conf jwt_private_key beats notification.conf private_key', async () => {
  const { conf } = await seafileTop({
    'seafile.conf': SEAFILE_11_CONF,
    'notification.conf': '[general]\nprivate_key = other\n',
  });
  const { config } = await load({ configDir: conf });
  assert.equal(config.jwtPrivateKey, KEY);
});

test('NOTIFICATION_TOKEN beats seafile.conf which beats notification.conf', async () => {
  const { conf } = await seafileTop({
    'seafile.conf': `[notification]\njwt_private_key = ${KEY}\nnotification_token = from-seafile\n`,
    'notification.conf': '[general]\nnotification_token = from-notification\n',
  });
  assert.equal((await load({ configDir: conf }, { NOTIFICATION_TOKEN: 'from-env' })).config.notificationToken, 'from-env');
  const fromFiles = await load({ configDir: conf });
  assert.equal(fromFiles.config.notificationToken, 'from-seafile');
  assert.ok(fromFiles.notices.some((n) => n.startsWith('notification.conf [general] notification_token differs')));
});

test('an empty notification_token leaves static-token publishing off', async () => {
  const { conf } = await seafileTop({ 'notification.conf': `[general]\nprivate_key = ${KEY}\nnotification_token =\n` });
  assert.equal((await load({ configDir: conf })).config.notificationToken, null);
});

// -------------------------------------------------------------- log level

test('log levels are read case-insensitively with logrus spellings mapped', async () => {
  const cases: Array<[string, string]> = [
    ['DEBUG', 'debug'],
    ['trace', 'debug'],
    ['Info', 'info'],
    ['warn', 'warn'],
    ['WARNING', 'warn'],
    ['error', 'error'],
    ['fatal', 'error'],
    ['panic', 'error'],
  ];
  for (const [text, level] of cases) {
    const { config } = await load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_LOG_LEVEL: text });
    assert.equal(config.logLevel, level, text);
  }
});

test('an unknown log level in an option or a file is an error naming where it came from', async () => {
  await assert.rejects(load({ logLevel: 'verbose' }, { JWT_PRIVATE_KEY: KEY }), {
    name: 'ConfigError',
    message: 'invalid log level "verbose" (--log-level): use debug, info, warn or error',
  });
  const { conf } = await seafileTop({ 'seafile.conf': `[notification]\nlog_level = chatty\njwt_private_key = ${KEY}\n` });
  await assert.rejects(load({ configDir: conf }), {
    name: 'ConfigError',
    message: `invalid log level "chatty" (seafile.conf [notification] log_level, ${join(conf, 'seafile.conf')}:2): use debug, info, warn or error`,
  });
});

test('an unknown log level in the environment starts as the stock server does: a warning, and info', async () => {
  const { config, warnings } = await load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_LOG_LEVEL: 'verbose' });
  assert.equal(config.logLevel, 'info');
  assert.deepEqual(warnings, [
    'invalid log level "verbose" (NOTIFICATION_SERVER_LOG_LEVEL): use debug, info, warn or error; using log level info (default), as the stock server does',
  ]);
  // The next source still counts, and an option makes the variable irrelevant.
  const { conf } = await seafileTop({ 'seafile.conf': `[notification]\nlog_level = error\njwt_private_key = ${KEY}\n` });
  const fromFile = await load({ configDir: conf }, { NOTIFICATION_SERVER_LOG_LEVEL: 'loud' });
  assert.equal(fromFile.config.logLevel, 'error');
  assert.match(fromFile.warnings[0]!, /"loud".*using log level error \(seafile\.conf \[notification\] log_level\)/);
  assert.deepEqual((await load({ logLevel: 'debug' }, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_LOG_LEVEL: 'loud' })).warnings, []);
});

// ------------------------------------------------------------------- port

test('an unparsable port in the environment starts as the stock server does: a warning, and 8083', async () => {
  for (const text of ['80a', '0', '70000', '-1']) {
    const { config, warnings } = await load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_PORT: text });
    assert.equal(config.port, 8083, text);
    assert.deepEqual(warnings, [
      `invalid port ${JSON.stringify(text)} (NOTIFICATION_SERVER_PORT): expected a whole number from 1 to 65535; using port 8083 (default), as the stock server does`,
    ]);
  }
  const database = await load({}, { JWT_PRIVATE_KEY: KEY, SEAFILE_MYSQL_DB_HOST: 'db', SEAFILE_MYSQL_DB_PORT: 'mysql' });
  assert.equal(database.config.groupDatabase?.kind === 'mysql' && database.config.groupDatabase.port, 3306);
  assert.match(database.warnings[0]!, /^invalid database port "mysql" \(SEAFILE_MYSQL_DB_PORT\).*using database port 3306, as the stock server does$/);
});

test('an invalid port in an option or a file is an error naming the setting and its source', async () => {
  const { conf } = await seafileTop({ 'notification.conf': `[general]\nport = 70000\nprivate_key = ${KEY}\n` });
  await assert.rejects(load({ configDir: conf }), {
    name: 'ConfigError',
    message: `invalid port "70000" (notification.conf [general] port, ${join(conf, 'notification.conf')}:2): expected a whole number from 1 to 65535`,
  });
});

test('workers: 1 by default, a count from --workers, the environment or seafile.conf, auto is one per core, 0 and 65 are refused', async () => {
  assert.equal((await load({}, { JWT_PRIVATE_KEY: KEY })).config.workers, 1);
  assert.equal((await load({ workers: '3' }, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_WORKERS: '2' })).config.workers, 3);
  assert.equal((await load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_WORKERS: '2' })).config.workers, 2);
  assert.equal((await load({ workers: 'auto' }, { JWT_PRIVATE_KEY: KEY })).config.workers, Math.min(64, availableParallelism()));
  const { conf } = await seafileTop({ 'seafile.conf': `[notification]\njwt_private_key = ${KEY}\nworkers = 4\n` });
  assert.equal((await load({ configDir: conf })).config.workers, 4);
  for (const bad of ['0', '65', 'two']) {
    await assert.rejects(load({ workers: bad }, { JWT_PRIVATE_KEY: KEY }), {
      name: 'ConfigError',
      message: `invalid workers "${bad}" (--workers): expected a whole number from 1 to 64`,
    });
  }
});

// --------------------------------------------------------------- JWT key

test('with a config dir but no key anywhere, start-up stops and says how to fix it', async () => {
  const { conf } = await seafileTop({ 'seafile.conf': '[notification]\nenabled = true\n' });
  await assert.rejects(load({ configDir: conf }), {
    name: 'ConfigError',
    message:
      'JWT_PRIVATE_KEY is not set: set it (or jwt_private_key in seafile.conf [notification]) to the key seaf-server uses; ' +
      'generate one with `notification-server keygen`',
  });
});

test('an empty key is an error naming where it is empty', async () => {
  await assert.rejects(load({}, { JWT_PRIVATE_KEY: '' }), {
    name: 'ConfigError',
    message: /^JWT_PRIVATE_KEY is empty: set it to the key seaf-server uses/,
  });
  const { conf } = await seafileTop({ 'seafile.conf': '[notification]\njwt_private_key =\n' });
  await assert.rejects(load({ configDir: conf }), {
    name: 'ConfigError',
    message: new RegExp(`^seafile\\.conf \\[notification\\] jwt_private_key, ${join(conf, 'seafile.conf')}:2 is empty`),
  });
});

test('a config dir that does not exist is an error', async () => {
  const missing = join(scratch, 'no-such-dir');
  await assert.rejects(load({ configDir: missing }, { JWT_PRIVATE_KEY: KEY }), {
    name: 'ConfigError',
    message: `config directory ${missing} (-c) does not exist`,
  });
  const { conf } = await seafileTop({ 'seafile.conf': SEAFILE_11_CONF });
  await assert.rejects(load({ configDir: join(conf, 'seafile.conf') }), {
    name: 'ConfigError',
    message: /\(-c\) is not a directory$/,
  });
});

test('a relative config dir is resolved against the working directory', async () => {
  const { top } = await seafileTop({ 'seafile.conf': SEAFILE_11_CONF });
  const { config } = await load({ configDir: 'conf' }, {}, top);
  assert.equal(config.logFile, join(top, 'conf', 'notification-server.log'));
});

test('with nothing configured a key is generated once, saved 0600, and reused on the next start', async () => {
  const cwd = await emptyDir();
  const first = await load({}, {}, cwd);
  const path = join(cwd, '.notification-server', 'jwt_private_key');
  assert.equal(first.config.jwtKeySource, path);
  assert.equal(Buffer.from(first.config.jwtPrivateKey, 'base64').length, 32);
  assert.equal((await readFile(path, 'utf8')).trim(), first.config.jwtPrivateKey);
  if (process.platform !== 'win32') assert.equal((await stat(path)).mode & 0o777, 0o600);
  const generated = first.notices.find((n) => n.startsWith('No JWT key configured'));
  assert.ok(generated?.includes(path));
  assert.ok(generated?.includes('JWT_PRIVATE_KEY=') && generated.includes('jwt_private_key'));
  for (const notice of first.notices) assert.ok(!notice.includes(first.config.jwtPrivateKey), notice);

  const second = await load({}, {}, cwd);
  assert.equal(second.config.jwtPrivateKey, first.config.jwtPrivateKey);
  assert.ok(second.notices.some((n) => n.startsWith(`Using the JWT key in ${path}`)));
  assert.ok(!second.notices.some((n) => n.startsWith('No JWT key configured')));
});

test('with nothing configured the server listens on 127.0.0.1 only and logs to stdout', async () => {
  const { config } = await load({});
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.logFile, null);
  assert.equal(config.groupDatabase, null);
});

test('--state-dir beats NOTIFICATION_SERVER_STATE_DIR for the generated key', async () => {
  const cwd = await emptyDir();
  const fromEnv = await load({}, { NOTIFICATION_SERVER_STATE_DIR: 'env-state' }, cwd);
  assert.equal(fromEnv.config.jwtKeySource, join(cwd, 'env-state', 'jwt_private_key'));
  const fromFlag = await load({ stateDir: join(cwd, 'flag-state') }, { NOTIFICATION_SERVER_STATE_DIR: 'env-state' }, cwd);
  assert.equal(fromFlag.config.jwtKeySource, join(cwd, 'flag-state', 'jwt_private_key'));
  assert.notEqual(fromFlag.config.jwtPrivateKey, fromEnv.config.jwtPrivateKey);
});

test('a saved key readable by others is used, with a notice to chmod it', { skip: process.platform === 'win32' }, async () => {
  const cwd = await emptyDir();
  await mkdir(join(cwd, '.notification-server'));
  const path = join(cwd, '.notification-server', 'jwt_private_key');
  await writeFile(path, 'saved-key\n', { mode: 0o644 });
  const { config, notices } = await load({}, {}, cwd);
  assert.equal(config.jwtPrivateKey, 'saved-key');
  assert.ok(notices.some((n) => n.includes(`chmod 600 ${path}`)));
});

test('an empty saved key file is replaced by a generated key', async () => {
  const cwd = await emptyDir();
  await mkdir(join(cwd, '.notification-server'));
  const path = join(cwd, '.notification-server', 'jwt_private_key');
  await writeFile(path, '', { mode: 0o600 });
  const { config } = await load({}, {}, cwd);
  assert.equal(Buffer.from(config.jwtPrivateKey, 'base64').length, 32);
  assert.equal((await readFile(path, 'utf8')).trim(), config.jwtPrivateKey);
});

test('concurrent first starts agree on one generated key', async () => {
  const cwd = await emptyDir();
  const results = await Promise.all([load({}, {}, cwd), load({}, {}, cwd), load({}, {}, cwd)]);
  const keys = new Set(results.map((r) => r.config.jwtPrivateKey));
  assert.equal(keys.size, 1);
});

test('a JWT_PRIVATE_KEY without a config dir means the admin configured it: listen on 0.0.0.0', async () => {
  const { config } = await load({}, { JWT_PRIVATE_KEY: KEY });
  assert.equal(config.host, '0.0.0.0');
  assert.equal(config.jwtKeySource, 'JWT_PRIVATE_KEY');
});

test('generateKey makes 32 random bytes in base64, like openssl rand -base64 32', () => {
  const key = generateKey();
  assert.match(key, /^[A-Za-z0-9+/]{43}=$/);
  assert.equal(Buffer.from(key, 'base64').length, 32);
  assert.notEqual(generateKey(), key);
});

// --------------------------------------------------------------- log file

test('the log file: SEAFILE_LOG_TO_STDOUT beats -l (as with the stock server), which beats the file beside the config', async () => {
  const { conf } = await seafileTop({ 'seafile.conf': SEAFILE_11_CONF });
  const cwd = await emptyDir();
  assert.equal((await load({ configDir: conf }, {}, cwd)).config.logFile, join(conf, 'notification-server.log'));
  assert.equal((await load({ configDir: conf }, { SEAFILE_LOG_TO_STDOUT: 'true' }, cwd)).config.logFile, null);
  assert.equal((await load({ configDir: conf }, { SEAFILE_LOG_TO_STDOUT: 'false' }, cwd)).config.logFile, join(conf, 'notification-server.log'));
  assert.equal((await load({ configDir: conf, logFile: '-' }, {}, cwd)).config.logFile, null);
  assert.equal((await load({ configDir: conf, logFile: 'logs/n.log' }, { SEAFILE_LOG_TO_STDOUT: 'true' }, cwd)).config.logFile, null);
  assert.equal((await load({ configDir: conf, logFile: 'logs/n.log' }, {}, cwd)).config.logFile, join(cwd, 'logs', 'n.log'));
});

test('the log format: --log-format beats NOTIFICATION_SERVER_LOG_FORMAT beats seafile.conf log_format; unset by default', async () => {
  const { conf } = await seafileTop({ 'seafile.conf': `${SEAFILE_11_CONF}log_format = json\n` });
  assert.equal((await load({}, { JWT_PRIVATE_KEY: KEY })).config.logFormat, null);
  assert.equal((await load({ configDir: conf })).config.logFormat, 'json');
  assert.equal((await load({ configDir: conf }, { NOTIFICATION_SERVER_LOG_FORMAT: 'TEXT' })).config.logFormat, 'text');
  assert.equal((await load({ configDir: conf, logFormat: 'json' }, { NOTIFICATION_SERVER_LOG_FORMAT: 'text' })).config.logFormat, 'json');
  await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_LOG_FORMAT: 'logfmt' }), {
    name: 'ConfigError',
    message: 'invalid log format "logfmt" (NOTIFICATION_SERVER_LOG_FORMAT): use text or json',
  });
});

// ---------------------------------------------------------- enabled = false

test('seafile.conf enabled = false is reported, and the server starts anyway', async () => {
  const { conf } = await seafileTop({ 'seafile.conf': SEAFILE_11_CONF.replace('enabled = true', 'enabled = false') });
  const { config, notices } = await load({ configDir: conf });
  assert.equal(config.jwtPrivateKey, KEY);
  assert.ok(notices.some((n) => n.startsWith('seafile.conf [notification] enabled is false: seaf-server will not send events')));
});

test('an unreadable enabled value is reported as seaf-server reads it, and does not stop start-up', async () => {
  const { conf } = await seafileTop({ 'seafile.conf': SEAFILE_11_CONF.replace('enabled = true', 'enabled = ja') });
  const { notices } = await load({ configDir: conf });
  assert.ok(notices.some((n) => n.startsWith('seafile.conf [notification] enabled = ja is not true or false: seaf-server reads it as false')));
});

// --------------------------------------------------------- group database

test('SQLite deployments are detected from the top-dir layout', async () => {
  const { top, conf } = await seafileTop({ 'seafile.conf': SEAFILE_11_CONF }, { sqlite: true });
  const { config, notices } = await load({ configDir: conf });
  assert.deepEqual(config.groupDatabase, { kind: 'sqlite', path: join(top, 'ccnet', 'GroupMgr', 'groupmgr.db') });
  assert.ok(notices.some((n) => n.includes('SQLite') && n.includes('found beside the config dir')));
});

test('without any group database a notice says group events will not be delivered', async () => {
  const { conf } = await seafileTop({ 'seafile.conf': SEAFILE_11_CONF });
  const { config, notices } = await load({ configDir: conf });
  assert.equal(config.groupDatabase, null);
  assert.ok(notices.some((n) => n.startsWith('No group database configured: folder permission changes for a group will not be delivered')));
});

test('ccnet.conf ENGINE = pgsql gives a PostgreSQL group database', async () => {
  const { conf } = await seafileTop({
    'seafile.conf': SEAFILE_11_CONF,
    'ccnet.conf': '[Database]\nENGINE = pgsql\nHOST = pg.internal\nPORT = 5433\nUSER = seafile\nPASSWD = a#b;c\nDB = ccnet\n',
  });
  const { config } = await load({ configDir: conf });
  assert.deepEqual(config.groupDatabase, {
    kind: 'postgres',
    host: 'pg.internal',
    port: 5433,
    user: 'seafile',
    password: 'a#b;c',
    database: 'ccnet',
    socketPath: null,
  });
});

test('ccnet.conf without ENGINE means MySQL; UNIX_SOCKET and USE_SSL are honoured, lower-case keys accepted', async () => {
  const { conf } = await seafileTop({
    'seafile.conf': SEAFILE_11_CONF,
    'ccnet.conf': '[Database]\nuser = seafile\npasswd = pw\ndb = ccnet_db\nunix_socket = /run/mysqld/mysqld.sock\nUSE_SSL = true\n',
  });
  const { config } = await load({ configDir: conf });
  assert.deepEqual(config.groupDatabase, {
    kind: 'mysql',
    host: 'localhost',
    port: 3306,
    user: 'seafile',
    password: 'pw',
    database: 'ccnet_db',
    socketPath: '/run/mysqld/mysqld.sock',
    ssl: true,
  });
});

test('ccnet.conf ENGINE = sqlite points at groupmgr.db beside the config dir', async () => {
  const { top, conf } = await seafileTop({ 'seafile.conf': SEAFILE_11_CONF, 'ccnet.conf': '[Database]\nENGINE = sqlite\n' });
  const { config, notices } = await load({ configDir: conf });
  const path = join(top, 'ccnet', 'GroupMgr', 'groupmgr.db');
  assert.deepEqual(config.groupDatabase, { kind: 'sqlite', path });
  assert.ok(notices.some((n) => n === `${path} does not exist (yet): group lookups will fail until it does.`));
});

test('an unknown ccnet.conf ENGINE is an error', async () => {
  const { conf } = await seafileTop({ 'seafile.conf': SEAFILE_11_CONF, 'ccnet.conf': '[Database]\nENGINE = oracle\n' });
  await assert.rejects(load({ configDir: conf }), {
    name: 'ConfigError',
    message: `${join(conf, 'ccnet.conf')} [Database] ENGINE = oracle is not supported: use mysql, pgsql or sqlite`,
  });
});

test('a ccnet.conf MySQL section without USER is an error naming the key', async () => {
  const { conf } = await seafileTop({ 'seafile.conf': SEAFILE_11_CONF, 'ccnet.conf': '[Database]\nENGINE = mysql\nHOST = db\nDB = ccnet_db\n' });
  await assert.rejects(load({ configDir: conf }), {
    name: 'ConfigError',
    message: `${join(conf, 'ccnet.conf')} [Database] USER is not set (needed for ENGINE = mysql)`,
  });
});

test('a bad ccnet.conf PORT or USE_SSL is an error naming the key', async () => {
  const bad = async (extra: string, message: RegExp): Promise<void> => {
    const { conf } = await seafileTop({ 'seafile.conf': SEAFILE_11_CONF, 'ccnet.conf': `[Database]\nHOST = db\nUSER = u\nDB = d\n${extra}\n` });
    await assert.rejects(load({ configDir: conf }), { name: 'ConfigError', message });
  };
  await bad('PORT = three', /^invalid database port "three" \(ccnet\.conf \[Database\] PORT, /);
  await bad('USE_SSL = maybe', /^invalid value "maybe" for ccnet\.conf \[Database\] USE_SSL, .*ccnet\.conf:5: expected true or false$/);
});

test('--ccnet-db beats CCNET_DB_URL which beats the Seafile 12 variables which beat ccnet.conf', async () => {
  const { conf } = await seafileTop({ 'seafile.conf': SEAFILE_11_CONF, 'ccnet.conf': CCNET_MYSQL_CONF }, { sqlite: true });
  const env = { CCNET_DB_URL: 'mysql://env:pw@env-db/ccnet_db', SEAFILE_MYSQL_DB_HOST: 'seafile12-db' };
  const host = async (overrides: Partial<ServeFlags>, e: Record<string, string>): Promise<string> => {
    const database = (await load({ configDir: conf, ...overrides }, e)).config.groupDatabase;
    return database === null ? 'none' : database.kind === 'sqlite' ? 'sqlite' : database.host;
  };
  assert.equal(await host({ ccnetDb: 'mysql://flag:pw@flag-db/ccnet_db' }, env), 'flag-db');
  assert.equal(await host({}, env), 'env-db');
  assert.equal(await host({}, { SEAFILE_MYSQL_DB_HOST: 'seafile12-db' }), 'seafile12-db');
  assert.equal(await host({}, {}), '127.0.0.1');
});

test('database URLs: MySQL with port, socket, TLS and percent-encoded credentials', () => {
  assert.deepEqual(parseDatabaseUrl('mysql://seafile:p%23ss%3Bw%40rd@db.internal:3307/ccnet_db', 'CCNET_DB_URL', '/'), {
    kind: 'mysql',
    host: 'db.internal',
    port: 3307,
    user: 'seafile',
    password: 'p#ss;w@rd',
    database: 'ccnet_db',
    socketPath: null,
    ssl: false,
  });
  assert.deepEqual(parseDatabaseUrl('mysql://seafile:pw@localhost/ccnet_db?socket=/run/mysqld/mysqld.sock&ssl=true', 'x', '/'), {
    kind: 'mysql',
    host: 'localhost',
    port: 3306,
    user: 'seafile',
    password: 'pw',
    database: 'ccnet_db',
    socketPath: '/run/mysqld/mysqld.sock',
    ssl: true,
  });
  const v6 = parseDatabaseUrl('mysql://u:p@[::1]:3306/d', 'x', '/');
  assert.equal(v6.kind === 'mysql' ? v6.host : '', '::1');
});

test('database URLs: port 0 is refused like any port outside 1-65535', () => {
  for (const url of ['mysql://u:p@db:0/ccnet_db', 'postgres://u:p@db:00/ccnet_db']) {
    assert.throws(() => parseDatabaseUrl(url, 'CCNET_DB_URL', '/'), { name: 'ConfigError', message: 'CCNET_DB_URL: the database port must be from 1 to 65535' });
  }
  assert.throws(() => parseDatabaseUrl('mysql://u:p@db:65536/ccnet_db', 'CCNET_DB_URL', '/'), { name: 'ConfigError' });
});

test('database URLs: postgres:// and postgresql:// with an optional socket dir', () => {
  const expected = {
    kind: 'postgres',
    host: 'pg',
    port: 5432,
    user: 'seafile',
    password: 'pw',
    database: 'ccnet',
    socketPath: null,
  };
  assert.deepEqual(parseDatabaseUrl('postgres://seafile:pw@pg/ccnet', 'x', '/'), expected);
  assert.deepEqual(parseDatabaseUrl('postgresql://seafile:pw@pg:5432/ccnet', 'x', '/'), expected);
  assert.deepEqual(parseDatabaseUrl('postgres://seafile:pw@pg/ccnet?host=/var/run/postgresql', 'x', '/'), {
    ...expected,
    socketPath: '/var/run/postgresql',
  });
});

test('database URLs: sqlite paths, absolute or relative to the working directory', () => {
  assert.deepEqual(parseDatabaseUrl('sqlite:/srv/seafile/ccnet/GroupMgr/groupmgr.db', 'x', '/cwd'), {
    kind: 'sqlite',
    path: '/srv/seafile/ccnet/GroupMgr/groupmgr.db',
  });
  assert.deepEqual(parseDatabaseUrl('sqlite:///srv/groupmgr.db', 'x', '/cwd'), { kind: 'sqlite', path: '/srv/groupmgr.db' });
  assert.deepEqual(parseDatabaseUrl('sqlite:ccnet/GroupMgr/groupmgr.db', 'x', '/cwd'), {
    kind: 'sqlite',
    path: '/cwd/ccnet/GroupMgr/groupmgr.db',
  });
});

test('a bad database URL is an error naming its source and never echoing the password', () => {
  const cases: Array<[string, RegExp]> = [
    ['redis://h/0', /^--ccnet-db: unsupported database URL scheme "redis:"; use mysql:\/\/, postgres:\/\/ or sqlite:$/],
    ['ccnet_db', /^--ccnet-db: unsupported database URL scheme \(none\)/],
    ['mysql://u:hunter2#x@h/d', /^--ccnet-db is not a valid URL; percent-encode/],
    ['mysql://u:hunter2@h', /^--ccnet-db: the URL must name one database/],
    ['mysql://:hunter2@h/d', /^--ccnet-db: the URL has no user name/],
    ['mysql://u:hunter2@h/d?sslmode=require', /^--ccnet-db: unknown URL parameter "sslmode" \(supported: socket, ssl\)$/],
    ['mysql://u:hunter2@h/d?ssl=perhaps', /^invalid value "perhaps" for --ccnet-db ssl parameter: expected true or false$/],
    ['sqlite:', /^--ccnet-db: a sqlite URL is sqlite:\/absolute/],
  ];
  for (const [url, message] of cases) {
    assert.throws(() => parseDatabaseUrl(url, '--ccnet-db', '/'), { name: 'ConfigError', message }, url);
    try {
      parseDatabaseUrl(url, '--ccnet-db', '/');
    } catch (error) {
      assert.ok(!(error as Error).message.includes('hunter2'), url);
    }
  }
});

test('a bad CCNET_DB_URL stops start-up', async () => {
  await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, CCNET_DB_URL: 'oracle://x/y' }), {
    name: 'ConfigError',
    message: /^CCNET_DB_URL: unsupported database URL scheme "oracle:"/,
  });
});

// ------------------------------------------------------------------ tuning

test('tuning: defaults when unset', async () => {
  const { config } = await load({}, { JWT_PRIVATE_KEY: KEY });
  assert.equal(config.pingIntervalMs, 20_000);
  assert.equal(config.deadPeerMs, 50_000);
  assert.equal(config.drainMs, 5_000);
  assert.equal(config.groupCacheTtlMs, 10_000);
  assert.equal(config.keyGraceMs, 600_000);
  assert.deepEqual(config.limits, DEFAULT_LIMITS);
});

test('key_grace: seconds from seafile.conf or the environment, 0 turns the grace off, negative is named', async () => {
  const { conf } = await seafileTop({ 'seafile.conf': `[notification]\njwt_private_key = ${KEY}\nkey_grace = 120\n` });
  const fromFile = await load({ configDir: conf }, {});
  assert.equal(fromFile.config.keyGraceMs, 120_000);
  assert.ok(fromFile.notices.some((n) => n.includes('key_grace 120 s (seafile.conf [notification] key_grace)')));
  assert.equal((await load({ configDir: conf }, { NOTIFICATION_SERVER_KEY_GRACE: '0' })).config.keyGraceMs, 0);
  await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_KEY_GRACE: '-1' }), {
    name: 'ConfigError',
    message: /^invalid key_grace "-1" \(NOTIFICATION_SERVER_KEY_GRACE\): expected a whole number from 0 to /,
  });
});

test('history: 1000 events for 1 hour by default; history_size and history_ttl from seafile.conf or the environment', async () => {
  assert.deepEqual((await load({}, { JWT_PRIVATE_KEY: KEY })).config.history, { size: 1000, ttlMs: 3_600_000 });
  const { conf } = await seafileTop({ 'seafile.conf': `[notification]\njwt_private_key = ${KEY}\nhistory_size = 50\nhistory_ttl = 600\n` });
  const fromFile = await load({ configDir: conf }, {});
  assert.deepEqual(fromFile.config.history, { size: 50, ttlMs: 600_000 });
  assert.ok(fromFile.notices.some((n) => n.includes('history_size 50 events (seafile.conf [notification] history_size)')));
  const fromEnv = await load({ configDir: conf }, { NOTIFICATION_SERVER_HISTORY_SIZE: '0', NOTIFICATION_SERVER_HISTORY_TTL: '30' });
  assert.deepEqual(fromEnv.config.history, { size: 0, ttlMs: 30_000 });
  assert.equal((await load({}, { JWT_PRIVATE_KEY: KEY })).config.gapRefreshWindowMs, 10_000);
  assert.equal((await load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_GAP_REFRESH_WINDOW: '0' })).config.gapRefreshWindowMs, 0);
  await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_HISTORY_TTL: '0' }), {
    name: 'ConfigError',
    message: /^invalid history_ttl "0" \(NOTIFICATION_SERVER_HISTORY_TTL\): expected a whole number from 1 to /,
  });
});

test('long_poll_wait: 25 s by default, in seconds from the environment or seafile.conf, at least 1', async () => {
  assert.equal((await load({}, { JWT_PRIVATE_KEY: KEY })).config.longPollWaitMs, 25_000);
  const { config, notices } = await load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_LONG_POLL_WAIT: '50' });
  assert.equal(config.longPollWaitMs, 50_000);
  assert.ok(notices.some((n) => n.includes('long_poll_wait 50 s (NOTIFICATION_SERVER_LONG_POLL_WAIT)')), notices.join('\n'));
  await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_LONG_POLL_WAIT: '0' }), {
    name: 'ConfigError',
    message: /^invalid long_poll_wait "0" \(NOTIFICATION_SERVER_LONG_POLL_WAIT\): expected a whole number from 1 to /,
  });
});

test('tuning: the environment beats seafile.conf, seconds become milliseconds', async () => {
  const { conf } = await seafileTop({
    'seafile.conf':
      `[notification]\njwt_private_key = ${KEY}\nping_interval = 10\ndead_peer_timeout = 30\ndrain_seconds = 0\n` +
      'group_cache_ttl = 60\nmax_frame_bytes = 4096\nmax_event_bytes = 8192\nsend_queue_bytes = 65536\n',
  });
  const { config, notices } = await load(
    { configDir: conf },
    { NOTIFICATION_SERVER_PING_INTERVAL: '15', NOTIFICATION_SERVER_SEND_QUEUE_BYTES: '131072' },
  );
  assert.equal(config.pingIntervalMs, 15_000);
  assert.equal(config.deadPeerMs, 30_000);
  assert.equal(config.drainMs, 0);
  assert.equal(config.groupCacheTtlMs, 60_000);
  assert.deepEqual(config.limits, { ...DEFAULT_LIMITS, maxFrameBytes: 4096, maxEventBodyBytes: 8192, sendQueueBytes: 131072 });
  assert.ok(notices.some((n) => n.includes('ping_interval 15 s (NOTIFICATION_SERVER_PING_INTERVAL)')));
  assert.ok(notices.some((n) => n.includes('dead_peer_timeout 30 s (seafile.conf [notification] dead_peer_timeout)')));
});

test('tuning: every setting is named when it is not a positive whole number', async () => {
  const names = [
    'PING_INTERVAL',
    'DEAD_PEER_TIMEOUT',
    'MAX_FRAME_BYTES',
    'MAX_EVENT_BYTES',
    'SEND_QUEUE_BYTES',
  ];
  for (const name of names) {
    for (const bad of ['0', '-5', '1.5', 'ten']) {
      const variable = `NOTIFICATION_SERVER_${name}`;
      await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, [variable]: bad }), {
        name: 'ConfigError',
        message: new RegExp(`^invalid ${name.toLowerCase()} "${bad.replace('.', '\\.')}" \\(${variable}\\): expected a whole number from 1 to `),
      });
    }
  }
  for (const name of ['DRAIN_SECONDS', 'GROUP_CACHE_TTL']) {
    const variable = `NOTIFICATION_SERVER_${name}`;
    await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, [variable]: '-1' }), {
      name: 'ConfigError',
      message: new RegExp(`^invalid ${name.toLowerCase()} "-1" \\(${variable}\\): expected a whole number from 0 to `),
    });
  }
});

test('limits: connection limits from the environment or seafile.conf; 0 turns off the subscribe deadline and the failure limit', async () => {
  const defaults = (await load({}, { JWT_PRIVATE_KEY: KEY })).config;
  assert.deepEqual(
    [defaults.limits.maxConnections, defaults.limits.maxLibrariesPerConnection, defaults.limits.subscribeTimeoutMs, defaults.limits.maxFailedSubscribesPerMinute, defaults.limits.headerTimeoutMs],
    [100_000, 10_000, 60_000, 100, 10_000],
  );
  assert.equal(defaults.allowedOrigins, null);
  const { conf } = await seafileTop({
    'seafile.conf':
      `[notification]\njwt_private_key = ${KEY}\nmax_connections = 500\nmax_libraries_per_connection = 20\n` +
      'subscribe_timeout = 0\nmax_failed_subscribes_per_minute = 0\nheader_timeout = 3\nallowed_origins = https://Cloud.Example.com:443 http://seafile.lan:8000\n',
  });
  const { config, notices } = await load({ configDir: conf }, { NOTIFICATION_SERVER_MAX_CONNECTIONS: '800' });
  assert.equal(config.limits.maxConnections, 800);
  assert.equal(config.limits.maxLibrariesPerConnection, 20);
  assert.equal(config.limits.subscribeTimeoutMs, 0);
  assert.equal(config.limits.maxFailedSubscribesPerMinute, 0);
  assert.equal(config.limits.headerTimeoutMs, 3_000);
  assert.deepEqual(config.allowedOrigins, ['https://cloud.example.com', 'http://seafile.lan:8000']);
  assert.ok(notices.some((n) => n.includes('max_connections 800 (NOTIFICATION_SERVER_MAX_CONNECTIONS)')));
  for (const name of ['MAX_CONNECTIONS', 'MAX_LIBRARIES_PER_CONNECTION', 'HEADER_TIMEOUT']) {
    await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, [`NOTIFICATION_SERVER_${name}`]: '0' }), {
      name: 'ConfigError',
      message: new RegExp(`^invalid ${name.toLowerCase()} "0" \\(NOTIFICATION_SERVER_${name}\\): expected a whole number from 1 to `),
    });
  }
});

test('limits: an allowed origin must be scheme://host[:port], as a browser sends it', async () => {
  for (const bad of ['cloud.example.com', 'https://cloud.example.com/', 'https://cloud.example.com/seafile', 'ftp://x', 'https://u:p@x', ' , ']) {
    await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_ALLOWED_ORIGINS: bad === ' , ' ? bad : `https://ok.example, ${bad}` }), {
      name: 'ConfigError',
      message: /NOTIFICATION_SERVER_ALLOWED_ORIGINS/,
    }, bad);
  }
});

test('tuning: a timer longer than Node can schedule is refused', async () => {
  await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_DEAD_PEER_TIMEOUT: '9999999' }), {
    name: 'ConfigError',
    message: /^invalid dead_peer_timeout "9999999" \(NOTIFICATION_SERVER_DEAD_PEER_TIMEOUT\): expected a whole number from 1 to 2147483$/,
  });
});

test('tuning: the dead-peer timeout must be longer than the ping interval', async () => {
  await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_PING_INTERVAL: '50' }), {
    name: 'ConfigError',
    message:
      'dead_peer_timeout (50 s, default) must be longer than ping_interval (50 s, NOTIFICATION_SERVER_PING_INTERVAL), ' +
      'or every client is dropped before its pong can arrive',
  });
  const { conf } = await seafileTop({ 'seafile.conf': `[notification]\njwt_private_key = ${KEY}\ndead_peer_timeout = 10\n` });
  await assert.rejects(load({ configDir: conf }), {
    name: 'ConfigError',
    message: new RegExp(`^dead_peer_timeout \\(10 s, seafile\\.conf \\[notification\\] dead_peer_timeout, ${join(conf, 'seafile.conf')}:3\\) must be longer than ping_interval \\(20 s, default\\)`),
  });
});

// ----------------------------------------------------------------- metrics

test('metrics: on by default; NOTIFICATION_SERVER_METRICS beats seafile.conf [notification] metrics', async () => {
  assert.equal((await load({}, { JWT_PRIVATE_KEY: KEY })).config.metrics, true);
  assert.equal((await load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_METRICS: 'off' })).config.metrics, false);
  const { conf } = await seafileTop({ 'seafile.conf': `[notification]\njwt_private_key = ${KEY}\nmetrics = false\n` });
  const fromFile = await load({ configDir: conf });
  assert.equal(fromFile.config.metrics, false);
  assert.ok(fromFile.notices.some((n) => n === 'Prometheus metrics at GET /metrics are off (seafile.conf [notification] metrics).'));
  assert.equal((await load({ configDir: conf }, { NOTIFICATION_SERVER_METRICS: 'true' })).config.metrics, true);
  await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_METRICS: 'maybe' }), {
    name: 'ConfigError',
    message: 'invalid value "maybe" for NOTIFICATION_SERVER_METRICS: expected true or false',
  });
});

test('admin token: off by default; from NOTIFICATION_SERVER_ADMIN_TOKEN or seafile.conf admin_token; a short one is refused', async () => {
  assert.equal((await load({}, { JWT_PRIVATE_KEY: KEY })).config.adminToken, null);
  const fromEnv = await load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_ADMIN_TOKEN: 'an-admin-token-of-some-length' });
  assert.equal(fromEnv.config.adminToken, 'an-admin-token-of-some-length');
  assert.ok(fromEnv.notices.includes('Status page at /status is on, for the admin token from NOTIFICATION_SERVER_ADMIN_TOKEN.'));
  assert.ok(!fromEnv.notices.some((n) => n.includes('an-admin-token-of-some-length')), 'the token is never in a notice');
  const { conf } = await seafileTop({ 'seafile.conf': `[notification]\njwt_private_key = ${KEY}\nadmin_token = token-from-seafile-conf\n` });
  assert.equal((await load({ configDir: conf })).config.adminToken, 'token-from-seafile-conf');
  await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_ADMIN_TOKEN: 'short' }), {
    name: 'ConfigError',
    message: /^the admin token \(NOTIFICATION_SERVER_ADMIN_TOKEN\) is too short: use at least 16 characters/,
  });
});

test('limits: connections per address and per user, trusted proxies and the group lookup timeout; 0 turns the caps off, none trusts no proxy', async () => {
  const defaults = (await load({}, { JWT_PRIVATE_KEY: KEY })).config;
  assert.deepEqual([defaults.limits.maxConnectionsPerAddress, defaults.limits.maxConnectionsPerUser], [5_000, 1_000]);
  assert.deepEqual(defaults.trustedProxies, ['127.0.0.0/8', '::1']);
  assert.equal(defaults.groupLookupTimeoutMs, 5_000);
  const { conf } = await seafileTop({
    'seafile.conf':
      `[notification]\njwt_private_key = ${KEY}\nmax_connections_per_address = 0\nmax_connections_per_user = 20\n` +
      'trusted_proxies = 10.0.0.5, 192.168.0.0/16 FD00::/8\ngroup_lookup_timeout = 2\n',
  });
  const { config, notices } = await load({ configDir: conf }, { NOTIFICATION_SERVER_MAX_CONNECTIONS_PER_USER: '30' });
  assert.equal(config.limits.maxConnectionsPerAddress, 0);
  assert.equal(config.limits.maxConnectionsPerUser, 30);
  assert.deepEqual(config.trustedProxies, ['10.0.0.5', '192.168.0.0/16', 'fd00::/8']);
  assert.equal(config.groupLookupTimeoutMs, 2_000);
  assert.ok(notices.some((n) => n.includes('trusted_proxies 10.0.0.5 192.168.0.0/16 fd00::/8 (seafile.conf [notification] trusted_proxies)')));
  assert.deepEqual((await load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_TRUSTED_PROXIES: 'None' })).config.trustedProxies, []);
  for (const bad of ['proxy.example.com', '10.0.0.0/33', '::1/129', '10.0.0.1:8080', 'none, 10.0.0.1', '10.0.0/8', ' , ']) {
    await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_TRUSTED_PROXIES: bad }), { name: 'ConfigError', message: /NOTIFICATION_SERVER_TRUSTED_PROXIES/ }, bad);
  }
  await assert.rejects(load({}, { JWT_PRIVATE_KEY: KEY, NOTIFICATION_SERVER_GROUP_LOOKUP_TIMEOUT: '0' }), {
    name: 'ConfigError',
    message: /^invalid group_lookup_timeout "0" \(NOTIFICATION_SERVER_GROUP_LOOKUP_TIMEOUT\): expected a whole number from 1 to /,
  });
});
