/**
 * A throwaway nginx for proxy tests: its own prefix in a temp directory (config, pid, logs,
 * temp files), one process, a free loopback port, gone on stop(). Plus the documented site
 * config (docs/deploy/nginx.conf) with its addresses swapped for the test's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { locate, requireBinary, skipReason } from './binaries.js';
import { freePort } from './server-process.js';

export const DOCUMENTED_NGINX_CONF = fileURLToPath(new URL('../../../docs/deploy/nginx.conf', import.meta.url));

const START_ATTEMPTS = 3;
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;

/** The nginx binary; undefined (skip) outside CI when it is missing, an error under CI=true. */
export function requireNginx(): string | undefined {
  return requireBinary('nginx', 'nginx');
}

export function nginxSkipReason(binary: string | undefined): string | false {
  return skipReason(binary, 'nginx', 'nginx');
}

export interface NginxSiteOptions {
  /** The port nginx listens on, on 127.0.0.1. */
  listenPort: number;
  /** `host:port` of the notification server. */
  upstream: string;
  /** Directory for the site's access and error logs. */
  logDir: string;
}

/**
 * docs/deploy/nginx.conf with the listen address, the upstream and the log directory replaced.
 * Each replaced text must be in the file, so the docs cannot drift from what the tests run.
 */
export function documentedNginxSite(options: NginxSiteOptions): string {
  let site = readFileSync(DOCUMENTED_NGINX_CONF, 'utf8');
  const replace = (from: string, to: string): void => {
    if (!site.includes(from)) throw new Error(`${DOCUMENTED_NGINX_CONF} no longer contains ${JSON.stringify(from)}: update test/support/nginx.ts`);
    site = site.split(from).join(to);
  };
  replace('listen 80;', `listen 127.0.0.1:${options.listenPort};`);
  replace('127.0.0.1:8083', options.upstream);
  replace('/var/log/nginx/', `${options.logDir}/`);
  return site;
}

export class Nginx {
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /**
   * Starts nginx with the http-level config `site(port, logDir)` returns, retrying on a new port
   * if another process took the free one meanwhile.
   */
  static async start(binary: string, site: (port: number, logDir: string) => string): Promise<Nginx> {
    const dir = await mkdtemp(join(tmpdir(), 'notif-test-nginx-'));
    try {
      const logDir = join(dir, 'logs');
      await mkdir(logDir);
      await mkdir(join(dir, 'temp'));
      for (let attempt = 1; ; attempt++) {
        const port = await freePort();
        const confPath = join(dir, 'nginx.conf');
        await writeFile(confPath, mainConfig(dir, site(port, logDir)));
        const argv = withParentDeathSignal([binary, '-p', dir, '-c', confPath, '-e', join(logDir, 'error.log')]);
        const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
        child.once('error', () => {});
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        if (await listening(port, join(dir, 'nginx.pid'), child, exited)) return new Nginx(port, dir, child, exited);
        await stopProcess(child, exited);
        const log = readTail(join(logDir, 'error.log'));
        if (attempt >= START_ATTEMPTS || !/Address already in use/.test(log + stderr)) {
          throw new Error(`nginx did not start (exit ${child.exitCode ?? child.signalCode}): ${stderr}\n${log}`);
        }
      }
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** The site's error log (for assertion messages). */
  errorLog(): string {
    return readTail(join(this.dir, 'logs', 'error.log')) + readTail(join(this.dir, 'logs', 'notif.error.log'));
  }

  /** Fast shutdown (open WebSockets are cut), then the prefix directory goes. Safe to call twice. */
  async stop(): Promise<void> {
    await stopProcess(this.child, this.exited);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Everything outside the site: one foreground process whose files all live under `dir`. */
function mainConfig(dir: string, site: string): string {
  const temp = join(dir, 'temp');
  return `daemon off;
master_process off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} info;
events {
    worker_connections 256;
}
http {
    access_log ${join(dir, 'logs', 'access.log')};
    client_body_temp_path ${temp}/body;
    proxy_temp_path ${temp}/proxy;
    fastcgi_temp_path ${temp}/fastcgi;
    uwsgi_temp_path ${temp}/uwsgi;
    scgi_temp_path ${temp}/scgi;

${site}
}
`;
}

/** nginx writes its pid file once its sockets are bound; before that the port may be someone else's. */
async function listening(port: number, pidFile: string, child: ChildProcess, exited: Promise<void>): Promise<boolean> {
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!hasExited && child.exitCode === null && Date.now() < deadline) {
    if (readTail(pidFile).trim() === String(child.pid) && (await accepts(port))) return !hasExited;
    await sleep(50);
  }
  return false;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function stopProcess(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  // SIGTERM is nginx's fast shutdown; SIGQUIT would wait for every open WebSocket.
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** Also stops nginx when the test process dies without calling stop(). */
function withParentDeathSignal(argv: string[]): string[] {
  const setpriv = locate('setpriv');
  return setpriv === null ? argv : [setpriv, '--pdeathsig=SIGTERM', '--', ...argv];
}

function readTail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}
