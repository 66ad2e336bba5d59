/**
 * Seafile's INI files (seafile.conf, ccnet.conf, notification.conf) read the
 * way GLib's GKeyFile reads them, because seaf-server signs tokens with what
 * GKeyFile hands it: no quote stripping, no inline comments, `\s \n \t \r \\`
 * escapes, case-sensitive keys, last duplicate wins.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';

import { ConfigError } from './config.js';

/** One value as it will be used, and where it came from. */
export interface KeyFileValue {
  group: string;
  key: string;
  value: string;
  line: number;
  /** Human location for messages: `seafile.conf [notification] port`. */
  source: string;
}

interface RawEntry {
  raw: string;
  line: number;
}

export class KeyFile {
  /** The last component of `fileName`, the path as given to the parser. */
  readonly name: string;

  constructor(
    readonly fileName: string,
    private readonly groups: ReadonlyMap<string, ReadonlyMap<string, RawEntry>>,
  ) {
    this.name = basename(fileName);
  }

  hasGroup(group: string): boolean {
    return this.groups.has(group);
  }

  groupNames(): string[] {
    return [...this.groups.keys()];
  }

  keys(group: string): string[] {
    return [...(this.groups.get(group)?.keys() ?? [])];
  }

  /**
   * The first of `keys` (spellings: `['ENGINE', 'engine']`) present in `group`, escapes decoded.
   * As in GKeyFile, an invalid escape is an error only when the value is used.
   */
  lookup(group: string, keys: string | readonly string[]): KeyFileValue | null {
    const entries = this.groups.get(group);
    if (entries === undefined) return null;
    for (const key of typeof keys === 'string' ? [keys] : keys) {
      const entry = entries.get(key);
      if (entry === undefined) continue;
      const source = `${this.name} [${group}] ${key}`;
      const value = decodeValue(entry.raw, () => `${this.fileName}:${entry.line}: ${source}`);
      return { group, key, value, line: entry.line, source };
    }
    return null;
  }

  /** The decoded value, or null when no spelling of the key is present. */
  get(group: string, keys: string | readonly string[]): string | null {
    return this.lookup(group, keys)?.value ?? null;
  }
}

/** Parses the text of a key file; `fileName` only labels error messages. */
export function parseKeyFile(text: string, fileName: string): KeyFile {
  const groups = new Map<string, Map<string, RawEntry>>();
  let current: Map<string, RawEntry> | null = null;
  // GKeyFile itself chokes on a BOM; editors on Windows add one, tolerate it.
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (const [index, line] of lines.entries()) {
    const lineNumber = index + 1;
    const where = `${fileName}:${lineNumber}`;
    const start = trimStartAsciiSpace(line.replace(/\r$/, ''));
    if (start === '' || start.startsWith('#') || start.startsWith(';')) continue;

    const groupName = GROUP_HEADER.exec(start)?.[1];
    if (groupName !== undefined) {
      if (!isGroupName(groupName)) {
        throw new ConfigError(`${where}: invalid section name [${groupName}]`);
      }
      current = groups.get(groupName) ?? new Map<string, RawEntry>();
      groups.set(groupName, current);
      continue;
    }

    const equals = start.indexOf('=');
    if (equals <= 0) {
      // Not echoing the line: a stray line is often a pasted secret.
      throw new ConfigError(`${where}: expected "key = value", a [section] header or a # comment`);
    }
    const key = trimEndAsciiSpace(start.slice(0, equals));
    if (!isKeyName(key)) {
      throw new ConfigError(`${where}: invalid key name "${key}"`);
    }
    if (current === null) {
      throw new ConfigError(`${where}: key "${key}" comes before any [section] header`);
    }
    // GKeyFile keeps trailing blanks; Seafile's own readers and the Go reference trim them.
    const raw = trimEndAsciiSpace(trimStartAsciiSpace(start.slice(equals + 1)));
    current.set(key, { raw, line: lineNumber });
  }
  return new KeyFile(fileName, groups);
}

/** Reads and parses a key file; null when it does not exist. */
export async function readKeyFile(path: string): Promise<KeyFile | null> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return null;
    throw new ConfigError(`cannot read ${path}: ${error.message}`);
  });
  return text === null ? null : parseKeyFile(text, path);
}

// g_ascii_isspace: space, \t, \n, \v, \f, \r.
function trimStartAsciiSpace(text: string): string {
  return text.replace(/^[ \t\n\v\f\r]+/, '');
}

function trimEndAsciiSpace(text: string): string {
  return text.replace(/[ \t\n\v\f\r]+$/, '');
}

/** `[name]` with only blanks after the first `]`, as g_key_file_line_is_group. */
const GROUP_HEADER = /^\[([^\]]*)\][ \t]*$/;

function isGroupName(name: string): boolean {
  return name.length > 0 && !/[[\]\x00-\x1f\x7f]/.test(name);
}

/** Non-empty, no brackets except a trailing `[locale]`, no leading blank. */
function isKeyName(key: string): boolean {
  if (key.length === 0 || key.startsWith(' ')) return false;
  return /^[^[\]=]+(\[[\p{L}\p{N}_.@-]+\])?$/u.test(key);
}

const ESCAPES: Readonly<Record<string, string>> = { s: ' ', n: '\n', t: '\t', r: '\r', '\\': '\\' };

function decodeValue(raw: string, where: () => string): string {
  return raw.replace(/\\([\s\S]?)/g, (_, next: string) => {
    const decoded = ESCAPES[next];
    if (decoded !== undefined) return decoded;
    if (next === '') {
      throw new ConfigError(`${where()}: the value ends with a lone backslash (write \\\\ for one backslash)`);
    }
    // GKeyFile refuses the whole value, so seaf-server would not see it either.
    throw new ConfigError(
      `${where()}: invalid escape "\\${next}" in the value (valid: \\s \\n \\t \\r \\\\; write \\\\ for one backslash)`,
    );
  });
}
