import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { ConfigError } from '../../src/config/config.js';
import { parseKeyFile, readKeyFile } from '../../src/config/keyfile.js';
import { SEAFILE_10_NOTIFICATION_CONF, SEAFILE_11_CONF } from '../support/manual-confs.js';

// The Seafile 10.0 manual's page as rendered (seeds/000) lost the [notification] header.
const RENDERED_PAGE_SNIPPET = `# jwt_private_key are required.You should generate it manually.
enabled = true
# the ip of notification server. (Do not modify the host when using Nginx or Apache, as Nginx or Apache will proxy the requests to this address)
host =
# the port of notification server
port = 8083
`;

test('the Seafile 11 manual sample reads as seaf-server reads it', () => {
  const file = parseKeyFile(SEAFILE_11_CONF, 'seafile.conf');
  assert.deepEqual(file.groupNames(), ['notification']);
  assert.equal(file.get('notification', 'enabled'), 'true');
  assert.equal(file.get('notification', 'host'), '127.0.0.1');
  assert.equal(file.get('notification', 'port'), '8083');
  assert.equal(file.get('notification', 'log_level'), 'info');
  assert.equal(file.get('notification', 'jwt_private_key'), 'M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F');
});

test('a lookup names the file, section, key and line it came from', () => {
  const found = parseKeyFile(SEAFILE_11_CONF, '/etc/seafile/conf/seafile.conf').lookup('notification', 'port');
  assert.deepEqual(found, {
    group: 'notification',
    key: 'port',
    value: '8083',
    line: 7,
    source: 'seafile.conf [notification] port',
  });
});

test('a stray quote stays part of the value, as GKeyFile keeps it', () => {
  const file = parseKeyFile(SEAFILE_10_NOTIFICATION_CONF, 'notification.conf');
  assert.equal(file.get('general', 'private_key'), '"M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F');
});

test('matched quotes are not stripped either', () => {
  const file = parseKeyFile('[a]\nk = "quoted"\n', 'x.conf');
  assert.equal(file.get('a', 'k'), '"quoted"');
});

test('a value keeps every = after the first one', () => {
  const file = parseKeyFile(SEAFILE_10_NOTIFICATION_CONF, 'notification.conf');
  assert.equal(file.get('general', 'notification_token'), 'xP7GGgGPVCQu8r0xNJ+k4Q==');
});

test('# and ; inside a value are not comments', () => {
  const file = parseKeyFile(
    '[notification]\njwt_private_key = k#9;x(=)@!\nhost = 10.0.0.1 # not a comment\npassword=;starts with semicolon\n',
    'seafile.conf',
  );
  assert.equal(file.get('notification', 'jwt_private_key'), 'k#9;x(=)@!');
  assert.equal(file.get('notification', 'host'), '10.0.0.1 # not a comment');
  assert.equal(file.get('notification', 'password'), ';starts with semicolon');
});

test('lines starting with # or ;, even indented, are comments, and blank lines are ignored', () => {
  const file = parseKeyFile('; comment\n\n   # indented comment\n\t; another\n[a]\n\n  k = v\n', 'x.conf');
  assert.deepEqual(file.keys('a'), ['k']);
  assert.equal(file.get('a', 'k'), 'v');
});

test('whitespace around keys and values is trimmed', () => {
  const file = parseKeyFile('[a]\n  key with space \t=\t value with space  \n', 'x.conf');
  assert.equal(file.get('a', 'key with space'), 'value with space');
});

test('GKeyFile escapes are decoded', () => {
  const file = parseKeyFile('[a]\nk = \\sleading\\ttab\\nnewline\\rcr\\\\backslash\n', 'x.conf');
  assert.equal(file.get('a', 'k'), ' leading\ttab\nnewline\rcr\\backslash');
});

test('an invalid escape is an error naming file and line when the value is used', () => {
  const file = parseKeyFile('[a]\nok = fine\nbad = C:\\path\n', '/etc/x.conf');
  assert.equal(file.get('a', 'ok'), 'fine');
  assert.throws(() => file.get('a', 'bad'), {
    name: 'ConfigError',
    message: /^\/etc\/x\.conf:3: x\.conf \[a\] bad: invalid escape "\\p"/,
  });
});

