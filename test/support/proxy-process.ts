/**
 * A throwaway reverse proxy (nginx, HAProxy, Caddy) for tests: its files in a temp directory,
 * one foreground process on a free loopback port, gone on stop().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { locate } from './binaries.js';
import { freePort } from './server-process.js';

const START_ATTEMPTS = 3;
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;

export interface ProxyLaunch {
  argv: string[];
  /** The whole environment besides PATH. */
  env?: Record<string, string>;
}

export interface ProxySpec {
  name: string;
  /** Writes the proxy's configuration for `port` into `dir` and says how to run it. */
  prepare(port: number, dir: string): Promise<ProxyLaunch>;
  /** Files in `dir` worth showing when a test fails (besides the process output). */
  logFiles?: string[];
  /** How to stop it at once (default SIGTERM, the fast shutdown of nginx and HAProxy). */
  stopSignal?: NodeJS.Signals;
}

export class ProxyProcess {
  private constructor(
    readonly name: string,
    readonly port: number,
    readonly dir: string,
    private readonly logFiles: string[],
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
    private readonly stopSignal: NodeJS.Signals,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /**
   * Starts the proxy and waits until `/notification/ping` answers through it (so its upstream must
   * be running); retries on a new port if another process took the free one meanwhile.
   */
  static async start(spec: ProxySpec): Promise<ProxyProcess> {
    const dir = await mkdtemp(join(tmpdir(), `notif-test-${spec.name.toLowerCase()}-`));
    const logFiles = ['output.log', ...(spec.logFiles ?? [])];
    try {
      for (let attempt = 1; ; attempt++) {
        const port = await freePort();
        const launch = await spec.prepare(port, dir);
        const argv = withParentDeathSignal(launch.argv);
        const output = openSync(join(dir, 'output.log'), 'a');
        const child = spawn(argv[0]!, argv.slice(1), {
          stdio: ['ignore', output, output],
          env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...launch.env },
        });
        closeSync(output);
        child.once('error', () => {});
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        const proxy = new ProxyProcess(spec.name, port, dir, logFiles, child, exited, spec.stopSignal ?? 'SIGTERM');
        if (await proxy.#answersPing()) return proxy;
        await stopProcess(child, exited, proxy.stopSignal);
        const log = proxy.log();
        if (attempt >= START_ATTEMPTS || !/address already in use|cannot bind/i.test(log)) {
          throw new Error(`${spec.name} did not start (exit ${child.exitCode ?? child.signalCode ?? 'none'}); its logs:\n${log}`);
        }
      }
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** The ends of the proxy's logs, for assertion messages. */
  log(): string {
    return this.logFiles.map((file) => `${file}:\n${readTail(join(this.dir, file))}`).join('\n');
  }

  /** Fast shutdown (open WebSockets are cut), then its directory goes. Safe to call twice. */
  async stop(): Promise<void> {
    await stopProcess(this.child, this.exited, this.stopSignal);
    await rm(this.dir, { recursive: true, force: true });
  }

  async #answersPing(): Promise<boolean> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (this.child.exitCode === null && this.child.signalCode === null && Date.now() < deadline) {
      try {
        const response = await fetch(`${this.url}/notification/ping`, { signal: AbortSignal.timeout(2_000) });
        const body = await response.text();
        // A process that is still running after answering the pong owns the port.
        if (response.status === 200 && body.startsWith('{"ret": "pong"}')) return this.child.exitCode === null;
      } catch {
        // Not listening yet.
      }
      await sleep(50);
    }
    return false;
  }
}

async function stopProcess(child: ChildProcess, exited: Promise<void>, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** Also stops the proxy when the test process dies without calling stop(). */
function withParentDeathSignal(argv: string[]): string[] {
  const setpriv = locate('setpriv');
  return setpriv === null ? argv : [setpriv, '--pdeathsig=SIGTERM', '--', ...argv];
}

function readTail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(none)';
  }
}
