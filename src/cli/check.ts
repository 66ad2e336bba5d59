/** `notification-server check`: tries what clients and the server depend on (see CHECK_USAGE). */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import WebSocket from 'ws';

import { ConfigError, DEFAULTS, type Config } from '../config/config.js';
import { nonEmpty, parseCommandLine, parsePortFlag, parseServeFlags, type ServeFlags } from '../config/flags.js';
import { describeDatabase } from '../config/group-database.js';
import { readKeyFile } from '../config/keyfile.js';
import { KEYS_DIFFER } from '../config/jwt-key.js';
import { loadConfig } from '../config/load-config.js';
import { readSeafileEnvFile, seafileEnvFromProcess, type SeafileEnv } from '../config/seafile-env-file.js';
import { nonBlank, type Env } from '../config/setting.js';
import { envText, SETTINGS } from '../config/settings.js';
import { openGroupDirectory } from '../groups/open-group-directory.js';
import { SEAFILE_SUBPROTOCOL } from '../transport/websocket-endpoint.js';
import { signToken } from '../auth/jwt.js';
import { sameSecret } from '../auth/publisher-auth.js';
import { describeFetchError, localServerUrl, webSocketUrl } from './server-url.js';

const CHECK_USAGE = `Usage: notification-server check [options]

Reads the configuration the way the server does (options, environment, -c <dir>) and
checks, one line each (OK, WARN or FAIL, with a fix for what fails):
  configuration   the settings load
  server          <host>:<port>/ping answers, as publishers reach it
  key             the server accepts a token signed with the configured JWT key
                  (WARN when the config files hold two different keys)
  group database  the ccnet GroupUser table answers
  ping            <public url>/notification/ping answers through the proxy
  websocket       a WebSocket upgrade through <public url>/notification works
  idle proxy      the proxy keeps an idle WebSocket open longer than the server's
                  ping interval (waits ping_interval + 5 s)
  open files      the open-files limit (ulimit -n) fits the expected clients
With --seafile-env, or when the environment sets ENABLE_NOTIFICATION_SERVER,
INNER_NOTIFICATION_SERVER_URL or NOTIFICATION_SERVER_URL (as in Seafile's own
container), what Seafile 12+ itself is given, one line each (WARN with a fix):
  ENABLE_NOTIFICATION_SERVER     is exactly true
  INNER_NOTIFICATION_SERVER_URL  is set, and <url>/ping answers from here
  NOTIFICATION_SERVER_URL        ends in /notification
  JWT_PRIVATE_KEY                is the server's key (neither key is shown)
seaf-server tells nobody when these are wrong: without the first two it answers
every client's jwt-token request with 404 and publishes nothing.
Exits 0 when nothing failed, 1 otherwise, 2 when an option or --seafile-env
cannot be read.

Options:
  -c, --config-dir <dir>   Seafile config dir, as for the server
      --ccnet-db <url>     group database URL, as for the server
      --host <addr>        the server's listen address, as for the server
      --port <n>           the server's port, as for the server
      --public-url <url>   the address clients use, e.g. https://seafile.example.com
                           (default: SEAFILE_SERVER_PROTOCOL://SEAFILE_SERVER_HOSTNAME,
                           else SERVICE_URL from ccnet.conf [General])
      --clients <n>        clients to plan for (default: 1000); each holds one open file
      --idle-seconds <n>   how long the idle proxy check waits (default: ping_interval + 5)
      --seafile-env <file> Seafile's Docker .env (KEY=value lines, as docker compose
                           reads them) to check against this server
  -h, --help               show this help
`;

