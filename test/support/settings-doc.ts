/**
 * The settings table of docs/configuration.md, rendered from the table of settings
 * (src/config/settings.ts). `npm run docs:settings` writes it into the doc; a unit test
 * fails when the doc differs.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { flagLabel, ROWS, shownDefault, type Row } from '../../src/config/settings.js';

export const DOC = fileURLToPath(new URL('../../../docs/configuration.md', import.meta.url));
const START = '<!-- settings table: generated from src/config/settings.ts by `npm run docs:settings` -->';
const END = '<!-- end of settings table -->';

const RELOAD = { live: 'at once', 'new connections': 'new connections', restart: 'restart' } as const;

const code = (text: string | undefined): string => (text === undefined ? '' : `\`${text}\``);
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/</g, '&lt;');

function option(row: Row): string {
  if (row.flag === undefined) return '';
  return row.short === undefined ? code(flagLabel(row.flag)) : `${code(`-${row.short}`)}, ${code(flagLabel(row.flag))}`;
}

function fileKey(row: Row): string {
  if (row.file === undefined) return '';
  return row.notificationConf ? `${code(row.file)} (also notification.conf)` : code(row.file);
}

export function renderSettingsTable(): string {
  const lines = [
    '| option | environment | seafile.conf `[notification]` | default | on reload (SIGHUP) | meaning |',
    '|---|---|---|---|---|---|',
    ...ROWS.map((row) => `| ${[option(row), code(row.env), fileKey(row), shownDefault(row), RELOAD[row.reload], row.help].map(cell).join(' | ')} |`),
  ];
  return `${START}\n${lines.join('\n')}\n${END}`;
}

/** The generated block as the doc holds it now, or null when the markers are missing. */
export async function documentedSettingsTable(): Promise<string | null> {
  const doc = await readFile(DOC, 'utf8');
  const start = doc.indexOf(START);
  const end = doc.indexOf(END);
  return start < 0 || end < start ? null : doc.slice(start, end + END.length);
}

if (process.argv.includes('--write')) {
  const doc = await readFile(DOC, 'utf8');
  const current = await documentedSettingsTable();
  if (current === null) throw new Error(`${DOC} has no settings table markers (${START} ... ${END})`);
  await writeFile(DOC, doc.replace(current, renderSettingsTable()));
}
