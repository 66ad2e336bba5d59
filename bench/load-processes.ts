/**
 * The bench side of the load processes (bench/load-process.ts): forking them, asking them,
 * and opening subscribed connections spread over them. Shared by bench/run.ts and
 * bench/container.ts.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClientKind, LoadCommand, LoadReply } from './load-messages.js';

const here = dirname(fileURLToPath(import.meta.url));

/** One forked load process and a way to wait for its replies. */
export class LoadProcess {
  readonly #child: ChildProcess;
  readonly #waiting: Array<(reply: LoadReply) => void> = [];

  constructor() {
    this.#child = fork(join(here, 'load-process.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.#child.on('message', (reply: LoadReply) => this.#waiting.shift()?.(reply));
  }

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  tell(command: LoadCommand): void {
    this.#child.send(command);
  }

  ask<T extends LoadReply>(command: LoadCommand, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load process: no answer to ${command.cmd} within ${timeoutMs} ms`)), timeoutMs);
      this.#waiting.push((reply) => {
        clearTimeout(timer);
        resolve(reply as T);
      });
      this.#child.send(command);
    });
  }

  stop(): void {
    this.#child.kill();
  }
}

/** Source addresses 127.0.0.2 … so no single address runs out of ephemeral ports. */
export function sourceAddresses(processIndex: number, perProcess = 2): string[] {
  return Array.from({ length: perProcess }, (_, i) => `127.0.0.${2 + processIndex * perProcess + i}`);
}

/** How many connections load process `p` of `loads` opens, of `total`. */
export function shareOf(total: number, loads: number, p: number): number {
  const per = Math.ceil(total / loads);
  return Math.max(0, Math.min(per, total - p * per));
}

/**
 * Opens `total` subscribed connections to `wsUrl`, spread over `loads`; connection i follows
 * repos[i % repos.length] as its own user. Resolves with the slowest load process's time in ms.
 */
export async function openSubscribers(
  wsUrl: string,
  loads: LoadProcess[],
  total: number,
  repos: string[],
  options: { key: string; client: ClientKind; concurrency?: number },
): Promise<number> {
  const per = Math.ceil(total / loads.length);
  const replies = await Promise.all(
    loads.map((load, p) =>
      load.ask<Extract<LoadReply, { cmd: 'opened' }>>(
        {
          cmd: 'open',
          url: wsUrl,
          count: shareOf(total, loads.length, p),
          firstUser: p * per,
          repos,
          key: options.key,
          localAddresses: sourceAddresses(p),
          concurrency: options.concurrency ?? 100,
          client: options.client,
        },
        10 * 60_000,
      ),
    ),
  );
  const failed = replies.reduce((sum, r) => sum + r.failed, 0);
  if (failed > 0) throw new Error(`${failed} connections failed to open: ${replies.find((r) => r.firstError !== null)?.firstError}`);
  return Math.max(...replies.map((r) => r.ms));
}

export async function closeAll(loads: LoadProcess[]): Promise<void> {
  await Promise.all(loads.map((load) => load.ask({ cmd: 'close' }, 120_000)));
}