const OPTIONS = {
  'config-dir': { type: 'string', short: 'c' },
  'ccnet-db': { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'public-url': { type: 'string' },
  clients: { type: 'string' },
  'idle-seconds': { type: 'string' },
  'seafile-env': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const TIMEOUT_MS = 5_000;
/** Descriptors the server needs besides its clients: the log, the listening socket, the database. */
const RESERVED_FILES = 64;
const PONG = '{"ret": "pong"}';
/** How much longer than one ping interval the idle proxy check waits: a ping must have crossed by then. */
const IDLE_MARGIN_MS = 5_000;
/** Matches the notice load-config gives for a second, different JWT key in the config files. */
const isOtherKeyNotice = (notice: string): boolean => notice.includes(' differs from ') && notice.includes(KEYS_DIFFER);
const SAME_KEY_FIX =
  'seaf-server, seahub and the notification server must use the same JWT key: compare JWT_PRIVATE_KEY / seafile.conf [notification] jwt_private_key';

/** One line of the report; the caller names the check. */
interface Finding {
  status: 'OK' | 'WARN' | 'FAIL';
  detail: string;
  fix?: string;
}

const ok = (detail: string): Finding => ({ status: 'OK', detail });
const warn = (detail: string, fix?: string): Finding => ({ status: 'WARN', detail, fix });
const fail = (detail: string, fix: string): Finding => ({ status: 'FAIL', detail, fix });

interface LoadedConfig {
  config: Config;
  notices: string[];
  /** False when nothing gave a JWT key: the check then loaded the config with a placeholder. */
  keyConfigured: boolean;
}

export async function check(argv: string[]): Promise<number> {
  const { values } = parseCommandLine(argv, OPTIONS, false);
  if (values.help === true) {
    process.stdout.write(CHECK_USAGE);
    return 0;
  }
  // The options the server takes too, read as the server reads them.
  const flags: ServeFlags = {
    ...parseServeFlags([]),
    configDir: nonEmpty(values['config-dir'], '-c/--config-dir', 'a directory'),
    ccnetDb: nonEmpty(values['ccnet-db'], '--ccnet-db', 'a database URL'),
    host: nonEmpty(values.host, '--host', 'an address'),
    port: parsePortFlag(values.port),
  };
  const publicUrlFlag = nonEmpty(values['public-url'], '--public-url', 'a URL');
  const clients = wholeNumberFlag(values.clients, '--clients', 9) ?? 1000;
  const idleSeconds = wholeNumberFlag(values['idle-seconds'], '--idle-seconds', 6);
  const seafile = await findSeafileEnv(nonEmpty(values['seafile-env'], '--seafile-env', "the path of Seafile's .env"), process.env);

  let failed = false;
  const report = (name: string, { status, detail, fix }: Finding): void => {
    if (status === 'FAIL') failed = true;
    process.stdout.write(`${status.padEnd(5)} ${name}: ${detail}${fix === undefined ? '' : ` Fix: ${fix}`}\n`);
  };

  const loaded = await checkConfiguration(flags, process.env, (finding) => report('configuration', finding));
  if (loaded !== null) {
    report('server', await checkServer(loaded.config));
    report('key', await checkKey(loaded));
    report('group database', await checkGroupDatabase(loaded.config));
  }
  if (seafile !== null) {
    report('ENABLE_NOTIFICATION_SERVER', checkEnabled(seafile));
    report('INNER_NOTIFICATION_SERVER_URL', await checkInnerUrl(seafile));
    report('NOTIFICATION_SERVER_URL', checkPublicUrl(seafile));
    report('JWT_PRIVATE_KEY', checkSeafileKey(seafile, loaded));
  }
  // Without a configuration the server's own default applies.
  const idleMs = idleSeconds !== null ? idleSeconds * 1000 : (loaded?.config.pingIntervalMs ?? DEFAULTS.pingIntervalMs) + IDLE_MARGIN_MS;
  const publicUrl = publicUrlFlag ?? (await findPublicUrl(flags.configDir, process.env));
  const base = publicUrl === null ? null : notificationBase(publicUrl);
  if (base instanceof URL) {
    report('ping', await checkPing(base));
    report('websocket', await checkUpgrade(webSocketUrl(base.href)));
    report('idle proxy', await checkIdleProxy(webSocketUrl(base.href), idleMs));
  } else {
    const unchecked =
      base === null
        ? warn('no public URL known, not checked.', 'pass --public-url https://<your Seafile host> to check the proxy')
        : fail(`${base.message}, not checked.`, 'write the public URL like https://seafile.example.com');
    for (const name of ['ping', 'websocket', 'idle proxy']) report(name, unchecked);
  }
  report('open files', await checkOpenFiles(clients));
  return failed ? 1 : 0;
}

/** A whole number of at least 1 and at most `digits` digits, or null when the flag is absent. */
function wholeNumberFlag(text: string | undefined, flag: string, digits: number): number | null {
  if (text === undefined) return null;
  const trimmed = text.trim();
  const value = /^\d+$/.test(trimmed) && trimmed.length <= digits ? Number(trimmed) : NaN;
  if (!(value >= 1)) throw new ConfigError(`${flag} must be a whole number of at least 1, got ${JSON.stringify(text)}`);
  return value;
}

async function checkConfiguration(flags: ServeFlags, env: Env, report: (finding: Finding) => void): Promise<LoadedConfig | null> {
  // With nothing configured the server would generate a key; a check must not leave one behind.
  const configured = flags.configDir !== null || envText(env, SETTINGS.jwt_private_key) !== undefined;
  try {
    const { config, notices, warnings } = await loadConfig({
      flags,
      // The placeholder key would make the server's default address 0.0.0.0: keep its unconfigured 127.0.0.1.
      env: configured
        ? env
        : { ...env, [SETTINGS.jwt_private_key.env!]: 'not-needed-by-check', [SETTINGS.host.env!]: envText(env, SETTINGS.host) ?? DEFAULTS.embeddedHost },
      cwd: process.cwd(),
    });
    const key = configured ? `JWT key from ${config.jwtKeySource}` : 'no JWT key configured (the server generates one)';
    report(ok(`listens on ${config.host}:${config.port}, ${key}.`));
    // The server starts all the same, as the stock server would; the value is still wrong.
    for (const warning of warnings) report(warn(`${warning}.`, 'correct or unset the variable named'));
    return { config, notices, keyConfigured: configured };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    report(fail(error.message, 'correct the setting named; the server will not start until then'));
    return null;
  }
}

async function checkServer(config: Config): Promise<Finding> {
  const url = `${localServerUrl(config.host, config.port)}/ping`;
  const answer = await get(url);
  if (answer.ok) return ok(`${url} answers ${PONG}.`);
  return fail(
    `${url}: ${answer.problem}.`,
    'start the notification server (systemctl start notification-server), or give the address it listens on (--host, --port)',
  );
}

/**
 * Subscribes a made-up library with a token signed by the configured key, then pings: the server
 * handles a connection's frames in order, so a refusal (`jwt-expired`) arrives before the pong.
 */
async function checkKey({ config, notices, keyConfigured }: LoadedConfig): Promise<Finding> {
  if (!keyConfigured) {
    return warn(
      'no JWT key configured: a server started so generates its own, which seaf-server and seahub do not know; not checked.',
      'set JWT_PRIVATE_KEY or seafile.conf [notification] jwt_private_key to the key seaf-server and seahub use',
    );
  }
  const url = webSocketUrl(localServerUrl(config.host, config.port));
  const repoId = randomUUID();
  const token = signToken(
    { repo_id: repoId, username: 'notification-server-check', exp: Math.floor(Date.now() / 1000) + 300 },
    Buffer.from(config.jwtPrivateKey, 'utf8'),
  );
  const outcome = await probeWebSocket<{ accepted: boolean }>(url, TIMEOUT_MS, `no answer within ${TIMEOUT_MS / 1000} s`, (socket, settle) => {
    socket.on('close', (code) => settle(`the server closed the connection (${code})`));
    socket.on('message', (data) => {
      let message: unknown;
      try {
        message = JSON.parse(String(data));
      } catch {
        return;
      }
      const { type, content } = (message ?? {}) as { type?: unknown; content?: { repo_id?: unknown } };
      if (type === 'jwt-expired' && content?.repo_id === repoId) settle({ accepted: false });
    });
    socket.on('pong', () => settle({ accepted: true }));
    socket.send(JSON.stringify({ type: 'subscribe', content: { repos: [{ id: repoId, jwt_token: token }] } }));
    socket.ping();
  });
  if ('problem' in outcome) return warn(`${url.href}: ${outcome.problem}; not checked.`);
  const signed = `a token signed with the key from ${config.jwtKeySource}`;
  if (!outcome.accepted) {
    return fail(`the server at ${url.href} refuses ${signed} (clients get jwt-expired for every library).`, SAME_KEY_FIX);
  }
  const others = notices.filter(isOtherKeyNotice);
  if (others.length > 0) {
    return warn(`the server accepts the key from ${config.jwtKeySource}, but ${others.join(' ')}`, SAME_KEY_FIX);
  }
  return ok(`the server at ${url.href} accepts ${signed}.`);
}

async function checkGroupDatabase(config: Config): Promise<Finding> {
  const database = config.groupDatabase;
  if (database === null) {
    return warn(
      'none configured: folder permission changes for a group are not delivered.',
      'set ccnet.conf [Database], SEAFILE_MYSQL_DB_HOST or --ccnet-db / CCNET_DB_URL',
    );
  }
  const directory = openGroupDirectory(database, 0, config.groupLookupTimeoutMs);
  try {
    await directory.members(0);
    return ok(`${describeDatabase(database)} answers.`);
  } catch (error) {
    const fix =
      database.kind === 'sqlite'
        ? 'point --ccnet-db at ccnet/GroupMgr/groupmgr.db of the Seafile installation, readable by the server user'
        : 'check that the database server runs and that host, port, user, password and database name are right (ccnet.conf [Database], SEAFILE_MYSQL_DB_*, CCNET_DB_URL)';
    return fail(`${describeDatabase(database)}: ${(error as Error).message}.`, fix);
  } finally {
    await directory.close();
  }
}

/** The variables of Seafile's own container that tell seaf-server and seahub where this server is. */
const SEAFILE_VARIABLES = ['ENABLE_NOTIFICATION_SERVER', 'INNER_NOTIFICATION_SERVER_URL', 'NOTIFICATION_SERVER_URL'];
/** What Seafile's seafile-server.yml gives the seafile container when its .env leaves the variable empty. */
const COMPOSE_INNER_URL = 'http://notification-server:8083';
const SILENT = "seaf-server then answers every client's jwt-token request with 404 and publishes nothing, and says so nowhere";

/** --seafile-env, else the environment when it holds Seafile's variables, else nothing to check. */
async function findSeafileEnv(path: string | null, env: Env): Promise<SeafileEnv | null> {
  if (path !== null) return readSeafileEnvFile(resolve(process.cwd(), path), env);
  return SEAFILE_VARIABLES.some((name) => nonBlank(env[name]) !== null) ? seafileEnvFromProcess(env) : null;
}

/** `in /opt/seafile/.env` or `in the environment`. */
function where(seafile: SeafileEnv): string {
  return `in ${seafile.source}`;
}

/** How the change reaches seaf-server and seahub. */
function applied(seafile: SeafileEnv): string {
  return seafile.fromFile ? ', then recreate the seafile container (docker compose up -d)' : ', then restart seaf-server and seahub';
}

/** Compose and seaf-server both take an empty value for unset. */
function seafileValue(seafile: SeafileEnv, name: string): string | null {
  return nonBlank(seafile.values.get(name));
}

function checkEnabled(seafile: SeafileEnv): Finding {
  const value = seafileValue(seafile, 'ENABLE_NOTIFICATION_SERVER');
  // seaf-server compares the text with "true" exactly.
  if (value === 'true') return ok(`true ${where(seafile)}.`);
  const what = value === null ? `not set ${where(seafile)}${seafile.fromFile ? " (Seafile's compose file then uses false)" : ''}` : `${JSON.stringify(value)} ${where(seafile)}, not exactly "true"`;
  return warn(`${what}: ${SILENT}.`, `set ENABLE_NOTIFICATION_SERVER=true ${where(seafile)}${applied(seafile)}`);
}

async function checkInnerUrl(seafile: SeafileEnv): Promise<Finding> {
  const name = 'INNER_NOTIFICATION_SERVER_URL';
  const fix = `set ${name} ${where(seafile)} to this server as seaf-server reaches it (${COMPOSE_INNER_URL} in Seafile's Docker set-up, http://127.0.0.1:8083 on one host)${applied(seafile)}`;
  const value = seafileValue(seafile, name)?.trim() ?? null;
  if (value === null) {
    const fallback = seafile.fromFile
      ? `; Seafile's compose file then gives seaf-server ${COMPOSE_INNER_URL}, which reaches this server only if it runs as the container notification-server on Seafile's network (not checked from here)`
      : '';
    return warn(`not set ${where(seafile)}${fallback}. Without it ${SILENT}.`, fix);
  }
  const protocol = URL.canParse(value) ? new URL(value).protocol : '';
  if (protocol !== 'http:' && protocol !== 'https:') {
    return warn(`${JSON.stringify(value)} ${where(seafile)} is not an http:// or https:// URL: seaf-server cannot post its events there, and says so nowhere.`, fix);
  }
  const base = value.replace(/\/+$/, '');
  const ping = `${base}/ping`;
  const answer = await get(ping);
  if (answer.ok) return ok(`${ping} answers ${PONG} (seaf-server posts its events to ${base}/events).`);
  return warn(
    `${ping}: ${answer.problem}. seaf-server posts every event to ${base}/events: none would arrive, and it says so nowhere ` +
      '(a host name known only inside Docker\'s network does not answer from outside it: run check where seaf-server runs).',
    fix,
  );
}

function checkPublicUrl(seafile: SeafileEnv): Finding {
  const name = 'NOTIFICATION_SERVER_URL';
  const fix = `set ${name}=https://<your Seafile host>/notification ${where(seafile)}${applied(seafile)}`;
  let value = seafileValue(seafile, name)?.trim() ?? null;
  let origin = where(seafile);
  const hostname = seafileValue(seafile, 'SEAFILE_SERVER_HOSTNAME')?.trim();
  if (value === null && seafile.fromFile && hostname !== undefined) {
    value = `${seafileValue(seafile, 'SEAFILE_SERVER_PROTOCOL')?.trim() ?? 'http'}://${hostname}/notification`;
    origin = `Seafile's compose default from SEAFILE_SERVER_HOSTNAME ${where(seafile)}`;
  }
  if (value === null) {
    return warn(
      `not set ${where(seafile)}: seahub then gives the web UI no notification server and posts its comment updates nowhere.`,
      fix,
    );
  }
  if (URL.canParse(value) && new URL(value).pathname.endsWith('/notification')) {
    return ok(`${value} (${origin}): the web UI connects there, seahub posts comment updates to ${value}/events.`);
  }
  return warn(
    `${value} (${origin}) does not end in /notification: the web UI connects there and seahub posts its comment updates to ` +
      `${value.replace(/\/+$/, '')}${value.endsWith('/') ? '//' : '/'}events, which the documented proxy rules do not forward, and nobody is told.`,
    fix,
  );
}

function checkSeafileKey(seafile: SeafileEnv, loaded: LoadedConfig | null): Finding {
  const name = 'JWT_PRIVATE_KEY';
  const theirs = seafile.values.get(name);
  if (theirs === undefined || theirs === '') {
    return warn(
      `not set ${where(seafile)}: seaf-server does not start without it.`,
      `set ${name} ${where(seafile)} to this server's key${applied(seafile)}`,
    );
  }
  if (loaded === null || !loaded.keyConfigured) {
    const why = loaded === null ? "the server's configuration did not load" : 'no JWT key is configured for this server';
    return warn(
      `not compared: ${why}.`,
      `give this server the key ${where(seafile)}: JWT_PRIVATE_KEY in its environment, or seafile.conf [notification] jwt_private_key`,
    );
  }
  const { config } = loaded;
  if (sameSecret(theirs, config.jwtPrivateKey)) {
    return ok(`the key ${where(seafile)} is the server's (from ${config.jwtKeySource}); neither is shown.`);
  }
  return warn(
    `the key ${where(seafile)} differs from the server's (from ${config.jwtKeySource}); neither is shown. The server then refuses ` +
      "seaf-server's and seahub's events (401) and answers every client's subscribe with jwt-expired; seaf-server says so nowhere.",
    `give both the same key: put the JWT_PRIVATE_KEY ${where(seafile)} into the server's ${config.jwtKeySource}, then restart the server`,
  );
}

async function checkPing(base: URL): Promise<Finding> {
  const url = `${base.href}/ping`;
  const answer = await get(url);
  if (answer.ok) return ok(`${url} answers ${PONG}.`);
  const fix = proxyFix(answer.status, 'route /notification/ping to the server\'s /ping in the proxy (docs/deploy)');
  return fail(`${url}: ${answer.problem} (desktop clients then never connect).`, fix);
}

async function checkUpgrade(url: URL): Promise<Finding> {
  const outcome = await probeWebSocket<{ ok: true }>(url, TIMEOUT_MS, `no answer within ${TIMEOUT_MS / 1000} s`, (socket, settle) => {
    // A pong proves frames cross the proxy both ways, not only the handshake.
    socket.on('pong', () => settle({ ok: true }));
    socket.ping();
  });
  if (!('problem' in outcome)) return ok(`${url.href} upgrades, and frames cross both ways.`);
  const fix =
    outcome.status === 426 || outcome.status === 400
      ? 'the proxy does not pass the Upgrade and Connection headers: in nginx add proxy_http_version 1.1; ' +
        'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade; (docs/deploy/nginx.conf)'
      : proxyFix(outcome.status, 'route /notification to the server in the proxy (docs/deploy)');
  return fail(`${url.href}: ${outcome.problem}.`, fix);
}

/** The fix for a request through the proxy that got `status` back (undefined: no answer at all). */
function proxyFix(status: number | undefined, otherwise: string): string {
  if (status === 502 || status === 503 || status === 504) {
    return 'the proxy cannot reach the notification server: check that it runs and that the proxy points at its host and port';
  }
  return status === undefined ? 'check the public URL and that the proxy runs and is reachable from here' : otherwise;
}

/** Holds a WebSocket through the proxy with nothing subscribed: only the server's pings keep it busy. */
async function checkIdleProxy(url: URL, idleMs: number): Promise<Finding> {
  const seconds = Math.round(idleMs / 1000);
  const outcome = await probeWebSocket<{ ok: true }>(url, idleMs, { ok: true }, (socket, settle) => {
    const openedAt = Date.now();
    socket.on('close', (code) => settle(`closed after ${((Date.now() - openedAt) / 1000).toFixed(1)} s idle (code ${code})`));
  });
  if (!('problem' in outcome)) return ok(`${url.href} stayed open ${seconds} s with nothing subscribed (the server's pings cross the proxy).`);
  // The websocket line already fails with the fix when no WebSocket opens through the proxy.
  if (!outcome.opened) return warn(`${url.href}: not opened: ${outcome.problem}; not checked.`);
  return fail(
    `${url.href}: ${outcome.problem}, within ${seconds} s with nothing subscribed (idle clients then reconnect over and over).`,
    "make the proxy's idle timeout longer than the server's ping interval: nginx proxy_read_timeout, HAProxy timeout tunnel, " +
      'Apache ProxyTimeout or ProxyPass timeout= (docs/deploy)',
  );
}

/**
 * Opens a WebSocket at `url` and hands it to `onOpen`. Settles with the first of: what `onOpen` settles, a refused
 * upgrade (with its status), an error, and `quiet` when `waitMs` pass after the open. Drops the socket then.
 */
function probeWebSocket<T extends object>(
  url: URL,
  waitMs: number,
  quiet: T | string,
  onOpen: (socket: WebSocket, settle: (result: T | string) => void) => void,
): Promise<T | { problem: string; status?: number; opened: boolean }> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, [SEAFILE_SUBPROTOCOL], { handshakeTimeout: TIMEOUT_MS, perMessageDeflate: false });
    let opened = false;
    const settle = (result: T | string, status?: number): void => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.terminate();
      resolve(typeof result === 'string' ? { problem: result, status, opened } : result);
    };
    let timer = setTimeout(() => settle(`no answer within ${(TIMEOUT_MS * 2) / 1000} s`), TIMEOUT_MS * 2);
    socket.on('unexpected-response', (_request, response) => {
      response.resume();
      settle(`answered ${response.statusCode} instead of 101 Switching Protocols`, response.statusCode ?? 0);
    });
    socket.on('error', (error) => settle(error.message));
    socket.on('open', () => {
      opened = true;
      clearTimeout(timer);
      timer = setTimeout(() => settle(quiet), waitMs);
      onOpen(socket, settle);
    });
  });
}

