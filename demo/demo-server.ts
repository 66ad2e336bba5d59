/**
 * `npm run demo`: the notification server with its embedded defaults, and a page that lists a
 * library's files with live lock icons and a "library updated" banner. The page's buttons
 * lock and unlock files through this script's own endpoints, which change the demo's state and
 * publish the event to the server's internal events listener: the public port takes no events.
 *
 * `/no-ws/notification/...` forwards the fallbacks to the server but refuses WebSocket
 * upgrades, like a proxy without WebSocket support: the page opened with `?no-websocket`
 * connects through it and shows the client falling back to SSE.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { signToken } from '../src/auth/jwt.js';
import { parseServeFlags } from '../src/config/flags.js';
import { loadConfig } from '../src/config/load-config.js';
import { createLogOutput } from '../src/log.js';
import { startServer, type RunningServer } from '../src/app.js';

export const DEMO_REPO = '0d3e0c1a-0000-4d3e-9d3e-00000000dem0';
const DEMO_USER = 'demo@example.com';
const PROJECT = fileURLToPath(new URL('../../', import.meta.url));
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'demo/page/index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'demo/page/app.js', type: 'text/javascript; charset=utf-8' },
};

export interface DemoOptions {
  /** The page's port (0: any free one). */
  pagePort: number;
  /** The notification server's public port; fixed, so that a restarted server comes back where clients look for it. */
  serverPort: number;
  /** The server's log level ('error' for tests). */
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
}

export interface Demo {
  readonly pageUrl: string;
  readonly serverUrl: string;
  /** Whether the notification server runs now. */
  readonly serverRunning: boolean;
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  close(): Promise<void>;
}

interface FileEntry {
  path: string;
  lockUser: string | null;
}

export async function startDemo(options: DemoOptions): Promise<Demo> {
  const key = randomBytes(32).toString('base64');
  const eventsSocket = join(tmpdir(), `notification-demo-${process.pid}-${randomBytes(4).toString('hex')}.sock`);
  const files: FileEntry[] = ['/report.docx', '/budget.xlsx', '/slides/keynote.pptx', '/notes.md'].map((path) => ({ path, lockUser: null }));
  let server: RunningServer | null = null;
  let commits = 0;

  const startNotificationServer = async (): Promise<void> => {
    const env = {
      JWT_PRIVATE_KEY: key,
      NOTIFICATION_SERVER_HOST: '127.0.0.1',
      NOTIFICATION_SERVER_PORT: String(options.serverPort),
      NOTIFICATION_SERVER_EVENTS_LISTEN: eventsSocket,
      NOTIFICATION_SERVER_DRAIN_SECONDS: '0',
      NOTIFICATION_SERVER_LOG_LEVEL: options.logLevel ?? 'info',
    };
    const { config } = await loadConfig({ flags: parseServeFlags([]), env, cwd: process.cwd() });
    server = await startServer(config, createLogOutput(config.logLevel, null, config.logFormat).logger);
  };

  /** Publishes as seaf-server would, to the internal listener; false when the server is not there. */
  const publish = (type: string, content: Record<string, unknown>): Promise<boolean> =>
    new Promise((resolve) => {
      const body = JSON.stringify({ type, content });
      const request = httpRequest(
        {
          socketPath: eventsSocket,
          path: '/events',
          method: 'POST',
          headers: { authorization: `Token ${signToken({ exp: Math.floor(Date.now() / 1000) + 300 }, Buffer.from(key))}`, 'content-type': 'application/json' },
        },
        (response) => {
          response.resume();
          resolve(response.statusCode === 200);
        },
      );
      request.on('error', () => resolve(false));
      request.end(body);
    });

  const json = (response: ServerResponse, status: number, value: unknown): void => {
    response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(value));
  };

  const page = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if (path.startsWith('/no-ws/notification')) {
      forward(request, response, options.serverPort, path.slice('/no-ws'.length) + url.search);
    } else if (STATIC[path] !== undefined) {
      const { file, type } = STATIC[path]!;
      readFile(join(PROJECT, file)).then((body) => response.writeHead(200, { 'content-type': type }).end(body), () => response.writeHead(404).end());
    } else if (/^\/client\/[\w-]+\.js$/.test(path)) {
      // The client library, unbundled, as built: no CDN, no bundler.
      readFile(join(PROJECT, 'client/dist', path.slice('/client/'.length))).then(
        (body) => response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(body),
        () => response.writeHead(404).end(),
      );
    } else if (path === '/demo/config') {
      json(response, 200, { repoId: DEMO_REPO, serverUrl: `http://127.0.0.1:${options.serverPort}/notification` });
    } else if (path === '/demo/token') {
      // What seahub's repo-notification-jwt-token API does for the signed-in user.
      const repoId = url.searchParams.get('repo') ?? '';
      json(response, 200, { token: signToken({ repo_id: repoId, username: DEMO_USER, exp: Math.floor(Date.now() / 1000) + 3600 }, Buffer.from(key)) });
    } else if (path === '/demo/files') {
      json(response, 200, files);
    } else if (path === '/demo/lock' && request.method === 'POST') {
      const file = files.find((entry) => entry.path === url.searchParams.get('path'));
      if (file === undefined) return json(response, 404, { error: 'no such file' });
      file.lockUser = file.lockUser === null ? DEMO_USER : null;
      const change_event = file.lockUser === null ? 'unlocked' : 'locked';
      void publish('file-lock-changed', { repo_id: DEMO_REPO, path: file.path, change_event, lock_user: DEMO_USER, expire: 0 }).then((published) =>
        json(response, published ? 200 : 503, { path: file.path, change_event, published }),
      );
    } else if (path === '/demo/commit' && request.method === 'POST') {
      const commit_id = randomBytes(20).toString('hex');
      commits++;
      void publish('repo-update', { repo_id: DEMO_REPO, commit_id }).then((published) => json(response, published ? 200 : 503, { commit_id, commits, published }));
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  page.on('upgrade', (_request: IncomingMessage, socket: Duplex) => {
    socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });

  const stopNotificationServer = async (): Promise<void> => {
    const running = server;
    server = null;
    await running?.stop();
  };

  await startNotificationServer();
  await new Promise<void>((resolve) => page.listen(options.pagePort, '127.0.0.1', resolve));
  const pagePort = (page.address() as { port: number }).port;

  return {
    pageUrl: `http://127.0.0.1:${pagePort}/`,
    serverUrl: `http://127.0.0.1:${options.serverPort}`,
    get serverRunning() {
      return server !== null;
    },
    stopServer: stopNotificationServer,
    startServer: startNotificationServer,
    async close() {
      page.closeAllConnections();
      await new Promise((resolve) => page.close(resolve));
      await stopNotificationServer();
      await rm(eventsSocket, { force: true });
    },
  };
}

/** Forwards a plain HTTP request (ping, SSE, poll) to the server, streaming the answer. */
function forward(request: IncomingMessage, response: ServerResponse, port: number, path: string): void {
  const upstream = httpRequest({ host: '127.0.0.1', port, method: request.method, path, headers: request.headers }, (answer) => {
    response.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(response);
  });
  upstream.on('error', () => (response.headersSent ? response.destroy() : response.writeHead(502).end()));
  response.on('close', () => upstream.destroy());
  request.pipe(upstream);
}

