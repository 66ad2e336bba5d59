/**
 * Throwaway Redis servers for tests: free loopback port, no persistence, private directory.
 * Unlike the databases, a test may kill one and start it again on the same port, as an
 * admin's Redis would come back after a crash.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findBinary, freeLoopbackPort, logTail, ServerBinaryMissingError, stopProcess, withParentDeathSignal, type DatabaseInstance } from './databases.js';
import { isCi } from './env.js';

export interface RedisInstance extends DatabaseInstance {
  readonly port: number;
  /** SIGKILL, as in a crash: clients see their connections reset. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: nothing was saved). */
  restart(): Promise<void>;
  /** SIGSTOP: connections stay open but nothing answers, as with a frozen host or a dead link. */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
}

export interface RedisOptions {
  /** Sets `requirepass`; the URL then carries it. */
  password?: string;
}

const READY_TIMEOUT_MS = 15_000;
const START_ATTEMPTS = 3;

export async function startRedis(options: RedisOptions = {}): Promise<RedisInstance> {
  const binary = findBinary(['redis-server'], [], 'redis-server');
  const dir = await mkdtemp(join(tmpdir(), 'notif-test-redis-'));
  const logPath = join(dir, 'redis.log');
  const password = options.password ?? null;
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();

  const launch = async (port: number): Promise<boolean> => {
    const argv = [binary, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
    if (password !== null) argv.push('--requirepass', password);
    const [command, ...args] = withParentDeathSignal(argv, 'SIGTERM');
    const log = openSync(logPath, 'a');
    const started = spawn(command ?? binary, args, { stdio: ['ignore', log, log] });
    closeSync(log);
    started.once('error', () => {});
    child = started;
    exited = new Promise<void>((resolve) => started.once('exit', () => resolve()));
    if (await waitUntilReady(port, started)) return true;
    await stopProcess(started, exited, 'SIGKILL');
    return false;
  };

  try {
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freeLoopbackPort();
      if (await launch(port)) break;
      if (attempt >= START_ATTEMPTS) throw new Error(`redis-server did not start; its log ends:\n${logTail(logPath)}`);
    }
    const auth = password === null ? '' : `:${encodeURIComponent(password)}@`;
    let stopping: Promise<void> | undefined;
    const current = (): ChildProcess => child!;
    return {
      url: `redis://${auth}127.0.0.1:${port}/`,
      port,
      kill: () => stopProcess(current(), exited, 'SIGKILL'),
      restart: async () => {
        await stopProcess(current(), exited, 'SIGKILL');
        if (!(await launch(port))) throw new Error(`redis-server did not start again on port ${port}; its log ends:\n${logTail(logPath)}`);
      },
      freeze: () => void current().kill('SIGSTOP'),
      thaw: () => void current().kill('SIGCONT'),
      stop: () => (stopping ??= Promise.resolve(current().kill('SIGCONT')).then(() => stopProcess(current(), exited, 'SIGTERM')).finally(() => rm(dir, { recursive: true, force: true }))),
    };
  } catch (error) {
    if (child !== null) await stopProcess(child, exited, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Why tests that start their own Redis must be skipped here, or null when they can run.
 * Under CI=true a missing redis-server is a failure, never a skip.
 */
export function redisSkipReason(): string | null {
  try {
    findBinary(['redis-server'], [], 'redis-server');
    return null;
  } catch (error) {
    if (!(error instanceof ServerBinaryMissingError)) throw error;
    if (isCi()) throw new Error(`${error.message}; CI=true requires every Redis test to run`);
    return error.message;
  }
}

/** Answers PING with +PONG, or -NOAUTH when a password is set: either way it is up. */
async function waitUntilReady(port: number, child: ChildProcess): Promise<boolean> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) {
    if (await answersPing(port)) return true;
    await sleep(50);
  }
  return false;
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'));
    });
  });
}