async function checkOpenFiles(clients: number): Promise<Finding> {
  let limits: string;
  try {
    limits = await readFile('/proc/self/limits', 'utf8');
  } catch (error) {
    return warn(`cannot read /proc/self/limits (${(error as Error).message}), not checked.`);
  }
  const soft = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits)?.[1];
  if (soft === undefined) return warn('no "Max open files" in /proc/self/limits, not checked.');
  const needed = clients + RESERVED_FILES;
  const where = '(the limit here; under systemd the unit\'s LimitNOFILE= sets the server\'s)';
  if (soft === 'unlimited' || Number(soft) >= needed) {
    return ok(`limit ${soft} fits ${clients} clients ${where}.`);
  }
  const suggested = Math.max(65_536, Math.ceil(needed / 1024) * 1024);
  return fail(
    `limit ${soft} is below ${needed} (${clients} clients + ${RESERVED_FILES}) ${where}.`,
    `set LimitNOFILE=${suggested} in the systemd unit (docs/deploy/notification-server.service), or ulimit -n ${suggested} before starting the server`,
  );
}

async function get(url: string): Promise<{ ok: boolean; status?: number; problem: string }> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const body = await response.text();
    if (response.status === 200 && body.trim() === PONG) return { ok: true, status: 200, problem: '' };
    const shown = body.trim().slice(0, 80);
    return { ok: false, status: response.status, problem: `answered ${response.status}${shown === '' ? '' : ` ${JSON.stringify(shown)}`}` };
  } catch (error) {
    return { ok: false, problem: describeFetchError(error) };
  }
}

