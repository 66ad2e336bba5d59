/**
 * Seafile's Docker `.env` (or an env file given to its container), read the way docker compose
 * reads one: `KEY=value` lines, `#` comments, an optional `export ` prefix, single quotes taken
 * literally, double quotes with escapes, and `$NAME` / `${NAME:-default}` from earlier lines.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from './config.js';
import type { Env } from './setting.js';

/** The variables of one env file, and what to call it in messages. */
export interface SeafileEnv {
  /** `/opt/seafile/.env`, or `the environment`. */
  readonly source: string;
  /** True when read from a compose `.env`: an unset variable then takes the compose file's default. */
  readonly fromFile: boolean;
  readonly values: ReadonlyMap<string, string>;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*/;

/** Reads and parses `path`; a missing, unreadable or malformed file is a ConfigError naming it. */
export async function readSeafileEnvFile(path: string, env: Env): Promise<SeafileEnv> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    const why = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'it is a directory' }[error.code ?? ''] ?? error.message;
    throw new ConfigError(`cannot read --seafile-env ${path}: ${why}; give the path of the .env beside Seafile's docker-compose files`);
  });
  return { source: path, fromFile: true, values: parseEnvFile(text, path, env) };
}

/** The Seafile variables of the process environment, as seaf-server itself reads them. */
export function seafileEnvFromProcess(env: Env): SeafileEnv {
  const values = new Map(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
  return { source: 'the environment', fromFile: false, values };
}

/** Parses the text of an env file; `env` answers variables the file refers to but does not set. */
export function parseEnvFile(text: string, fileName: string, env: Env): Map<string, string> {
  const values = new Map<string, string>();
  const lookup = (name: string): string | undefined => values.get(name) ?? env[name];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const at = `${fileName}:${index + 1}`;
    let line = lines[index]!.trimStart();
    if (line === '' || line.startsWith('#')) continue;
    if (/^export\s/.test(line)) line = line.slice('export'.length).trimStart();
    const name = NAME.exec(line)?.[0];
    if (name === undefined) throw new ConfigError(`${at}: expected NAME=value, got ${JSON.stringify(lines[index]!.trim().slice(0, 60))}`);
    let rest = line.slice(name.length).trimStart();
    if (rest === '' || rest.startsWith('#')) {
      // A bare name takes the variable from the environment, as compose does.
      const inherited = env[name];
      if (inherited !== undefined) values.set(name, inherited);
      continue;
    }
    if (!rest.startsWith('=')) throw new ConfigError(`${at}: expected "=" after ${name}`);
    rest = rest.slice(1).trimStart();
    const quote = rest[0];
    if (quote === "'" || quote === '"') {
      // A quoted value may go on over several lines.
      let body = rest.slice(1);
      let end = closingQuote(body, quote);
      while (end < 0 && index + 1 < lines.length) {
        index++;
        body += `\n${lines[index]!}`;
        end = closingQuote(body, quote);
      }
      if (end < 0) throw new ConfigError(`${at}: the ${quote === "'" ? 'single' : 'double'} quote after ${name}= is never closed`);
      const after = body.slice(end + 1).trim();
      if (after !== '' && !after.startsWith('#')) throw new ConfigError(`${at}: unexpected ${JSON.stringify(after.slice(0, 30))} after the quoted value of ${name}`);
      const raw = body.slice(0, end);
      values.set(name, quote === "'" ? raw : interpolate(unescape(raw), lookup, at));
    } else {
      // Unquoted: a # after a blank starts a comment (`CACHE_PROVIDER=redis # or memcached`).
      const value = rest.replace(/(^|\s)#.*$/, '').trim();
      values.set(name, interpolate(value, lookup, at));
    }
  }
  return values;
}

function closingQuote(body: string, quote: string): number {
  for (let i = 0; i < body.length; i++) {
    if (quote === '"' && body[i] === '\\') i++;
    else if (body[i] === quote) return i;
  }
  return -1;
}

const ESCAPES: Readonly<Record<string, string>> = { n: '\n', r: '\r', t: '\t', '"': '"', '\\': '\\', $: '$$' };

function unescape(text: string): string {
  // `\$` stays a literal dollar: written as `$$` for interpolate.
  return text.replace(/\\(.)/g, (whole, char: string) => ESCAPES[char] ?? whole);
}

/** `$$`, `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}` (nesting allowed in defaults). */
function interpolate(text: string, lookup: (name: string) => string | undefined, at: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char !== '$') {
      out += char;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '{') {
      let depth = 1;
      let j = i + 2;
      for (; j < text.length && depth > 0; j++) {
        if (text[j] === '{') depth++;
        else if (text[j] === '}') depth--;
      }
      if (depth > 0) throw new ConfigError(`${at}: "\${" without its closing "}"`);
      out += substitute(text.slice(i + 2, j - 1), lookup, at);
      i = j - 1;
    } else {
      const name = NAME.exec(text.slice(i + 1))?.[0]?.replace(/[.-].*$/, '');
      if (name === undefined || name === '') out += '$';
      else {
        out += lookup(name) ?? '';
        i += name.length;
      }
    }
  }
  return out;
}

function substitute(expression: string, lookup: (name: string) => string | undefined, at: string): string {
  const match = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?+])([\s\S]*))?$/.exec(expression);
  if (match === null) throw new ConfigError(`${at}: cannot read "\${${expression}}"`);
  const [, name, colon, operator, word] = match;
  const value = lookup(name!);
  const unset = colon === ':' ? value === undefined || value === '' : value === undefined;
  if (operator === '-') return unset ? interpolate(word!, lookup, at) : value!;
  if (operator === '+') return unset ? '' : interpolate(word!, lookup, at);
  return value ?? '';
}
