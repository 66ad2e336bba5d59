import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from '../../src/config/config.js';
import { parseServeFlags, type ServeFlags } from '../../src/config/flags.js';
import { parseDatabaseUrl } from '../../src/config/group-database.js';
import { parseKeyFile } from '../../src/config/keyfile.js';
import { parseBoolean, parseInteger, parseLogLevel } from '../../src/config/setting.js';
import { check, outcome } from '../support/property.js';

function assertConfigError(error: unknown): void {
  assert.ok(error instanceof ConfigError, `threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
}

const lineChars = fc.constantFrom(...'[]=#; \t\\abcAB01_-.@\u00e9\r\v\f', '\\s', '\\n', '\\x', '\ufeff');

describe('key file parser (properties)', () => {
  const keyFileText = fc
    .array(fc.oneof(fc.string({ unit: lineChars, maxLength: 20 }), fc.string({ unit: 'binary', maxLength: 20 })), { maxLength: 8 })
    .map((lines) => lines.join('\n'));

  it('any text parses, or fails with a ConfigError naming the line; every lookup returns a value or a ConfigError', () => {
    check(
      fc.property(keyFileText, (text) => {
        const parsed = outcome(() => parseKeyFile(text, 'seafile.conf'));
        if (!parsed.ok) {
          assertConfigError(parsed.error);
          assert.match((parsed.error as Error).message, /^seafile\.conf:\d+: /);
          return;
        }
        const file = parsed.value;
        for (const group of file.groupNames()) {
          for (const key of file.keys(group)) {
            const read = outcome(() => file.get(group, key));
            if (read.ok) assert.equal(typeof read.value, 'string');
            else assertConfigError(read.error);
          }
        }
      }),
      1000,
    );
  });

  // GKeyFile's own writer escapes these; \v and \f have no escape and would be trimmed at the ends.
  const valueChar = fc.oneof(fc.constantFrom(' ', '\t', '\n', '\r', '\\', '#', ';', '=', '"', '[', ']'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })).filter(
    (c) => c !== '\v' && c !== '\f',
  );
  const value = fc.string({ unit: valueChar, maxLength: 16 });
  const keyName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_.-]{0,12}(\[[a-z_]{1,5}\])?$/);
  const groupName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9 _.-]{0,12}$/);

  function escape(text: string, style: 's' | 'raw'): string {
    return text.replace(/[\\\n\t\r ]/g, (c) => {
      if (c === ' ') return style === 's' ? '\\s' : ' ';
      return { '\\': '\\\\', '\n': '\\n', '\t': '\\t', '\r': '\\r' }[c]!;
    });
  }

  /** Inner spaces may stay raw; those at the ends must be \s or the parser trims them. */
  function encodeValue(text: string, rawInner: boolean): string {
    if (!rawInner) return escape(text, 's');
    const lead = /^ */.exec(text)![0].length;
    const trail = text.length === lead ? 0 : /( *)$/.exec(text)![1]!.length;
    return escape(text.slice(0, lead), 's') + escape(text.slice(lead, text.length - trail), 'raw') + escape(text.slice(text.length - trail), 's');
  }

  const entry = fc.tuple(groupName, keyName, value, fc.boolean(), fc.constantFrom('', ' ', '\t'), fc.constantFrom('', ' ', '  '));
  const document = fc.tuple(
    fc.array(entry, { maxLength: 10 }),
    fc.constantFrom('\n', '\r\n'),
    fc.boolean(),
    fc.array(fc.constantFrom('', '# a comment = x', '; [not a group]', '   '), { maxLength: 10 }),
  );

  it('written values read back exactly; the last duplicate wins and repeated sections merge', () => {
    check(
      fc.property(document, ([entries, newline, bom, noise]) => {
        const lines: string[] = [];
        const model = new Map<string, Map<string, string>>();
        entries.forEach(([group, key, text, rawInner, before, around], i) => {
          lines.push(`${before}[${group}]`);
          if (noise[i] !== undefined) lines.push(noise[i]!);
          lines.push(`${before}${key}${around}=${around}${encodeValue(text, rawInner)}`);
          const section = model.get(group) ?? new Map<string, string>();
          section.set(key, text);
          model.set(group, section);
        });
        const file = parseKeyFile((bom ? '\ufeff' : '') + lines.join(newline), 'ccnet.conf');
        assert.deepEqual(new Set(file.groupNames()), new Set(model.keys()));
        for (const [group, section] of model) {
          assert.deepEqual(new Set(file.keys(group)), new Set(section.keys()));
          for (const [key, text] of section) assert.equal(file.get(group, key), text, `[${group}] ${key}`);
        }
      }),
      500,
    );
  });
});

describe('command-line flags (properties)', () => {
  const flagWords = fc.constantFrom('-c', '-l', '-h', '--config-dir', '--log-file', '--host', '--port', '--port=', '--log-level', '--ccnet-db', '--state-dir', '--help', '--help=1', '--', '-', '-x', '--nope', '-cl', '-hc');
  const argv = fc.array(fc.oneof(flagWords, fc.string({ maxLength: 10 }), fc.string({ unit: 'binary', maxLength: 6 })), { maxLength: 8 });

  it('any argument list parses or fails with a ConfigError', () => {
    check(
      fc.property(argv, (args) => {
        const result = outcome(() => parseServeFlags(args));
        if (!result.ok) assertConfigError(result.error);
        else if (result.value.port !== null) assert.ok(Number.isInteger(result.value.port) && result.value.port >= 1 && result.value.port <= 65535);
      }),
      1000,
    );
  });

  const text = fc.string({ minLength: 1, maxLength: 12 }).filter((t) => t.trim() !== '');
  const flags = fc.record({
    configDir: fc.option(text, { nil: null }),
    logFile: fc.option(text, { nil: null }),
    host: fc.option(text, { nil: null }),
    port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null }),
    logLevel: fc.option(text, { nil: null }),
    logFormat: fc.option(text, { nil: null }),
    ccnetDb: fc.option(text, { nil: null }),
    stateDir: fc.option(text, { nil: null }),
    workers: fc.option(text, { nil: null }),
    help: fc.boolean(),
  });
  const SPELLINGS: Record<Exclude<keyof ServeFlags, 'help'>, string[]> = {
    configDir: ['-c', '--config-dir'],
    logFile: ['-l', '--log-file'],
    host: ['--host'],
    port: ['--port'],
    logLevel: ['--log-level'],
    logFormat: ['--log-format'],
    ccnetDb: ['--ccnet-db'],
    stateDir: ['--state-dir'],
    workers: ['--workers'],
  };

  it('any set of values written as options, in any order and spelling, reads back the same', () => {
    check(
      fc.property(flags, fc.array(fc.nat(), { minLength: 10, maxLength: 10 }), (given, choices) => {
        const groups: string[][] = [];
        let n = 0;
        for (const [name, spellings] of Object.entries(SPELLINGS) as Array<[keyof typeof SPELLINGS, string[]]>) {
          const value = given[name];
          if (value === null) continue;
          const flag = spellings[choices[n++]! % spellings.length]!;
          const textValue = String(value);
          // A value that looks like an option must be attached: --name=value (short options cannot).
          const attached = textValue.startsWith('-') || choices[n]! % 2 === 0;
          const long = spellings[spellings.length - 1]!;
          groups.push(attached ? [`${long}=${textValue}`] : [flag, textValue]);
        }
        if (given.help) groups.push([choices[8]! % 2 === 0 ? '-h' : '--help']);
        const rotate = choices[7]! % (groups.length + 1);
        const args = [...groups.slice(rotate), ...groups.slice(0, rotate)].flat();
        assert.deepEqual(parseServeFlags(args), { ...given });
      }),
      500,
    );
  });
});

describe('database URLs (properties)', () => {
  const secret = fc.string({ unit: 'binary', minLength: 8, maxLength: 20 }).filter((s) => s.trim().length >= 8);
  const urlLike = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.tuple(fc.constantFrom('mysql://', 'postgres://', 'postgresql://', 'sqlite:', 'sqlite3:', 'mysql:', 'MYSQL://', 'http://', ''), fc.string({ unit: fc.constantFrom(...'ab:@/?&=%#[]120.~ '), maxLength: 30 })).map(
      ([scheme, rest]) => scheme + rest,
    ),
    { weight: 4, arbitrary: fc
      .tuple(
        fc.constantFrom('mysql', 'postgres', 'postgresql'),
        fc.constantFrom('', 'u@', 'u:@', 'seafile@', '@', 'u%zz@'),
        fc.constantFrom('db', '[::1]', '127.0.0.1', '', '[::1', 'h h'),
        fc.constantFrom('', ':', ':0', ':00', ':3306', ':65535', ':65536', ':-1', ':x'),
        fc.constantFrom('/ccnet_db', '/', '', '/a/b', '/%2F', '/%E0%A4%A'),
        fc.constantFrom('', '?socket=/run/m.sock', '?ssl=true', '?ssl=maybe', '?host=/run/pg', '?socket=', '?x=1'),
      )
      .map((parts) => `${parts[0]}://${parts.slice(1).join('')}`) },
  );

  it('any text is a database config or a ConfigError that never echoes the password', () => {
    check(
      fc.property(urlLike, secret, fc.nat(), (text, password, at) => {
        // Put a known password where a URL keeps one, when there is a user part to attach it to.
        const withPassword = text.includes('@') ? text.replace('@', `:${encodeURIComponent(password)}@`) : text.slice(0, at % (text.length + 1));
        const result = outcome(() => parseDatabaseUrl(withPassword, 'CCNET_DB_URL', '/srv'));
        if (result.ok) {
          const config = result.value;
          if (config.kind !== 'sqlite') {
            assert.ok(config.user !== '' && config.database !== '' && !config.database.includes('/'));
            assert.ok(Number.isInteger(config.port) && config.port >= 1 && config.port <= 65535, `port ${config.port}`);
          }
          return;
        }
        assertConfigError(result.error);
        const message = (result.error as Error).message;
        assert.ok(!message.includes(password) && !message.includes(encodeURIComponent(password)), `the message shows the password: ${message}`);
      }),
      1000,
    );
  });

  const part = fc.string({ unit: 'binary', minLength: 1, maxLength: 12 });
  const host = fc.oneof(fc.domain(), fc.ipV4(), fc.constantFrom('::1', 'fd00::5'));

  it('a URL built from any user, password, host, port and database reads back the same', () => {
    check(
      fc.property(
        fc.constantFrom('mysql', 'postgres', 'postgresql'),
        part,
        fc.option(part, { nil: '' }),
        host,
        fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null }),
        part.filter((d) => !d.includes('/')),
        (scheme, user, password, hostName, port, database) => {
          const authority = `${encodeURIComponent(user)}${password === '' ? '' : `:${encodeURIComponent(password)}`}@${hostName.includes(':') ? `[${hostName}]` : hostName}${port === null ? '' : `:${port}`}`;
          const config = parseDatabaseUrl(`${scheme}://${authority}/${encodeURIComponent(database)}`, 'CCNET_DB_URL', '/');
          const kind = scheme === 'mysql' ? 'mysql' : 'postgres';
          const common = { kind, host: hostName, port: port ?? (kind === 'mysql' ? 3306 : 5432), user, password, database, socketPath: null };
          assert.deepEqual(config, kind === 'mysql' ? { ...common, ssl: false } : common);
        },
      ),
      500,
    );
  });

  it('a sqlite URL names the path it was given, absolute or relative to the working directory', () => {
    const segment = fc.string({ unit: fc.constantFrom(...'abc_-.é1 '), minLength: 1, maxLength: 8 }).filter((s) => s.trim() === s && s !== '.' && s !== '..');
    check(
      fc.property(fc.constantFrom('sqlite:', 'sqlite3:', 'sqlite://'), fc.boolean(), fc.array(segment, { minLength: 1, maxLength: 4 }), (scheme, absolute, segments) => {
        const path = (absolute ? '/' : '') + segments.join('/');
        fc.pre(!(scheme === 'sqlite://' && !absolute));
        assert.deepEqual(parseDatabaseUrl(`${scheme}${path}`, 'x', '/work'), { kind: 'sqlite', path: resolve('/work', path) });
      }),
      300,
    );
  });
});