/** Without --public-url: Seafile 12's SEAFILE_SERVER_PROTOCOL/HOSTNAME, else ccnet.conf [General] SERVICE_URL. */
async function findPublicUrl(configDir: string | null, env: Env): Promise<string | null> {
  const hostname = nonBlank(env['SEAFILE_SERVER_HOSTNAME']);
  if (hostname !== null) return `${nonBlank(env['SEAFILE_SERVER_PROTOCOL'])?.trim() ?? 'http'}://${hostname.trim()}`;
  if (configDir === null) return null;
  const ccnet = await readKeyFile(join(resolve(process.cwd(), configDir), 'ccnet.conf')).catch(() => null);
  return nonBlank(ccnet?.get('General', 'SERVICE_URL') ?? undefined)?.trim() ?? null;
}

/** `https://host` and `https://host/notification` both give `https://host/notification`. */
function notificationBase(text: string): URL | ConfigError {
  if (!URL.canParse(text)) return new ConfigError(`the public URL ${JSON.stringify(text)} is not a URL`);
  const url = new URL(text);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return new ConfigError(`the public URL ${text} is not http:// or https://`);
  url.search = '';
  url.hash = '';
  const path = url.pathname.replace(/\/+$/, '');
  url.pathname = path.endsWith('/notification') ? path : `${path}/notification`;
  return url;
}
