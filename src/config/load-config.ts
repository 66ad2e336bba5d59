/** Builds the one typed Config from the command line, the environment and Seafile's config files. */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { resolveBackplane } from './backplane.js';
import { ConfigError, type Config } from './config.js';
import { resolveGroupDatabase } from './group-database.js';
import { resolveJwtKey } from './jwt-key.js';
import { readKeyFile, type KeyFile } from './keyfile.js';
import { describeSetting, parseBoolean, type Setting } from './setting.js';
import {
  DEFAULTS,
  envText,
  find,
  nameOf,
  read,
  ROWS,
  settingsOf,
  setValueAt,
  SETTINGS,
  type ConfigPath,
  type ParsedRow,
  type Sources,
} from './settings.js';

export interface LoadedConfig {
  config: Config;
  /** Sentences for the start-up log: sources read, generated key, degraded features. Never a secret. */
  notices: string[];
  /** Values that were ignored, as the stock server ignores them, each naming what is used instead: logged as warnings. */
  warnings: string[];
}

export async function loadConfig(input: Pick<Sources, 'flags' | 'env' | 'cwd'>): Promise<LoadedConfig> {
  const { flags, env, cwd } = input;
  const notices: string[] = [];
  const warnings: string[] = [];

  const confDir = flags.configDir === null ? null : resolve(cwd, flags.configDir);
  const files = await readConfigFiles(confDir, notices);
  const sources: Sources = { flags, env, cwd, confDir, ...files, notices, warnings };
  reportEnabledFlag(find(sources, SETTINGS.enabled), notices);

  // Every setting a row fills by itself; `Tuning:` names those that are set.
  const config = { limits: {}, history: {} } as Config;
  const tuning: string[] = [];
  const found: Partial<Record<ConfigPath, Setting | null>> = {};
  for (const row of ROWS) {
    if (row.at === undefined) continue;
    const { value, setting } = read(sources, row as ParsedRow<unknown>);
    setValueAt(config, row.at, value);
    found[row.at] = setting;
    if (setting !== null && row.describe !== undefined) tuning.push(`${nameOf(row)} ${row.describe(value)} (${setting.source})`);
  }
  const sourceOf = (path: ConfigPath): string => found[path]?.source ?? 'default';
  if (config.deadPeerMs <= config.pingIntervalMs) {
    const from = (path: ConfigPath): string => (found[path] ? describeSetting(found[path]) : 'default');
    throw new ConfigError(
      `dead_peer_timeout (${config.deadPeerMs / 1000} s, ${from('deadPeerMs')}) must be longer than ` +
        `ping_interval (${config.pingIntervalMs / 1000} s, ${from('pingIntervalMs')}), or every client is dropped before its pong can arrive`,
    );
  }
  // With no configuration at all the server only listens locally.
  const configured = confDir !== null || envText(env, SETTINGS.jwt_private_key) !== undefined;
  if (!configured && found.host === null) config.host = DEFAULTS.embeddedHost;
  config.logFile = resolveLogFile(sources);

  const key = await resolveJwtKey(sources);
  config.jwtPrivateKey = key.key;
  config.jwtKeySource = key.source;
  reportNotificationToken(settingsOf(sources, SETTINGS.notification_token), notices);
  config.groupDatabase = await resolveGroupDatabase(sources);
  if (found.metrics) notices.push(`Prometheus metrics at GET /metrics are ${config.metrics ? 'on' : 'off'} (${sourceOf('metrics')}).`);
  if (found.adminToken) notices.push(`Status page at /status is on, for the admin token from ${sourceOf('adminToken')}.`);
  config.backplane = resolveBackplane(sources);
  if (config.workers !== DEFAULTS.workers) notices.push(`Workers: ${config.workers} processes share port ${config.port} (${sourceOf('workers')}).`);

  notices.push(
    `Settings: host ${config.host} (${sourceOf('host')}), port ${config.port} (${sourceOf('port')}), ` +
      `log level ${config.logLevel} (${sourceOf('logLevel')}), ` +
      `log to ${config.logFile ?? 'stdout'}${config.logFormat === null ? '' : ` as ${config.logFormat}`}, JWT key from ${key.source}.`,
  );
  if (tuning.length > 0) notices.push(`Tuning: ${tuning.join(', ')}.`);
  return { config, notices, warnings };
}

async function requireDirectory(dir: string): Promise<void> {
  const info = await stat(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') {
      throw new ConfigError(`config directory ${dir} (-c) does not exist`);
    }
    throw new ConfigError(`cannot read config directory ${dir} (-c): ${error.message}`);
  });
  if (!info.isDirectory()) throw new ConfigError(`config directory ${dir} (-c) is not a directory`);
}

/** Each file and the section this server reads of it. */
const CONFIG_FILES = [
  ['seafile.conf', 'notification'],
  ['notification.conf', 'general'],
  ['ccnet.conf', 'Database'],
] as const;

async function readConfigFiles(confDir: string | null, notices: string[]): Promise<Record<'seafile' | 'notification' | 'ccnet', KeyFile | null>> {
  if (confDir === null) return { seafile: null, notification: null, ccnet: null };
  await requireDirectory(confDir);
  const files = await Promise.all(CONFIG_FILES.map(([name]) => readKeyFile(join(confDir, name))));
  const read = CONFIG_FILES.map(([name, group], i) => {
    const file = files[i];
    if (!file) return `no ${name}`;
    return file.hasGroup(group) ? `${name} [${group}]` : `${name} (no [${group}] section)`;
  });
  notices.push(`Config dir ${confDir}: read ${read.join(', ')}.`);
  const [seafile = null, notification = null, ccnet = null] = files;
  return { seafile, notification, ccnet };
}

function reportEnabledFlag(enabled: Setting | null, notices: string[]): void {
  if (enabled === null) return;
  try {
    if (parseBoolean(enabled)) return;
    notices.push(
      `${enabled.source} is ${enabled.text.trim()}: seaf-server will not send events here until it is true; starting anyway.`,
    );
  } catch {
    // Informational only: GKeyFile reads an unparsable boolean as false, so say that.
    notices.push(`${enabled.source} = ${enabled.text.trim()} is not true or false: seaf-server reads it as false and will not send events here; starting anyway.`);
  }
}

function resolveLogFile({ flags, env, cwd, confDir }: Sources): string | null {
  // As with the stock server, SEAFILE_LOG_TO_STDOUT beats -l: the stock image's command line names a file.
  const toStdout = envText(env, SETTINGS.log_file)?.trim().toLowerCase() ?? '';
  if (['true', '1', 'yes'].includes(toStdout)) return null;
  if (flags.logFile !== null) return flags.logFile === '-' ? null : resolve(cwd, flags.logFile);
  // Like the stock server started with -c: a log file beside the config.
  return confDir === null ? null : join(confDir, 'notification-server.log');
}

/** An empty token must never match an absent header, so blank counts as unset. */
function reportNotificationToken([chosen, ...others]: Setting[], notices: string[]): void {
  if (chosen === undefined) return;
  for (const other of others.filter((other) => other.text !== chosen.text)) {
    notices.push(`${other.source} differs from ${chosen.source}, which is used for Seafile 10.0 publishers.`);
  }
  notices.push(`Seafile 10.0 publishers may authenticate with the static token from ${chosen.source}.`);
}
