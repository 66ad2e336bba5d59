import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

import { DEFAULT_LIMITS, type Config } from '../../src/config/config.js';
import { parseServeFlags, SERVE_OPTIONS, SERVE_USAGE } from '../../src/config/flags.js';
import { loadConfig } from '../../src/config/load-config.js';
import { planReload } from '../../src/config/reload-plan.js';
import { flagLabel, LiveSettings, ROWS, shownDefault, valueAt, type ConfigPath } from '../../src/config/settings.js';
import { documentedSettingsTable, renderSettingsTable } from '../support/settings-doc.js';

const SRC = fileURLToPath(new URL('../../../src', import.meta.url));
const TABLE = join('config', 'settings.ts');

/** Variables of Seafile's own that `check` reads to compare them with this server's settings. */
const SEAFILE_VARIABLES = new Set(['SEAFILE_SERVER_HOSTNAME', 'SEAFILE_SERVER_PROTOCOL', 'NOTIFICATION_SERVER_URL']);
const TABLE_VARIABLES = new Set(ROWS.flatMap((row) => (row.env === undefined ? [] : [row.env])));

/**
 * Where a source file reads a setting by name instead of through the table: the environment
 * by variable name, seafile.conf [notification] or notification.conf [general] by key, or a
 * NOTIFICATION_SERVER_* variable the table does not have.
 */
