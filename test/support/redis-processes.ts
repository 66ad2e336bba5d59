/**
 * The Redis processes of a throwaway topology (Sentinel, Cluster): started in one private
 * directory, each logging to its own file, all stopped together.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import { logTail, stopProcess, withParentDeathSignal } from './databases.js';
import { waitUntilReady } from './redis.js';

const READY_TIMEOUT_MS = 20_000;

export interface RedisProcess {
  readonly port: number;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  /** SIGKILL, as in a crash. */
  kill(): Promise<void>;
}

export class RedisProcesses {
  readonly #processes: RedisProcess[] = [];

  /** `caFile`: with TLS, the certificate the readiness check trusts. */
  constructor(
    readonly dir: string,
    private readonly caFile: string | null = null,
  ) {}

  async launch(name: string, argv: string[], port: number): Promise<RedisProcess> {
    const logPath = join(this.dir, `${name}.log`);
    const [command, ...args] = withParentDeathSignal(argv, 'SIGTERM');
    const log = openSync(logPath, 'a');
    const child = spawn(command!, args, { stdio: ['ignore', log, log] });
    closeSync(log);
    child.once('error', () => {});
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const started = { port, child, exited, kill: () => stopProcess(child, exited, 'SIGKILL') };
    this.#processes.push(started);
    if (!(await waitUntilReady(port, child, this.caFile))) throw new Error(`${name} did not start on port ${port}; its log ends:\n${logTail(logPath)}`);
    return started;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.#processes.map((p) => (p.child.kill('SIGCONT'), stopProcess(p.child, p.exited, 'SIGKILL'))));
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** How a test reaches an instance: credentials and TLS, when the topology has them. */
export type ClientOptions = Pick<RedisOptions, 'username' | 'password' | 'tls'>;

/** Asks the instance at `port` until `check` holds. */
export async function pollRedis(port: number, client: ClientOptions, check: (redis: Redis) => Promise<boolean>, what: string, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  const redis = new Redis({ ...client, host: '127.0.0.1', port, maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => 100 });
  redis.on('error', () => {});
  const deadline = Date.now() + timeoutMs;
  try {
    await redis.connect().catch(() => {});
    while (Date.now() < deadline) {
      if (await check(redis).catch(() => false)) return;
      await sleep(50);
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
  } finally {
    redis.disconnect();
  }
}

/** Resolves once the replica at `replicaPort` has everything the primary at `primaryPort` took so far. */
export async function untilReplicaCaughtUp(primaryPort: number, replicaPort: number, client: ClientOptions): Promise<void> {
  let offset = -1;
  await pollRedis(primaryPort, client, async (redis) => (offset = replicationOffset(await redis.info('replication'), 'master')) >= 0, "the primary's replication offset");
  await pollRedis(replicaPort, client, async (redis) => replicationOffset(await redis.info('replication'), 'slave') >= offset, 'the replica to catch up');
}

function replicationOffset(info: string, role: 'master' | 'slave'): number {
  return Number(new RegExp(`^${role}_repl_offset:(\\d+)`, 'm').exec(info)?.[1] ?? -1);
}
