/** The command line of `notification-server` in serve mode, a superset of the reference's `-c <dir> -l <file|->`. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from './setting.js';
import { flagLabel, ROWS, shownDefault, type FlagName, type Row } from './settings.js';

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;

/** The options as given (the port already a port); loadConfig reads each through its row of settings.ts. */
export interface ServeFlags {
  /** `-c`: the Seafile config dir holding seafile.conf, ccnet.conf, notification.conf. */
  configDir: string | null;
  logFile: string | null;
  host: string | null;
  port: number | null;
  logLevel: string | null;
  logFormat: string | null;
  ccnetDb: string | null;
  stateDir: string | null;
  workers: string | null;
  help: boolean;
}

const FLAG_ROWS = ROWS.filter((row): row is Row & { flag: FlagName } => row.flag !== undefined);

const COMMANDS = `Usage: notification-server [options]
       notification-server keygen    print a new JWT key
       notification-server publish   send one event (see publish --help)
       notification-server listen    print the events of libraries (see listen --help)
       notification-server check     check a set-up: database, proxy, limits (see check --help)
       notification-server install-seafile <dir>
                                     take the stock server's place in a Seafile 10/11 install

Real-time notifications for Seafile clients (drop-in for the stock server).
`;

/** `--help`: the options and variables of the table of settings (settings.ts), with their defaults. */
export const SERVE_USAGE = [
  COMMANDS,
  'Options:',
  item('  -c, --config-dir <dir>', 'Seafile config dir: reads seafile.conf [notification], notification.conf [general] and ccnet.conf [Database]', 27),
  ...FLAG_ROWS.map((row) =>
    item(`  ${row.short === undefined ? '    ' : `-${row.short}, `}${flagLabel(row.flag)} ${row.arg ?? ''}`, withDefault(row), 27),
  ),
  item('  -h, --help', 'show this help', 27),
  '',
  'Environment (beats the config files, loses to options):',
  ...ROWS.filter((row) => row.env !== undefined).map((row) => item(`  ${row.env}`, withDefault(row), 41)),
  '',
  'seafile.conf [notification] (notification.conf [general] for some; see docs/configuration.md):',
  wrap(ROWS.flatMap((row) => (row.file === undefined ? [] : [row.file])).join(', '), '  '),
  '',
].join('\n');

function withDefault(row: Row): string {
  const shown = shownDefault(row);
  return shown === '' ? row.help : `${row.help} (default: ${shown})`;
}

/** The name, then its text from `column` on (below the name when it is longer), wrapped. */
function item(name: string, text: string, column: number): string {
  const lead = name.length < column - 1 ? name.padEnd(column) : `${name}\n${' '.repeat(column)}`;
  return lead + wrap(text, ' '.repeat(column)).trimStart();
}

function wrap(text: string, indent: string, width = 100): string {
  const lines = [indent];
  for (const word of text.split(' ')) {
    if (lines.at(-1)!.length + word.length + 1 > width && lines.at(-1)!.trim() !== '') lines.push(indent);
    lines[lines.length - 1] += (lines.at(-1)!.trim() === '' ? '' : ' ') + word;
  }
  return lines.join('\n');
}

export const SERVE_OPTIONS = {
  'config-dir': { type: 'string', short: 'c' },
  ...Object.fromEntries(
    FLAG_ROWS.map((row) => [flagLabel(row.flag).slice(2), { type: 'string' as const, ...(row.short && { short: row.short }) }]),
  ),
  help: { type: 'boolean', short: 'h' },
} satisfies ParseArgsOptionsConfig;

/** Parses serve-mode arguments (without the program name); ConfigError names the offending flag. */
export function parseServeFlags(argv: string[]): ServeFlags {
  const { values } = parseCommandLine(argv, SERVE_OPTIONS, false);
  const given = values as Record<string, string | undefined>;
  const flags: Record<string, unknown> = { configDir: nonEmpty(given['config-dir'], '-c/--config-dir', 'a directory') };
  for (const row of FLAG_ROWS) {
    const long = flagLabel(row.flag);
    const label = row.short === undefined ? long : `-${row.short}/${long}`;
    flags[row.flag] = row.flag === 'port' ? parsePortFlag(given.port) : nonEmpty(given[long.slice(2)], label, row.needs!);
  }
  return { ...flags, help: values.help ?? false } as ServeFlags;
}

/** node:util parseArgs, strict, its errors ConfigErrors naming the flag as --help does. For every command. */
export function parseCommandLine<T extends ParseArgsOptionsConfig>(argv: string[], options: T, allowPositionals: boolean) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals });
  } catch (error) {
    throw translateParseError(error, options);
  }
}

function translateParseError(error: unknown, options: ParseArgsOptionsConfig): Error {
  if (!(error instanceof Error)) return new ConfigError(String(error));
  const code = (error as NodeJS.ErrnoException).code;
  // Node quotes the offending token first: 'pos', '--foo', '-c, --config-dir <value>', '-c'.
  const quoted = /'([^']*)'/.exec(error.message)?.[1] ?? '';
  const name = quoted.split(/[ ,=]/)[0] ?? quoted;
  // `-c` and `--config-dir` both read "-c/--config-dir", as in --help.
  const labels = Object.entries(options).map(([long, { short }]) =>
    short === undefined ? `--${long}` : `-${short}/--${long}`,
  );
  const flag = labels.find((label) => label.split('/').includes(name)) ?? name;
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new ConfigError(`unknown option ${name}; see --help`);
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return new ConfigError(`unexpected argument ${JSON.stringify(quoted)}: options take the form --name value; see --help`);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(error.message)) return new ConfigError(`${flag} takes no value`);
      if (/ambiguous/.test(error.message)) {
        const long = flag.split('/').pop() ?? flag;
        return new ConfigError(
          `${flag} needs a value but is followed by another option; for a value starting with "-" write ${long}=<value>`,
        );
      }
      return new ConfigError(`${flag} needs a value`);
    default:
      return new ConfigError(error.message);
  }
}

/** The value, or null when the flag is absent; ConfigError when it is blank. */
export function nonEmpty(value: string | undefined, flag: string, what: string): string | null {
  if (value === undefined) return null;
  if (value.trim() === '') throw new ConfigError(`${flag} needs ${what}, got an empty value`);
  return value;
}

/** `--port`: null when absent; ConfigError unless 1 to 65535. */
export function parsePortFlag(value: string | undefined): number | null {
  if (value === undefined) return null;
  const text = value.trim();
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new ConfigError(`--port must be a whole number from 1 to 65535, got ${JSON.stringify(value)}`);
  }
  return port;
}
