import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { signToken } from '../../src/auth/jwt.js';

export const TEST_KEY = 'M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F';
const BIN = fileURLToPath(new URL('../../../bin/notification-server.js', import.meta.url));

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

export interface StartOptions {
  /** Extra environment over the test defaults; undefined removes a default. */
  env?: Record<string, string | undefined>;
  args?: string[];
  /** Flags for node itself, before the script (e.g. --cpu-prof for a benchmark). */
  nodeArgs?: string[];
  cwd?: string;
  /** Wait for the "listening" log line (default) or just spawn. */
  waitUntilListening?: boolean;
  /** The Node.js binary to run it with (default: the one running this process). */
  node?: string;
  /** The server's entry script (default: this checkout's bin/notification-server.js). */
  bin?: string;
}

/** The built server as a child process, as an admin would run it. */
export class ServerProcess {
  readonly logs: LogLine[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: Array<() => void> = [];

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {
    let pending = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      let newline;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ level: 0, msg: line });
        }
      }
      for (const wake of this.#waiters.splice(0)) wake();
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      for (const wake of this.#waiters.splice(0)) wake();
      resolve({ code, signal });
    }));
  }

  static async start(options: StartOptions = {}): Promise<ServerProcess> {
    const port = await freePort();
    const merged: Record<string, string | undefined> = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      NOTIFICATION_SERVER_HOST: '127.0.0.1',
      NOTIFICATION_SERVER_PORT: String(port),
      NOTIFICATION_SERVER_LOG_LEVEL: 'debug',
      JWT_PRIVATE_KEY: TEST_KEY,
      ...options.env,
    };
    const env = Object.fromEntries(Object.entries(merged).filter((entry): entry is [string, string] => entry[1] !== undefined));
    const child = spawn(options.node ?? process.execPath, [...(options.nodeArgs ?? []), options.bin ?? BIN, ...(options.args ?? [])], {
      env,
      cwd: options.cwd ?? process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = new ServerProcess(child, Number(env['NOTIFICATION_SERVER_PORT'] ?? port));
    if (options.waitUntilListening !== false) {
      await server.waitForLog((line) => line.msg.startsWith('notification server listening'), 15_000);
    }
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** Resolves with the first log line (already seen or to come) matching; rejects after timeoutMs or on exit. */
  async waitForLog(match: (line: LogLine) => boolean, timeoutMs = 5000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logs.find(match);
      if (found !== undefined) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`server exited (${this.child.exitCode ?? this.child.signalCode}) before the log line; stderr: ${this.stderr}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`log line not seen within ${timeoutMs} ms; last lines: ${JSON.stringify(this.logs.slice(-5))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    const result = await this.exited;
    clearTimeout(killer);
    return result;
  }

  /** Publishes an event with a publisher token (Seafile 12 style) and returns the status. */
  publish(type: string, content: Record<string, unknown>, headers: Record<string, string> = {}): Promise<number> {
    return publishEvent(this.url, type, content, headers);
  }
}

/** POSTs an event to `<baseUrl>/events` with a publisher token (Seafile 12 style) and returns the status. */
export async function publishEvent(baseUrl: string, type: string, content: Record<string, unknown>, headers: Record<string, string> = {}): Promise<number> {
  const response = await fetch(`${baseUrl}/events`, {
    method: 'POST',
    headers: { authorization: `Token ${publisherToken()}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ type, content }),
  });
  await response.arrayBuffer();
  return response.status;
}

export function publisherToken(key = TEST_KEY, exp = Math.floor(Date.now() / 1000) + 300): string {
  return signToken({ exp }, Buffer.from(key));
}

export function subscriberToken(repoId: string, username: string, options: { key?: string; exp?: number } = {}): string {
  return signToken(
    { repo_id: repoId, username, exp: options.exp ?? Math.floor(Date.now() / 1000) + 3600 },
    Buffer.from(options.key ?? TEST_KEY),
  );
}

/** POSTs a repo-update on a connection of its own: under --workers, successive events reach different workers. */
export function postOnNewConnection(port: number, repoId: string, commit: string): Promise<number> {
  const body = JSON.stringify({ type: 'repo-update', content: { repo_id: repoId, commit_id: commit } });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/events',
        agent: false,
        headers: { authorization: `Token ${publisherToken()}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
