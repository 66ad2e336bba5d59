/**
 * A load generator process: holds many subscriber WebSockets, or runs connect-subscribe-
 * receive-close cycles, and reports what arrived. Forked by bench/run.ts; a separate process
 * so its CPU is not the server's.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { signToken } from '../src/auth/jwt.js';
import { LeanSubscriber } from './lean-subscriber.js';
import type { ChurnCommand, LoadCommand, LoadReply, OpenCommand, ParseMode } from './load-messages.js';
import { readSeqAndSent, type SeqAndSent } from './seq-and-sent.js';

const SEQ = /"seq":(\d+),"sent":([\d.]+)/;

/** The held subscriber connections: `ws` clients, or lean ones (`--client`). */
const sockets: Array<WebSocket | LeanSubscriber> = [];
let lastSeq = new Int32Array(0);
let messages = 0;
let outOfOrder = 0;
/** seq → [connections that got it, first arrival minus `sent`, latest arrival minus `sent`]. */
let perEvent = new Map<number, [number, number, number]>();
let parse: ParseMode = 'bytes';
// This process's own delays: a load generator that falls behind measures itself.
// 10 ms, not 1: a 1 ms timer would wake every load process 1,000 times a second, on cores shared with the server.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
let cpuAtReset = process.cpuUsage();
let wallAtReset = performance.now();
const parsed: SeqAndSent = { seq: -1, sent: NaN };

/** seq and sent of an event frame, the way `parse` says; false when it carries none. */
function readFrame(data: WebSocket.RawData): boolean {
  if (parse === 'bytes' && Buffer.isBuffer(data)) return readSeqAndSent(data, parsed);
  const match = SEQ.exec(data.toString());
  if (match === null) return false;
  parsed.seq = Number(match[1]);
  parsed.sent = Number(match[2]);
  return true;
}

function send(reply: LoadReply): void {
  process.send?.(reply);
}

function subscriberToken(key: Buffer, repo: string, user: number): string {
  return signToken({ repo_id: repo, username: `user${user}@bench.example`, exp: Math.floor(Date.now() / 1000) + 6 * 3600 }, key);
}

function subscribeFrame(repo: string, token: string): string {
  return JSON.stringify({ type: 'subscribe', content: { repos: [{ id: repo, jwt_token: token }] } });
}

function onEvent(index: number, data: WebSocket.RawData): void {
  const arrived = performance.timeOrigin + performance.now();
  messages++;
  if (!readFrame(data)) return;
  const { seq } = parsed;
  const latency = arrived - parsed.sent;
  if (seq <= (lastSeq[index] ?? -1)) outOfOrder++;
  lastSeq[index] = seq;
  const seen = perEvent.get(seq);
  if (seen === undefined) perEvent.set(seq, [1, latency, latency]);
  else {
    seen[0]++;
    if (latency < seen[1]) seen[1] = latency;
    if (latency > seen[2]) seen[2] = latency;
  }
}

/** Opens one subscribed connection; resolves once the server has handled the subscribe. */
function openOne(command: OpenCommand, key: Buffer, i: number): Promise<WebSocket | LeanSubscriber> {
  const user = command.firstUser + i;
  const repo = command.repos[i % command.repos.length]!;
  const localAddress = command.localAddresses[i % command.localAddresses.length];
  if (command.client === 'lean') {
    return LeanSubscriber.open(command.url, localAddress, subscribeFrame(repo, subscriberToken(key, repo, user)), (payload) => onEvent(i, payload), 30_000);
  }
  const socket = new WebSocket(command.url, {
    localAddress,
    perMessageDeflate: false,
    handshakeTimeout: 30_000,
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once('open', () => {
      socket.send(subscribeFrame(repo, subscriberToken(key, repo, user)));
      // Frames are handled in order, so the pong proves the subscribe was.
      socket.ping();
      socket.once('pong', () => {
        socket.off('error', reject);
        socket.on('error', () => undefined);
        socket.on('message', (data) => onEvent(i, data));
        resolve(socket);
      });
    });
  });
}

