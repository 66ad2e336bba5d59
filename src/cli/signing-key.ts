/**
 * The key `publish` and `listen` sign tokens with: `--key`, else the server's own key, found the
 * way the server finds it (JWT_PRIVATE_KEY, `-c <conf dir>`, or the key a server started without
 * configuration saved in its state dir). A tool never generates a key: no server would accept it.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { ConfigError } from '../config/config.js';
import { nonEmpty } from '../config/flags.js';
import { loadConfig } from '../config/load-config.js';
import { nonBlank, type Env } from '../config/setting.js';
import { envText, SETTINGS } from '../config/settings.js';
import { localServerUrl } from './server-url.js';

export interface SigningKeyOptions {
  key: string | null;
  configDir: string | null;
  stateDir: string | null;
}

/** The three signing-key options as `SIGNING_KEY_OPTIONS` parses them, checked for blanks. */
export function signingKeyOptions(values: { key?: string | undefined; 'config-dir'?: string | undefined; 'state-dir'?: string | undefined }): SigningKeyOptions {
  return {
    key: nonEmpty(values.key, '--key', 'the JWT key'),
    configDir: nonEmpty(values['config-dir'], '-c/--config-dir', 'a directory'),
    stateDir: nonEmpty(values['state-dir'], '--state-dir', 'a directory'),
  };
}

export interface SigningKey {
  key: Buffer;
  /** `--key`, `JWT_PRIVATE_KEY`, `seafile.conf [notification] jwt_private_key`, a file name. */
  source: string;
  /** Where the server listens by that configuration (`http://127.0.0.1:8083`), or null with `--key`. */
  serverUrl: string | null;
}

export const NO_KEY_MESSAGE =
  'no JWT key: pass --key <key>, set JWT_PRIVATE_KEY, or give the Seafile config dir with -c <dir> ' +
  "(the key must be the server's: seaf-server and seahub sign with the same one)";

export async function resolveSigningKey(options: SigningKeyOptions, env: Env, cwd: string): Promise<SigningKey> {
  if (options.key !== null) return { key: Buffer.from(options.key, 'utf8'), source: '--key', serverUrl: null };
  if (options.configDir === null && envText(env, SETTINGS.jwt_private_key) === undefined && !(await hasSavedKey(options.stateDir, env, cwd))) {
    throw new ConfigError(NO_KEY_MESSAGE);
  }
  const { config } = await loadConfig({
    flags: {
      configDir: options.configDir,
      stateDir: options.stateDir,
      logFile: null,
      workers: null,
      host: null,
      port: null,
      logLevel: null,
      logFormat: null,
      ccnetDb: null,
      help: false,
    },
    env,
    cwd,
  });
  return {
    key: Buffer.from(config.jwtPrivateKey, 'utf8'),
    source: config.jwtKeySource,
    serverUrl: localServerUrl(config.host, config.port),
  };
}

/** Whether a server started without configuration left its generated key in the state dir. */
async function hasSavedKey(stateDir: string | null, env: Env, cwd: string): Promise<boolean> {
  const dir = resolve(cwd, stateDir ?? nonBlank(envText(env, SETTINGS.state_dir)) ?? SETTINGS.state_dir.default);
  try {
    return (await readFile(join(dir, 'jwt_private_key'), 'utf8')).trim() !== '';
  } catch {
    return false;
  }
}

/** The flags every signing tool takes, in parseArgs form, and their help lines. */
export const SIGNING_KEY_OPTIONS = {
  key: { type: 'string' },
  'config-dir': { type: 'string', short: 'c' },
  'state-dir': { type: 'string' },
} as const;

export const SIGNING_KEY_USAGE = `Key (the server's; first found wins):
      --key <key>          the JWT key itself (visible in ps: prefer JWT_PRIVATE_KEY)
  JWT_PRIVATE_KEY          the key, from the environment
  -c, --config-dir <dir>   Seafile config dir, read as the server reads it
                           (also gives the default --url from its host and port)
      --state-dir <dir>    where a server started without configuration saved its key
                           (default: ./.notification-server)
`;
