import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { ConfigError } from '../../src/config/config.js';
import { parseEnvFile, readSeafileEnvFile } from '../../src/config/seafile-env-file.js';

// The shape of Seafile 13's docker .env: comments, blanks, a trailing comment, references.
const SEAFILE_13_ENV = `#################################
# Docker compose configurations #
#################################
COMPOSE_FILE='seafile-server.yml,caddy.yml,seadoc.yml'
COMPOSE_PATH_SEPARATOR=','

## Persistent Storage
BASIC_STORAGE_PATH=/opt
SEAFILE_VOLUME=$BASIC_STORAGE_PATH/seafile-data
SEAFILE_SERVER_HOSTNAME=seafile.example.com
SEAFILE_SERVER_PROTOCOL=http
JWT_PRIVATE_KEY=
CACHE_PROVIDER=redis # or memcached

## Notification
NOTIFICATION_SERVER_URL=
`;

describe("Seafile's .env, read as docker compose reads it", () => {
  it("reads Seafile 13's template: quotes, comments after a blank, references to earlier lines, empty values", () => {
    const values = parseEnvFile(SEAFILE_13_ENV, '.env', {});
    assert.equal(values.get('COMPOSE_FILE'), 'seafile-server.yml,caddy.yml,seadoc.yml');
    assert.equal(values.get('SEAFILE_VOLUME'), '/opt/seafile-data');
    assert.equal(values.get('CACHE_PROVIDER'), 'redis');
    assert.equal(values.get('JWT_PRIVATE_KEY'), '');
    assert.equal(values.get('NOTIFICATION_SERVER_URL'), '');
    assert.equal(values.has('ENABLE_NOTIFICATION_SERVER'), false);
  });

  it('takes an export prefix, blanks around =, CRLF line ends, and # inside a value', () => {
    const values = parseEnvFile('export ENABLE_NOTIFICATION_SERVER=true\r\n  KEY = a#b\r\nexport\tOTHER="x"\r\n', '.env', {});
    assert.deepEqual([...values], [['ENABLE_NOTIFICATION_SERVER', 'true'], ['KEY', 'a#b'], ['OTHER', 'x']]);
  });

  it('keeps single-quoted text as written and reads escapes and references in double quotes', () => {
    const values = parseEnvFile(
      `HOST=seafile.example.com\nA='$HOST \\n # not a comment'\nB="https://\${HOST}/notification\\t\\"q\\" \\$HOST" # comment\nC="two\nlines"\n`,
      '.env',
      {},
    );
    assert.equal(values.get('A'), '$HOST \\n # not a comment');
    assert.equal(values.get('B'), 'https://seafile.example.com/notification\t"q" $HOST');
    assert.equal(values.get('C'), 'two\nlines');
  });

  it('gives ${NAME:-default} its default for an unset or empty name, nested, and takes other names from the environment', () => {
    const values = parseEnvFile(
      'EMPTY=\nA=${EMPTY:-${PROTO:-http}://x}\nB=${EMPTY-kept empty}\nC=${FROM_ENV}/y\nD=$$literal\nE=${UNSET:?must be set}\n',
      '.env',
      { FROM_ENV: 'env' },
    );
    assert.equal(values.get('A'), 'http://x');
    assert.equal(values.get('B'), '');
    assert.equal(values.get('C'), 'env/y');
    assert.equal(values.get('D'), '$literal');
    assert.equal(values.get('E'), '');
  });

  it('a bare name takes its value from the environment, as compose does', () => {
    assert.deepEqual([...parseEnvFile('JWT_PRIVATE_KEY\nUNSET\n', '.env', { JWT_PRIVATE_KEY: 'k' })], [['JWT_PRIVATE_KEY', 'k']]);
  });

  it('refuses what is not NAME=value, naming the file and line', () => {
    assert.throws(() => parseEnvFile('A=1\n=oops\n', '/opt/.env', {}), (error: unknown) => error instanceof ConfigError && /\/opt\/\.env:2: expected NAME=value/.test(error.message));
    assert.throws(() => parseEnvFile('A 1\n', '.env', {}), /\.env:1: expected "=" after A/);
    assert.throws(() => parseEnvFile('A="never closed\nB=2\n', '.env', {}), /\.env:1: the double quote after A= is never closed/);
    assert.throws(() => parseEnvFile("A='x' trailing\n", '.env', {}), /\.env:1: unexpected "trailing" after the quoted value of A/);
    assert.throws(() => parseEnvFile('A=${B\n', '.env', {}), /\.env:1: "\$\{" without its closing "\}"/);
  });

  it('a missing file or a directory is a ConfigError that names the path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'notif-test-env-'));
    try {
      await assert.rejects(readSeafileEnvFile(join(dir, 'missing.env'), {}), /cannot read --seafile-env .*missing\.env: no such file/);
      await assert.rejects(readSeafileEnvFile(dir, {}), /cannot read --seafile-env .*: it is a directory/);
      await writeFile(join(dir, '.env'), 'ENABLE_NOTIFICATION_SERVER=true\n');
      const read = await readSeafileEnvFile(join(dir, '.env'), {});
      assert.equal(read.fromFile, true);
      assert.equal(read.values.get('ENABLE_NOTIFICATION_SERVER'), 'true');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
