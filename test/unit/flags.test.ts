import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseServeFlags, SERVE_USAGE } from '../../src/config/flags.js';

test('the reference command line -c <dir> -l - is accepted', () => {
  assert.deepEqual(parseServeFlags(['-c', '/opt/seafile/conf', '-l', '-']), {
    configDir: '/opt/seafile/conf',
    logFile: '-',
    host: null,
    port: null,
    logLevel: null,
    logFormat: null,
    ccnetDb: null,
    stateDir: null,
    workers: null,
    help: false,
  });
});

test('no arguments leave every setting to the environment and config files', () => {
  const flags = parseServeFlags([]);
  assert.equal(flags.configDir, null);
  assert.equal(flags.port, null);
  assert.equal(flags.help, false);
});

test('long options work with a space or an equals sign', () => {
  const flags = parseServeFlags([
    '--config-dir=/conf',
    '--log-file',
    '/var/log/n.log',
    '--host',
    '::',
    '--port=8084',
    '--log-level',
    'debug',
    '--log-format=json',
    '--ccnet-db',
    'mysql://u:p@db/ccnet_db',
    '--state-dir=/var/lib/notif',
    '--workers',
    '4',
  ]);
  assert.deepEqual(flags, {
    configDir: '/conf',
    logFile: '/var/log/n.log',
    host: '::',
    port: 8084,
    logLevel: 'debug',
    logFormat: 'json',
    ccnetDb: 'mysql://u:p@db/ccnet_db',
    stateDir: '/var/lib/notif',
    workers: '4',
    help: false,
  });
});

test('-h and --help ask for help', () => {
  assert.equal(parseServeFlags(['-h']).help, true);
  assert.equal(parseServeFlags(['--help']).help, true);
});

test('an unknown flag is refused by name', () => {
  assert.throws(() => parseServeFlags(['--jwt-private-key', 'x']), {
    name: 'ConfigError',
    message: 'unknown option --jwt-private-key; see --help',
  });
  assert.throws(() => parseServeFlags(['-x']), { name: 'ConfigError', message: 'unknown option -x; see --help' });
});

test('a flag without its value is refused by name', () => {
  assert.throws(() => parseServeFlags(['-c']), { name: 'ConfigError', message: '-c/--config-dir needs a value' });
  assert.throws(() => parseServeFlags(['--port']), { name: 'ConfigError', message: '--port needs a value' });
});

test('a flag followed by another option is refused by name, not swallowed as its value', () => {
  assert.throws(() => parseServeFlags(['-l', '--help']), {
    name: 'ConfigError',
    message: /^-l\/--log-file needs a value but is followed by another option; .*--log-file=<value>/,
  });
});

test('--help takes no value', () => {
  assert.throws(() => parseServeFlags(['--help=yes']), { name: 'ConfigError', message: '-h/--help takes no value' });
});

test('a stray positional argument is refused', () => {
  assert.throws(() => parseServeFlags(['/opt/seafile/conf']), {
    name: 'ConfigError',
    message: /^unexpected argument "\/opt\/seafile\/conf"/,
  });
});

test('a port outside 1..65535 or not a number is refused naming --port', () => {
  for (const bad of ['0', '65536', 'http', '80.5', '-1', '']) {
    assert.throws(() => parseServeFlags([`--port=${bad}`]), { name: 'ConfigError', message: /^--port must be a whole number from 1 to 65535/ }, bad);
  }
  assert.equal(parseServeFlags(['--port', '65535']).port, 65535);
});

test('an empty value is refused naming the flag', () => {
  assert.throws(() => parseServeFlags(['-c', '']), { name: 'ConfigError', message: /^-c\/--config-dir needs a directory/ });
  assert.throws(() => parseServeFlags(['--host=']), { name: 'ConfigError', message: /^--host needs an address/ });
});

test('the help lists every flag and every environment variable', () => {
  const flags = ['-c, --config-dir', '-l, --log-file', '--host', '--port', '--log-level', '--log-format', '--ccnet-db', '--state-dir', '-h, --help'];
  const variables = [
    'JWT_PRIVATE_KEY',
    'NOTIFICATION_SERVER_HOST',
    'NOTIFICATION_SERVER_PORT',
    'NOTIFICATION_SERVER_LOG_LEVEL',
    'NOTIFICATION_SERVER_LOG_FORMAT',
    'SEAFILE_LOG_TO_STDOUT',
    'NOTIFICATION_TOKEN',
    'CCNET_DB_URL',
    'SEAFILE_MYSQL_DB_HOST',
    'SEAFILE_MYSQL_DB_PORT',
    'SEAFILE_MYSQL_DB_USER',
    'SEAFILE_MYSQL_DB_PASSWORD',
    'SEAFILE_MYSQL_DB_CCNET_DB_NAME',
    'NOTIFICATION_SERVER_STATE_DIR',
    'REDIS_URL',
    'NOTIFICATION_SERVER_REDIS_TIMEOUT',
    'NOTIFICATION_SERVER_REDIS_FAILOVER_HOLD',
    'NOTIFICATION_SERVER_REDIS_FAILOVER_HOLD_BYTES',
    'NOTIFICATION_SERVER_PING_INTERVAL',
    'NOTIFICATION_SERVER_DEAD_PEER_TIMEOUT',
    'NOTIFICATION_SERVER_DRAIN_SECONDS',
    'NOTIFICATION_SERVER_GROUP_CACHE_TTL',
    'NOTIFICATION_SERVER_MAX_FRAME_BYTES',
    'NOTIFICATION_SERVER_MAX_EVENT_BYTES',
    'NOTIFICATION_SERVER_SEND_QUEUE_BYTES',
    'NOTIFICATION_SERVER_MAX_CONNECTIONS',
    'NOTIFICATION_SERVER_MAX_LIBRARIES_PER_CONNECTION',
    'NOTIFICATION_SERVER_SUBSCRIBE_TIMEOUT',
    'NOTIFICATION_SERVER_MAX_FAILED_SUBSCRIBES_PER_MINUTE',
    'NOTIFICATION_SERVER_ALLOWED_ORIGINS',
  ];
  for (const name of [...flags, ...variables]) assert.ok(SERVE_USAGE.includes(name), name);
  assert.match(SERVE_USAGE, /default: 8083/);
});
