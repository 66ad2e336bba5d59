/**
 * A throwaway Redis with Sentinel: one primary, one replica, three sentinels, on loopback, with
 * short timeouts so that a failover takes a second or two. The replica replicates through a
 * CuttableLink, so a test can make it lag behind the primary (as over a slow or cut network)
 * and then kill the primary: the promotion loses what the replica never received.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { CuttableLink } from './cuttable-link.js';
import { findBinary, freeLoopbackPort, logTail, ServerBinaryMissingError, stopProcess, withParentDeathSignal } from './databases.js';
import { isCi } from './env.js';
import { waitUntilReady } from './redis.js';

export const MASTER_NAME = 'notify-primary';
/** Sentinel's own timing: down after this much silence, and no second failover within the test. */
const DOWN_AFTER_MS = 600;
const FAILOVER_TIMEOUT_MS = 120_000;
const READY_TIMEOUT_MS = 20_000;

interface RedisProcess {
  readonly port: number;
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
}

export interface SentinelTopology {
  /** `redis+sentinel://127.0.0.1:<s1>,127.0.0.1:<s2>,127.0.0.1:<s3>/notify-primary` */
  readonly url: string;
  readonly primaryPort: number;
  /** The primary's process, for its CPU time in the bench. */
  readonly primaryPid: number;
  readonly replicaPort: number;
  /** The replica's replication link to the primary. */
  readonly replicationLink: CuttableLink;
  /** SIGKILL the primary, as in a crash. */
  killPrimary(): Promise<void>;
  /** Resolves with the new primary's port once every sentinel names one other than `oldPort`. */
  waitForPromotion(oldPort: number, timeoutMs: number): Promise<number>;
  stop(): Promise<void>;
}

/** The sentinel binary: `redis-sentinel`, or `redis-server` run with `--sentinel`. */
function sentinelCommand(): string[] {
  try {
    return [findBinary(['redis-sentinel'], [], 'redis-sentinel')];
  } catch (error) {
    if (!(error instanceof ServerBinaryMissingError)) throw error;
    return [findBinary(['redis-server'], [], 'redis-server'), '--sentinel'];
  }
}

/** Why Sentinel tests must be skipped here, or null; under CI=true a missing binary is a failure. */
export function sentinelSkipReason(): string | null {
  try {
    findBinary(['redis-server'], [], 'redis-server');
    sentinelCommand();
    return null;
  } catch (error) {
    if (!(error instanceof ServerBinaryMissingError)) throw error;
    if (isCi()) throw new Error(`${error.message}; CI=true requires every Redis Sentinel test to run`);
    return error.message;
  }
}

export async function startSentinelTopology(): Promise<SentinelTopology> {
  const server = findBinary(['redis-server'], [], 'redis-server');
  const dir = await mkdtemp(join(tmpdir(), 'notif-test-sentinel-'));
  const processes: RedisProcess[] = [];
  let link: CuttableLink | null = null;
  const launch = async (name: string, argv: string[], port: number): Promise<RedisProcess> => {
    const logPath = join(dir, `${name}.log`);
    const [command, ...args] = withParentDeathSignal(argv, 'SIGTERM');
    const log = openSync(logPath, 'a');
    const child = spawn(command!, args, { stdio: ['ignore', log, log] });
    closeSync(log);
    child.once('error', () => {});
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const started = { port, child, exited };
    processes.push(started);
    if (!(await waitUntilReady(port, child, null))) throw new Error(`${name} did not start on port ${port}; its log ends:\n${logTail(logPath)}`);
    return started;
  };
  const stopAll = async (): Promise<void> => {
    await Promise.all(processes.map((p) => (p.child.kill('SIGCONT'), stopProcess(p.child, p.exited, 'SIGKILL'))));
    await link?.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    const primaryPort = await freeLoopbackPort();
    const primary = await launch('primary', [server, ...common, '--port', String(primaryPort), '--dir', dir, '--dbfilename', 'primary.rdb'], primaryPort);
    link = await CuttableLink.open(primaryPort);
    const replicaPort = await freeLoopbackPort();
    await launch(
      'replica',
      [server, ...common, '--port', String(replicaPort), '--dir', dir, '--dbfilename', 'replica.rdb', '--replicaof', '127.0.0.1', String(link.port), '--repl-diskless-load', 'on-empty-db'],
      replicaPort,
    );
    await untilReplicating(replicaPort);
    const sentinelPorts: number[] = [];
    for (let i = 1; i <= 3; i++) {
      const port = await freeLoopbackPort();
      const conf = join(dir, `sentinel-${i}.conf`);
      await writeFile(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${MASTER_NAME} ${DOWN_AFTER_MS}`,
          `sentinel failover-timeout ${MASTER_NAME} ${FAILOVER_TIMEOUT_MS}`,
          `sentinel parallel-syncs ${MASTER_NAME} 1`,
          '',
        ].join('\n'),
      );
      await launch(`sentinel-${i}`, [...sentinelCommand(), conf], port);
      sentinelPorts.push(port);
    }
    await untilSentinelsKnowEachOther(sentinelPorts);
    const replicationLink = link;
    return {
      url: `redis+sentinel://${sentinelPorts.map((port) => `127.0.0.1:${port}`).join(',')}/${MASTER_NAME}`,
      primaryPort,
      primaryPid: primary.child.pid!,
      replicaPort,
      replicationLink,
      killPrimary: () => stopProcess(primary.child, primary.exited, 'SIGKILL'),
      waitForPromotion: (oldPort, timeoutMs) => untilPromoted(sentinelPorts, oldPort, timeoutMs),
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

async function untilReplicating(replicaPort: number): Promise<void> {
  await poll(replicaPort, async (redis) => /master_link_status:up/.test(await redis.info('replication')), 'the replica to sync with the primary');
}

/** A sentinel counts votes only from sentinels it knows: they find each other over the primary every 2 s. */
async function untilSentinelsKnowEachOther(ports: number[]): Promise<void> {
  for (const port of ports) {
    await poll(
      port,
      async (redis) => {
        const fields = (await redis.call('SENTINEL', 'MASTER', MASTER_NAME)) as string[];
        const value = (key: string): number => Number(fields[fields.indexOf(key) + 1]);
        return value('num-other-sentinels') === ports.length - 1 && value('num-slaves') === 1;
      },
      'the sentinels to find each other and the replica',
    );
  }
}

async function untilPromoted(sentinelPorts: number[], oldPort: number, timeoutMs: number): Promise<number> {
  let newPort = 0;
  for (const port of sentinelPorts) {
    await poll(
      port,
      async (redis) => {
        const address = (await redis.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME)) as [string, string] | null;
        newPort = Number(address?.[1] ?? oldPort);
        return newPort !== oldPort;
      },
      'a sentinel to name the promoted replica',
      timeoutMs,
    );
  }
  return newPort;
}

async function poll(port: number, check: (redis: Redis) => Promise<boolean>, what: string, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  const redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => 100 });
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