test('a value ending in a lone backslash is an error', () => {
  const file = parseKeyFile('[a]\nk = abc\\\n', 'x.conf');
  assert.throws(() => file.get('a', 'k'), { name: 'ConfigError', message: /x\.conf:2: .*lone backslash/ });
});

test('CRLF line ends and a BOM are tolerated', () => {
  const file = parseKeyFile('\uFEFF[notification]\r\nport = 8083\r\njwt_private_key = abc\r\n', 'seafile.conf');
  assert.equal(file.get('notification', 'port'), '8083');
  assert.equal(file.get('notification', 'jwt_private_key'), 'abc');
});

test('keys are case-sensitive, and a caller may list the spellings it accepts', () => {
  const file = parseKeyFile('[Database]\nengine = mysql\nHOST = db\n', 'ccnet.conf');
  assert.equal(file.get('Database', 'ENGINE'), null);
  assert.equal(file.get('Database', ['ENGINE', 'engine']), 'mysql');
  assert.equal(file.get('Database', ['HOST', 'host']), 'db');
  assert.equal(file.lookup('Database', ['ENGINE', 'engine'])?.source, 'ccnet.conf [Database] engine');
  assert.equal(file.hasGroup('database'), false);
});

test('the last duplicate key wins and a repeated section is merged', () => {
  const file = parseKeyFile('[a]\nk = 1\n[b]\nx = y\n[a]\nk = 2\nj = 3\n', 'x.conf');
  assert.equal(file.get('a', 'k'), '2');
  assert.equal(file.get('a', 'j'), '3');
  assert.deepEqual(file.groupNames(), ['a', 'b']);
});

test('blanks after a section header are accepted', () => {
  const file = parseKeyFile('[general]  \t\nhost = h\n', 'notification.conf');
  assert.equal(file.get('general', 'host'), 'h');
});

test('an empty value is an empty string, a missing key or section is null', () => {
  const file = parseKeyFile('[a]\nk =\n', 'x.conf');
  assert.equal(file.get('a', 'k'), '');
  assert.equal(file.get('a', 'missing'), null);
  assert.equal(file.get('nope', 'k'), null);
});

test('keys before any section (the manual page as rendered) are an error with the line number', () => {
  assert.throws(() => parseKeyFile(RENDERED_PAGE_SNIPPET, '/conf/seafile.conf'), {
    name: 'ConfigError',
    message: '/conf/seafile.conf:2: key "enabled" comes before any [section] header',
  });
});

test('a line that is neither key, section nor comment is an error that does not echo the line', () => {
  let caught: unknown;
  try {
    parseKeyFile('[notification]\njwt_private_key =\nM@O8VWUb81YvmtWLHGB2I\n', 'seafile.conf');
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError);
  assert.match(caught.message, /^seafile\.conf:3: expected "key = value", a \[section\] header or a # comment$/);
  assert.doesNotMatch(caught.message, /M@O8/);
});

test('malformed lines are errors', () => {
  const cases: Array<[string, RegExp]> = [
    ['[a]\n= value\n', /^x\.conf:2: expected "key = value"/],
    ['[unclosed\n', /^x\.conf:1: expected "key = value"/],
    ['[a] trailing\n', /^x\.conf:1: expected "key = value"/],
    ['[]\n', /^x\.conf:1: invalid section name \[\]/],
    ['[a]\nk[ = v\n', /^x\.conf:2: invalid key name "k\["/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseKeyFile(text, 'x.conf'), { name: 'ConfigError', message }, text);
  }
});

test('readKeyFile returns null for a missing file and parses an existing one', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'keyfile-'));
  try {
    assert.equal(await readKeyFile(join(dir, 'absent.conf')), null);
    const path = join(dir, 'seafile.conf');
    await writeFile(path, SEAFILE_11_CONF);
    const file = await readKeyFile(path);
    assert.equal(file?.fileName, path);
    assert.equal(file?.name, 'seafile.conf');
    assert.equal(file?.get('notification', 'port'), '8083');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('readKeyFile on a directory is a ConfigError naming the path', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'keyfile-'));
  try {
    await assert.rejects(readKeyFile(dir), { name: 'ConfigError', message: new RegExp(`^cannot read ${dir}`) });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
