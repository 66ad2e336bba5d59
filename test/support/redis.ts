/**
 * Throwaway Redis servers for tests: free loopback port, no persistence, private directory.
 * Unlike the databases, a test may kill one and start it again on the same port, as an
 * admin's Redis would come back after a crash.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { findBinary, freeLoopbackPort, logTail, ServerBinaryMissingError, stopProcess, withParentDeathSignal, type DatabaseInstance } from './databases.js';
import { isCi } from './env.js';

export interface RedisInstance extends DatabaseInstance {
  readonly port: number;
  /** With `tls`: the certificate a client must trust (NODE_EXTRA_CA_CERTS). */
  readonly caFile: string | null;
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
  /** TLS only (`rediss://`), with a self-signed certificate for 127.0.0.1 in `caFile`. */
  tls?: boolean;
  /** ACL file lines (`user NAME on >PASSWORD ...`). */
  acl?: string[];
}

const READY_TIMEOUT_MS = 15_000;
const START_ATTEMPTS = 3;

export async function startRedis(options: RedisOptions = {}): Promise<RedisInstance> {
  const binary = findBinary(['redis-server'], [], 'redis-server');
  const dir = await mkdtemp(join(tmpdir(), 'notif-test-redis-'));
  const logPath = join(dir, 'redis.log');
  const password = options.password ?? null;
  const tls = options.tls === true ? await selfSignedCertificate(dir) : null;
  const aclFile = options.acl === undefined ? null : join(dir, 'users.acl');
  if (aclFile !== null) await writeFile(aclFile, `${options.acl!.join('\n')}\n`);
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();

  const launch = async (port: number): Promise<boolean> => {
    const argv = [binary, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
    if (tls === null) argv.push('--port', String(port));
    else argv.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.cert, '--tls-auth-clients', 'no');
    if (password !== null) argv.push('--requirepass', password);
    if (aclFile !== null) argv.push('--aclfile', aclFile);
    const [command, ...args] = withParentDeathSignal(argv, 'SIGTERM');
    const log = openSync(logPath, 'a');
    const started = spawn(command ?? binary, args, { stdio: ['ignore', log, log] });
    closeSync(log);
    started.once('error', () => {});
    child = started;
    exited = new Promise<void>((resolve) => started.once('exit', () => resolve()));
    if (await waitUntilReady(port, started, tls?.cert ?? null)) return true;
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
      url: `${tls === null ? 'redis' : 'rediss'}://${auth}127.0.0.1:${port}/`,
      port,
      caFile: tls?.cert ?? null,
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
export function redisSkipReason(options: { tls?: boolean } = {}): string | null {
  try {
    findBinary(['redis-server'], [], 'redis-server');
    if (options.tls === true) findBinary(['openssl'], [], 'openssl');
    return null;
  } catch (error) {
    if (!(error instanceof ServerBinaryMissingError)) throw error;
    if (isCi()) throw new Error(`${error.message}; CI=true requires every Redis test to run`);
    return error.message;
  }
}

/** A certificate for 127.0.0.1 and localhost, valid for two days, made with openssl. */
export async function selfSignedCertificate(dir: string): Promise<{ cert: string; key: string }> {
  const openssl = findBinary(['openssl'], [], 'openssl');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await new Promise<void>((resolve, reject) => {
    execFile(
      openssl,
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
      { timeout: 30_000 },
      (error, _stdout, stderr) => (error === null ? resolve() : reject(new Error(`openssl could not make a test certificate: ${stderr || error.message}`))),
    );
  });
  return { cert, key };
}

/** Answers PING with +PONG, or -NOAUTH when a password is set: either way it is up. */
export async function waitUntilReady(port: number, child: ChildProcess, caFile: string | null): Promise<boolean> {
  const ca = caFile === null ? null : readFileSync(caFile);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) {
    if (await answersPing(port, ca)) return true;
    await sleep(50);
  }
  return false;
}

function answersPing(port: number, ca: Buffer | null): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = ca === null ? connect({ host: '127.0.0.1', port }) : tlsConnect({ host: '127.0.0.1', port, ca });
    let reply = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once(ca === null ? 'connect' : 'secureConnect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'));
    });
  });
}