async function open(command: OpenCommand): Promise<void> {
  const started = performance.now();
  const key = Buffer.from(command.key);
  lastSeq = new Int32Array(command.count).fill(-1);
  let next = 0;
  let failed = 0;
  let firstError: string | null = null;
  const worker = async (): Promise<void> => {
    while (next < command.count) {
      const i = next++;
      try {
        sockets[i] = await openOne(command, key, i);
      } catch (error) {
        failed++;
        firstError ??= (error as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: command.concurrency }, worker));
  send({ cmd: 'opened', opened: command.count - failed, failed, firstError, ms: performance.now() - started });
}

async function churn(command: ChurnCommand): Promise<void> {
  const key = Buffer.from(command.key);
  const deadline = performance.now() + command.durationMs;
  let cycles = 0;
  let failures = 0;
  let firstError: string | null = null;
  let user = 0;
  const leanCycle = async (localAddress: string | undefined): Promise<void> => {
    let received: () => void = () => undefined;
    const event = new Promise<void>((resolve) => (received = resolve));
    const subscriber = await LeanSubscriber.open(command.url, localAddress, subscribeFrame(command.repo, subscriberToken(key, command.repo, user++)), () => received(), 10_000, false);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no event within 10 s')), 10_000);
    });
    try {
      await Promise.race([event, late, subscriber.closed.then(() => Promise.reject(new Error('closed before an event')))]);
    } finally {
      clearTimeout(timer);
    }
    await subscriber.close();
  };
  const wsCycle = (localAddress: string | undefined): Promise<void> =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(command.url, { localAddress, perMessageDeflate: false, handshakeTimeout: 10_000 });
      const timer = setTimeout(() => {
        socket.terminate();
        reject(new Error('no event within 10 s'));
      }, 10_000);
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.once('open', () => socket.send(subscribeFrame(command.repo, subscriberToken(key, command.repo, user++))));
      socket.once('message', () => {
        clearTimeout(timer);
        socket.once('close', () => resolve());
        socket.close();
      });
    });
  const worker = async (slot: number): Promise<void> => {
    while (performance.now() < deadline) {
      try {
        const localAddress = command.localAddresses[slot % command.localAddresses.length];
        await (command.client === 'lean' ? leanCycle(localAddress) : wsCycle(localAddress));
        cycles++;
      } catch (error) {
        failures++;
        firstError ??= (error as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: command.concurrency }, (_, slot) => worker(slot)));
  send({ cmd: 'churned', cycles, failures, firstError });
}

function report(): void {
  const open = sockets.filter((socket) => (socket instanceof LeanSubscriber ? socket.isOpen : socket?.readyState === WebSocket.OPEN)).length;
  const cpu = process.cpuUsage(cpuAtReset);
  send({
    cmd: 'report',
    open,
    messages,
    outOfOrder,
    perEvent: [...perEvent].map(([seq, [count, first, last]]) => [seq, count, first, last]),
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs: performance.now() - wallAtReset,
    loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    loopDelayMaxMs: loopDelay.max / 1e6,
  });
}

async function closeAll(): Promise<void> {
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          if (socket instanceof LeanSubscriber) {
            socket.terminate();
            return void socket.closed.then(resolve);
          }
          if (socket === undefined || socket.readyState === WebSocket.CLOSED) return resolve();
          socket.once('close', () => resolve());
          socket.terminate();
        }),
    ),
  );
  sockets.length = 0;
  send({ cmd: 'closed' });
}

process.on('message', (command: LoadCommand) => {
  switch (command.cmd) {
    case 'open':
      void open(command);
      break;
    case 'churn':
      void churn(command);
      break;
    case 'reset':
      messages = 0;
      outOfOrder = 0;
      perEvent = new Map();
      lastSeq.fill(-1);
      parse = command.parse;
      loopDelay.reset();
      loopDelay.enable();
      cpuAtReset = process.cpuUsage();
      wallAtReset = performance.now();
      break;
    case 'report':
      report();
      break;
    case 'close':
      void closeAll();
      break;
  }
});
// The driver going away (Ctrl-C, crash) must not leave this process holding sockets.
process.on('disconnect', () => process.exit(0));
