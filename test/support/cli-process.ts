/** The built `notification-server` binary run as a command-line tool (publish, listen), as an admin would. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../../bin/notification-server.js', import.meta.url));

export interface CliOptions {
  /** The whole environment besides PATH: nothing leaks in from the test runner's (no JWT_PRIVATE_KEY). */
  env?: Record<string, string>;
  cwd?: string;
  /** Runs it under `ulimit -n <n>` (soft and hard open-files limit). */
  openFilesLimit?: number;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running command; its output so far, and waits on it. */
export class CliProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<CliResult>;
  #waiters: Array<() => void> = [];

  private constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      this.#wake();
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      this.#wake();
    });
    this.exited = new Promise((resolve) =>
      child.once('close', (code) => {
        this.#wake();
        resolve({ code, stdout: this.stdout, stderr: this.stderr });
      }),
    );
  }

  static start(args: string[], options: CliOptions = {}): CliProcess {
    const argv = [process.execPath, BIN, ...args];
    const [command, ...rest] =
      options.openFilesLimit === undefined ? argv : ['/bin/sh', '-c', 'ulimit -n "$0" && exec "$@"', String(options.openFilesLimit), ...argv];
    const child = spawn(command!, rest, {
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...options.env },
      cwd: options.cwd ?? process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new CliProcess(child);
  }

  /** Complete stdout lines so far. */
  get lines(): string[] {
    return this.stdout.split('\n').slice(0, -1);
  }

  /** Waits until `done()` holds; rejects after timeoutMs or when the process exits first. */
  async waitUntil(done: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}; stderr: ${this.stderr}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms; stdout: ${this.stdout} stderr: ${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Sends the signal (if still running) and waits for the exit; SIGKILL after 15 s. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<CliResult> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    const result = await this.exited;
    clearTimeout(killer);
    return result;
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

/** Runs a command to its end (killed after timeoutMs). */
export async function runCli(args: string[], options: CliOptions = {}, timeoutMs = 30_000): Promise<CliResult> {
  const cli = CliProcess.start(args, options);
  const killer = setTimeout(() => cli.child.kill('SIGKILL'), timeoutMs);
  const result = await cli.exited;
  clearTimeout(killer);
  return result;
}