export function readsOutsideTable(source: string): string[] {
  const found: string[] = [];
  for (const match of source.matchAll(/process\.env\s*(?:\.\s*\w+|\[)/g)) found.push(match[0]);
  for (const match of source.matchAll(/(?<!process\.)\benv\s*(?:\[\s*['"`](\w+)['"`]\s*\]|\.([A-Z][A-Z0-9_]+))/g)) {
    if (!SEAFILE_VARIABLES.has(match[1] ?? match[2]!)) found.push(match[0]);
  }
  for (const match of source.matchAll(/\b(?:lookup|get|fromFile)\(\s*(?:\w+\s*,\s*)?['"`](notification|general)['"`]/g)) found.push(match[0]);
  for (const match of source.matchAll(/\bNOTIFICATION_SERVER_[A-Z0-9_]+/g)) {
    if (!TABLE_VARIABLES.has(match[0]) && !SEAFILE_VARIABLES.has(match[0])) found.push(match[0]);
  }
  return found;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((entry) => entry.isFile() && entry.name.endsWith('.ts')).map((entry) => join(entry.parentPath, entry.name));
}

describe('the table of settings', () => {
  it('no file but the table reads a setting by its variable or file key', async () => {
    const files = await sourceFiles(SRC);
    assert.ok(files.length > 50, `found ${files.length} files under ${SRC}`);
    const offences: string[] = [];
    for (const file of files) {
      if (relative(SRC, file) === TABLE) continue;
      for (const read of readsOutsideTable(await readFile(file, 'utf8'))) offences.push(`${relative(SRC, file)}: ${read}`);
    }
    assert.deepEqual(offences, [], 'read these through src/config/settings.ts (a row, then find/read/envText)');
  });

  it('the scan catches a setting added by hand', () => {
    assert.deepEqual(readsOutsideTable("const x = env['NOTIFICATION_SERVER_MAX_LIBRARIES'];"), ["env['NOTIFICATION_SERVER_MAX_LIBRARIES']", 'NOTIFICATION_SERVER_MAX_LIBRARIES']);
    assert.deepEqual(readsOutsideTable('const port = Number(process.env.PORT);'), ['process.env.PORT']);
    assert.deepEqual(readsOutsideTable("fromFile(seafile, 'notification', 'max_things')"), ["fromFile(seafile, 'notification'"]);
    assert.deepEqual(readsOutsideTable("pick(fromEnv(env, 'NOTIFICATION_SERVER_NEW_LIMIT'))"), ['NOTIFICATION_SERVER_NEW_LIMIT']);
    assert.deepEqual(readsOutsideTable("loadConfig({ flags, env: process.env, cwd }); env['SEAFILE_SERVER_HOSTNAME']"), []);
  });

  it('--help names every option and every variable of the table, with its meaning and default', () => {
    const help = SERVE_USAGE.replace(/\s+/g, ' ');
    for (const row of ROWS) {
      const shown = shownDefault(row) === '' ? '' : ` (default: ${shownDefault(row)})`;
      if (row.flag !== undefined) assert.ok(help.includes(`${flagLabel(row.flag)} ${row.arg} ${row.help}${shown}`), flagLabel(row.flag));
      if (row.env !== undefined) assert.ok(help.includes(` ${row.env} ${row.help}${shown}`), row.env);
      if (row.file !== undefined) assert.match(help, new RegExp(`[ ,]${row.file}[,\\s]`), row.file);
    }
    assert.ok(help.includes('--port <n> listen port;') && help.includes('(default: 8083)'));
  });

  it('every option but -c and -h carries a setting of the table', () => {
    const settingFlags = ROWS.flatMap((row) => (row.flag === undefined ? [] : [flagLabel(row.flag).slice(2)]));
    assert.deepEqual(Object.keys(SERVE_OPTIONS).filter((name) => name !== 'config-dir' && name !== 'help').sort(), settingFlags.sort());
  });

  it('docs/configuration.md holds the table as the table of settings renders it (npm run docs:settings)', async () => {
    assert.equal(await documentedSettingsTable(), renderSettingsTable());
    for (const row of ROWS) if (row.env !== undefined) assert.ok(renderSettingsTable().includes(`\`${row.env}\``), row.env);
  });

  it('every field of a loaded Config is filled by a row, and rows of one field agree on reload', async () => {
    const { config } = await loadConfig({ flags: parseServeFlags([]), env: { JWT_PRIVATE_KEY: 'k'.repeat(32) }, cwd: '/' });
    const paths = new Set<string>(ROWS.flatMap((row) => [row.at, row.partOf]).filter((path): path is ConfigPath => typeof path === 'string'));
    const fields = [
      ...Object.keys(config).filter((key) => key !== 'limits' && key !== 'history'),
      ...Object.keys(config.limits).map((key) => `limits.${key}`),
      ...Object.keys(config.history).map((key) => `history.${key}`),
    ];
    // Where the key came from follows the key.
    assert.deepEqual(fields.filter((field) => !paths.has(field)), ['jwtKeySource']);
    for (const path of paths) {
      const modes = new Set(ROWS.filter((row) => (row.at ?? row.partOf) === path).map((row) => row.reload !== 'restart'));
      assert.equal(modes.size, 1, `rows of ${path} disagree on reload`);
    }
  });

  it('a reload hands every changed live setting to the components and keeps the rest at the running value', async () => {
    const { config: running } = await loadConfig({ flags: parseServeFlags([]), env: { JWT_PRIVATE_KEY: 'k'.repeat(32) }, cwd: '/' });
    const live = new LiveSettings(running);
    // A component holds `live` and reads it when it applies a limit.
    const perAddress = (): number => live.limits.maxConnectionsPerAddress;
    const next: Config = structuredClone(running);
    for (const key of Object.keys(next.limits) as Array<keyof typeof next.limits>) next.limits[key] += 1;
    next.drainMs += 1;
    next.notificationToken = 'a-new-static-token';
    const plan = planReload(live.config, next);
    live.replace(plan.config);
    assert.equal(perAddress(), DEFAULT_LIMITS.maxConnectionsPerAddress + 1);
    for (const row of ROWS) {
      if (row.at === undefined) continue;
      const expected = valueAt(row.reload === 'restart' ? running : next, row.at);
      assert.deepEqual(valueAt(live.config, row.at), expected, `${row.at} (${row.reload})`);
    }
    assert.ok(plan.applied.includes('max_connections_per_address') && plan.needsRestart.includes('max_frame_bytes'));
  });
});
