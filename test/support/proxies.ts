/**
 * nginx, Apache, HAProxy and Caddy started with the configurations in docs/deploy/, only their addresses
 * (and log paths) swapped for the test's. Each swapped text must be in the documented file, so
 * the docs cannot drift from what the tests run.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireBinary, skipReason } from './binaries.js';
import { ProxyProcess } from './proxy-process.js';

export interface ProxyKind {
  name: 'nginx' | 'Apache' | 'HAProxy' | 'Caddy';
  /** The documented file, under docs/deploy/. */
  file: string;
  /** The binary; undefined (the tests skip) outside CI when it is not installed. */
  binary: string | undefined;
  skip: string | false;
  /**
   * Starts it in front of `upstream` (`host:port` of a running notification server);
   * `edit` may change the documented configuration first (to break it on purpose, or to add
   * a documented restriction), before the addresses are swapped for the test's.
   */
  start(upstream: string, edit?: (config: string) => string): Promise<ProxyProcess>;
}

function documented(file: string): string {
  return readFileSync(fileURLToPath(new URL(`../../../docs/deploy/${file}`, import.meta.url)), 'utf8');
}

/** Replaces every `from` by `to`; `from` must be in the documented file. */
function substitute(text: string, file: string, replacements: Array<[string, string]>): string {
  let result = text;
  for (const [from, to] of replacements) {
    if (!result.includes(from)) throw new Error(`docs/deploy/${file} no longer contains ${JSON.stringify(from)}: update test/support/proxies.ts`);
    result = result.split(from).join(to);
  }
  return result;
}