describe('setting parsers (properties)', () => {
  const setting = (text: string) => ({ text, source: 'NOTIFICATION_SERVER_X' });
  const blank = fc.constantFrom('', ' ', '\t', ' \n');

  it('parseInteger returns a whole number in range for any text, or a ConfigError', () => {
    const text = fc.oneof(fc.string({ maxLength: 12 }), fc.integer().map(String), fc.double().map(String), fc.constantFrom('1e3', '0x10', '١٢', '+5', '-0', '00012', '9'.repeat(400)));
    check(
      fc.property(text, fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100_000 }), (given, min, span) => {
        const result = outcome(() => parseInteger(setting(given), 'port', min, min + span));
        if (result.ok) assert.ok(Number.isSafeInteger(result.value) && result.value >= min && result.value <= min + span);
        else assertConfigError(result.error);
      }),
      1000,
    );
  });

  it('any whole number in range, with blanks around it, reads back', () => {
    check(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), blank, blank, fc.nat(3), (n, before, after, zeros) => {
        assert.equal(parseInteger(setting(`${before}${'0'.repeat(zeros)}${n}${after}`), 'x', 0, 2 ** 31 - 1), n);
      }),
      300,
    );
  });

  it('parseBoolean and parseLogLevel accept their spellings in any case and refuse anything else with a ConfigError', () => {
    const words = fc.oneof(fc.constantFrom('true', 'false', 'yes', 'no', 'on', 'off', '1', '0', 'debug', 'info', 'warn', 'warning', 'error', 'trace', 'fatal', 'panic'), fc.string({ maxLength: 8 }));
    const cased = fc.tuple(words, fc.array(fc.boolean(), { maxLength: 8 }), blank).map(([w, upper, pad]) => pad + [...w].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('') + pad);
    check(
      fc.property(cased, (given) => {
        const word = given.trim().toLowerCase();
        const bool = outcome(() => parseBoolean(setting(given)));
        if (bool.ok) assert.equal(bool.value, ['true', '1', 'yes', 'on'].includes(word));
        else {
          assertConfigError(bool.error);
          assert.ok(!['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'].includes(word));
        }
        const level = outcome(() => parseLogLevel(setting(given)));
        if (level.ok) assert.ok(['debug', 'info', 'warn', 'error'].includes(level.value));
        else assertConfigError(level.error);
      }),
      500,
    );
  });
});
