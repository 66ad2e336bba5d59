/** A setting as read from a flag, the environment or a file, and parsers that name where it came from. */
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import type { EventsListen, LogFormat, LogLevel } from './config.js';
import type { KeyFile } from './keyfile.js';

/** A setting is missing or invalid; the message says which and how to fix it. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** The process environment (or a test's stand-in). */
export type Env = Readonly<Record<string, string | undefined>>;

/** A setting's text and where it came from, for messages. */
export interface Setting {
  text: string;
  /** `--port`, `NOTIFICATION_SERVER_PORT`, `seafile.conf [notification] port`. */
  source: string;
  /** File and line, when it came from a file. */
  at?: string;
}

/** The text as given, or null when it is missing or blank. */
export function nonBlank(text: string | undefined): string | null {
  return text === undefined || text.trim() === '' ? null : text;
}

/** A URL part percent-decoded, or null when an escape is broken. */
export function decodePercent(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

/** Where a setting came from, with the file and line when there is one. */
export function describeSetting(setting: Setting): string {
  return setting.at === undefined ? setting.source : `${setting.source}, ${setting.at}`;
}

/** A key of a file section; an empty value counts as unset unless `keepBlank`. This server's own settings are read through settings.ts. */
export function fromFile(file: KeyFile | null, group: string, keys: string | readonly string[], keepBlank = false): Setting | null {
  const found = file?.lookup(group, keys) ?? null;
  if (file === null || found === null || (!keepBlank && found.value.trim() === '')) return null;
  return { text: found.value, source: found.source, at: `${file.fileName}:${found.line}` };
}

const LOG_LEVELS: Readonly<Record<string, LogLevel>> = {
  trace: 'debug',
  debug: 'debug',
  info: 'info',
  warn: 'warn',
  warning: 'warn',
  error: 'error',
  fatal: 'error',
  panic: 'error',
};

export function parseLogLevel(setting: Setting): LogLevel {
  const level = LOG_LEVELS[setting.text.trim().toLowerCase()];
  if (level === undefined) {
    throw new ConfigError(
      `invalid log level ${JSON.stringify(setting.text)} (${describeSetting(setting)}): use debug, info, warn or error`,
    );
  }
  return level;
}

export function parseLogFormat(setting: Setting): LogFormat {
  const format = setting.text.trim().toLowerCase();
  if (format !== 'text' && format !== 'json') {
    throw new ConfigError(`invalid log format ${JSON.stringify(setting.text)} (${describeSetting(setting)}): use text or json`);
  }
  return format;
}

export function parseInteger(setting: Setting, what: string, min: number, max: number): number {
  const text = setting.text.trim();
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= max)) {
    throw new ConfigError(
      `invalid ${what} ${JSON.stringify(setting.text)} (${describeSetting(setting)}): expected a whole number from ${min} to ${max}`,
    );
  }
  return value;
}

/** GKeyFile and the Go reference accept different spellings; take the union, refuse the rest. */
export function parseBoolean(setting: Setting): boolean {
  const text = setting.text.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(text)) return true;
  if (['false', '0', 'no', 'off'].includes(text)) return false;
  throw new ConfigError(`invalid value ${JSON.stringify(setting.text)} for ${describeSetting(setting)}: expected true or false`);
}

/**
 * Browser origins, separated by commas or blanks: `https://cloud.example.com`, `http://seafile.lan:8000`.
 * Each is normalized as browsers send it (lower-case host, default port dropped).
 */
export function parseOriginList(setting: Setting): string[] {
  const origins: string[] = [];
  for (const item of setting.text.split(/[\s,]+/).filter((word) => word !== '')) {
    const url = URL.canParse(item) ? new URL(item) : null;
    const bare = url !== null && (url.pathname === '/' || url.pathname === '') && url.search === '' && url.hash === '' && url.username === '' && url.password === '';
    if (url === null || (url.protocol !== 'https:' && url.protocol !== 'http:') || !bare || item.endsWith('/')) {
      throw new ConfigError(
        `invalid origin ${JSON.stringify(item)} in ${describeSetting(setting)}: write origins as a browser sends them, ` +
          'scheme://host[:port] without a path, e.g. https://cloud.example.com',
      );
    }
    origins.push(url.origin);
  }
  if (origins.length === 0) throw new ConfigError(`${describeSetting(setting)} names no origin: unset it to admit every origin`);
  return origins;
}

/**
 * IP addresses and CIDR blocks, separated by commas or blanks: `127.0.0.1`, `10.0.0.0/8`,
 * `::1`, `fd00::/8`. `none` alone is the empty list. Returned as written, lower-case.
 */
export function parseAddressList(setting: Setting): string[] {
  const items = setting.text.split(/[\s,]+/).filter((word) => word !== '');
  if (items.length === 1 && items[0]!.toLowerCase() === 'none') return [];
  if (items.length === 0) throw new ConfigError(`${describeSetting(setting)} names no address: write none to trust no proxy`);
  return items.map((item) => {
    const match = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(item);
    const family = match === null ? 0 : isIP(match[1]!);
    const prefix = match?.[2] === undefined ? null : Number(match[2]);
    if (family === 0 || (prefix !== null && prefix > (family === 4 ? 32 : 128))) {
      throw new ConfigError(
        `invalid address ${JSON.stringify(item)} in ${describeSetting(setting)}: write IP addresses or CIDR blocks, ` +
          'e.g. 127.0.0.1, 10.0.0.0/8, ::1, fd00::/8 (or none)',
      );
    }
    return item.toLowerCase();
  });
}

/** A count of processes, or `auto`: one per core. */
export function parseWorkers(setting: Setting, max: number): number {
  return setting.text.trim() === 'auto' ? Math.min(max, availableParallelism()) : parseInteger(setting, 'workers', 1, max);
}

/** `127.0.0.1:8084`, `[::1]:8084`, or an absolute Unix socket path. */
export function parseEventsListen(setting: Setting): EventsListen {
  const text = setting.text.trim();
  if (text.startsWith('/')) return { kind: 'unix', path: text };
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d+)$/.exec(text);
  if (match === null) {
    throw new ConfigError(
      `invalid events_listen ${JSON.stringify(setting.text)} (${describeSetting(setting)}): use host:port (127.0.0.1:8084, [::1]:8084) or an absolute Unix socket path`,
    );
  }
  const port = parseInteger({ ...setting, text: match[3]! }, 'events_listen port', 1, 65535);
  return { kind: 'tcp', host: match[1] ?? match[2]!, port };
}

/** `127.0.0.1:8084`, `[::1]:8084` or the socket path, for the log. */
export function describeEventsListen(listen: EventsListen): string {
  return listen.kind === 'unix' ? listen.path : `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
}