function nginx(): ProxyKind {
  const binary = requireBinary('nginx', 'nginx');
  return {
    name: 'nginx',
    file: 'nginx.conf',
    binary,
    skip: skipReason(binary, 'nginx', 'nginx'),
    start: (upstream, edit = (config) => config) =>
      ProxyProcess.start({
        name: 'nginx',
        logFiles: ['logs/error.log', 'logs/notif.error.log'],
        prepare: async (port, dir) => {
          await mkdir(join(dir, 'logs'), { recursive: true });
          const site = substitute(edit(documented('nginx.conf')), 'nginx.conf', [
            ['listen 80;', `listen 127.0.0.1:${port};`],
            ['127.0.0.1:8083', upstream],
            ['/var/log/nginx/', `${dir}/logs/`],
          ]);
          // One foreground process (it need not switch users), every file inside dir.
          const conf = `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log info;
events {
    worker_connections 256;
}
http {
    access_log ${dir}/logs/access.log;
    client_body_temp_path ${dir}/body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;

${site}
}
`;
          await writeFile(join(dir, 'nginx.conf'), conf);
          return { argv: [binary!, '-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'logs', 'error.log')] };
        },
      }),
  };
}

/** Where Debian's apache2-bin keeps the modules. */
const APACHE_MODULES = '/usr/lib/apache2/modules';

function apache(): ProxyKind {
  const binary = requireBinary('apache2', 'apache2-bin');
  return {
    name: 'Apache',
    file: 'apache.conf',
    binary,
    skip: skipReason(binary, 'apache2', 'apache2-bin'),
    start: (upstream, edit = (config) => config) =>
      ProxyProcess.start({
        name: 'Apache',
        logFiles: ['error.log'],
        // With -X Apache waits for every open WebSocket tunnel on SIGTERM; one process, nothing to lose.
        stopSignal: 'SIGKILL',
        prepare: async (port, dir) => {
          const snippet = substitute(edit(documented('apache.conf')), 'apache.conf', [['127.0.0.1:8083', upstream]]);
          // authz_host: Require ip, for the restriction in docs/security.md.
          const modules = ['mpm_event', 'authz_core', 'authz_host', 'proxy', 'proxy_http', 'proxy_wstunnel'];
          // The server-wide lines every Apache has, and the modules the docs name.
          const conf = `ServerRoot ${dir}
DefaultRuntimeDir ${dir}
ServerName 127.0.0.1
Listen 127.0.0.1:${port}
PidFile ${dir}/httpd.pid
ErrorLog ${dir}/error.log
LogLevel warn
${modules.map((module) => `LoadModule ${module}_module ${APACHE_MODULES}/mod_${module}.so`).join('\n')}

${snippet}`;
          await writeFile(join(dir, 'httpd.conf'), conf);
          // -X: one foreground process.
          return { argv: [binary!, '-X', '-f', join(dir, 'httpd.conf')] };
        },
      }),
  };
}

function haproxy(): ProxyKind {
  const binary = requireBinary('haproxy', 'haproxy');
  return {
    name: 'HAProxy',
    file: 'haproxy.cfg',
    binary,
    skip: skipReason(binary, 'haproxy', 'haproxy'),
    start: (upstream, edit = (config) => config) =>
      ProxyProcess.start({
        name: 'HAProxy',
        prepare: async (port, dir) => {
          const snippet = substitute(edit(documented('haproxy.cfg')), 'haproxy.cfg', [
            ['bind :80', `bind 127.0.0.1:${port}`],
            ['127.0.0.1:8083', upstream],
          ]);
          // What every haproxy.cfg has before its frontends.
          const conf = `global
    log stderr format raw local0 warning

defaults
    log global
    timeout client 30s

${snippet}`;
          await writeFile(join(dir, 'haproxy.cfg'), conf);
          return { argv: [binary!, '-db', '-f', join(dir, 'haproxy.cfg')] };
        },
      }),
  };
}

function caddy(): ProxyKind {
  return caddyWith(requireBinary('caddy', 'caddy'), documented, 'Caddyfile');
}

/** Caddy with the site block `read(file)` gives. */
function caddyWith(binary: string | undefined, read: (file: string) => string, file: string): ProxyKind {
  return {
    name: 'Caddy',
    file,
    binary,
    skip: skipReason(binary, 'caddy', 'caddy'),
    start: (upstream, edit = (config) => config) =>
      ProxyProcess.start({
        name: 'Caddy',
        // Its grace period (below) bounds how long it waits for open WebSockets.
        stopSignal: 'SIGTERM',
        prepare: async (port, dir) => {
          const site = substitute(edit(read(file)), file, [
            ['seafile.example.com {', `http://127.0.0.1:${port} {\n    bind 127.0.0.1`],
            ['127.0.0.1:8083', upstream],
          ]);
          // No admin endpoint (parallel instances would share its port), no certificates, nothing in $HOME.
          const conf = `{
    admin off
    auto_https off
    grace_period 1s
    storage file_system ${dir}/storage
}

${site}`;
          await writeFile(join(dir, 'Caddyfile'), conf);
          return {
            argv: [binary!, 'run', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'],
            env: { HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_DATA_HOME: join(dir, 'data') },
          };
        },
      }),
  };
}

/**
 * Seafile's own Caddy labels for the notification-server container (its notification-server.yml),
 * written as a Caddyfile: WebSocket upgrades anywhere, and everything under /notification with
 * the prefix stripped. Not our documented configuration: what the server meets in Seafile's Docker set-up.
 */
export function seafileCaddyLabels(): ProxyKind {
  const binary = requireBinary('caddy', 'caddy');
  const labels = `seafile.example.com {
    @ws {
        header Connection *Upgrade*
        header Upgrade websocket
    }
    reverse_proxy @ws 127.0.0.1:8083
    handle_path /notification* {
        rewrite * {uri}
        reverse_proxy 127.0.0.1:8083
    }
}
`;
  const caddy = caddyWith(binary, () => labels, 'Caddyfile');
  return { ...caddy, file: "Seafile's Caddy labels" };
}

/**
 * Caddy with `site`, a site block for `seafile.example.com` proxying to `127.0.0.1:8083` (both
 * swapped for the test's); `file` names where it comes from.
 */
export function caddySite(site: string, file: string): ProxyKind {
  return { ...caddyWith(requireBinary('caddy', 'caddy'), () => site, 'Caddyfile'), file };
}

/** The code block of `language` in docs/security.md that names /notification/events. */
function securitySnippet(language: string): string {
  const text = readFileSync(fileURLToPath(new URL('../../../docs/security.md', import.meta.url)), 'utf8');
  const blocks = [...text.matchAll(new RegExp('```' + language + '\\n([\\s\\S]*?)```', 'g'))].map((match) => match[1]!);
  const found = blocks.filter((block) => block.includes('/notification/events'));
  if (found.length !== 1) throw new Error(`docs/security.md has ${found.length} ${language} blocks about /notification/events, expected 1`);
  return found[0]!;
}

/** The documented snippet's first address, the one a test client comes from. */
const DOCUMENTED_SEAFILE_HOST = '192.0.2.10';

/**
 * Applies the restriction of docs/security.md ("Taking events from the Seafile hosts only") to the
 * documented configuration of `kind`, with `allowed` in place of the first Seafile host.
 */
export function eventsRestrictedTo(kind: ProxyKind['name'], allowed: string): (config: string) => string {
  const language = { nginx: 'nginx', Apache: 'apache', HAProxy: 'haproxy', Caddy: 'caddy' }[kind];
  const snippet = securitySnippet(language).split(DOCUMENTED_SEAFILE_HOST).join(allowed);
  return (config) => {
    let edited: string;
    if (kind === 'nginx') edited = config.replace(/^ {4}location = \/notification\/events \{[^}]*\}\n/m, snippet);
    else if (kind === 'Caddy') edited = config.replace(/^ {4}handle \/notification\/events \{[^}]*\}\n/m, snippet);
    else if (kind === 'HAProxy') edited = config.replace(/^ {4}use_backend notification /m, `${snippet}    use_backend notification `);
    else edited = `${config}\n${snippet}`;
    if (edited === config) throw new Error(`the restriction of docs/security.md found no place in docs/deploy for ${kind}`);
    return edited;
  };
}

/** Every documented proxy; creating them checks (and under CI=true requires) their binaries. */
export function documentedProxies(): ProxyKind[] {
  return [nginx(), apache(), haproxy(), caddy()];
}

export function documentedNginx(): ProxyKind {
  return nginx();
}
