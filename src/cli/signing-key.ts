/**
 * The key `publish` and `listen` sign with: `--key`, else the server's own, found as the server finds it.
 * A tool never generates a key: no server would accept it.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { ConfigError } from '../config/config.js';
import { nonEmpty, parseServeFlags } from '../config/flags.js';
import { loadConfig } from '../config/load-config.js';
import { nonBlank, type Env } from '../config/setting.js';
import { envText, SETTINGS } from '../config/settings.js';
import { localServerUrl } from './server-url.js';

interface SigningKey {
  key: Buffer;
  /** Where the server listens by that configuration (`http://127.0.0.1:8083`), or null with `--key`. */
  serverUrl: string | null;
}

/** `values`: the SIGNING_KEY_OPTIONS as parseArgs gives them; blank ones are a ConfigError. */
export async function resolveSigningKey(
  values: { [name in keyof typeof SIGNING_KEY_OPTIONS]?: string | undefined },
  env: Env,
  cwd: string,
): Promise<SigningKey> {
  const key = nonEmpty(values.key, '--key', 'the JWT key');
  const configDir = nonEmpty(values['config-dir'], '-c/--config-dir', 'a directory');
  const stateDir = nonEmpty(values['state-dir'], '--state-dir', 'a directory');
  if (key !== null) return { key: Buffer.from(key, 'utf8'), serverUrl: null };
  if (configDir === null && envText(env, SETTINGS.jwt_private_key) === undefined && !(await hasSavedKey(stateDir, env, cwd))) {
    throw new ConfigError(
      'no JWT key: pass --key <key>, set JWT_PRIVATE_KEY, or give the Seafile config dir with -c <dir> ' +
        "(the key must be the server's: seaf-server and seahub sign with the same one)",
    );
  }
  // The server's own flags, as if started with just these two.
  const { config } = await loadConfig({ flags: { ...parseServeFlags([]), configDir, stateDir }, env, cwd });
  return { key: Buffer.from(config.jwtPrivateKey, 'utf8'), serverUrl: localServerUrl(config.host, config.port) };
}

/** Whether a server started without configuration left its generated key in the state dir. */
async function hasSavedKey(stateDir: string | null, env: Env, cwd: string): Promise<boolean> {
  const dir = resolve(cwd, stateDir ?? nonBlank(envText(env, SETTINGS.state_dir)) ?? SETTINGS.state_dir.default);
  return (await readFile(join(dir, 'jwt_private_key'), 'utf8').catch(() => '')).trim() !== '';
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
