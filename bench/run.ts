/**
 * `npm run bench [-- idle|fanout|churn ...] [--connections N] [--subscribers N] ...`
 *
 * Starts the built server as its own process, drives it from separate load processes over
 * loopback, and prints the figures of issue 4 with the machine they ran on. Every phase is
 * bounded in count and time.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { signToken } from '../src/auth/jwt.js';
import { ServerProcess, TEST_KEY } from '../test/support/server-process.js';
import type { LoadCommand, LoadReply, ReceiptReport } from './load-messages.js';
import { readProcessUsage } from './process-usage.js';

const here = dirname(fileURLToPath(import.meta.url));
const SCENARIOS = ['idle', 'fanout', 'churn', 'scale'] as const;
/** Run by `npm run bench` with no scenario named: scale takes minutes and most of the machine. */
const DEFAULT_SCENARIOS: Scenario[] = ['idle', 'fanout', 'churn'];
type Scenario = (typeof SCENARIOS)[number];

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    connections: { type: 'string', default: '18000' },
    'idle-seconds': { type: 'string', default: '40' },
    subscribers: { type: 'string', default: '1000' },
    events: { type: 'string', default: '200' },
    rate: { type: 'string', default: '50' },
    'burst-events': { type: 'string', default: '2000' },
    'churn-seconds': { type: 'string', default: '10' },
    'churn-concurrency': { type: 'string', default: '64' },
    'load-processes': { type: 'string', default: '2' },
    'scale-connections': { type: 'string', default: '100000' },
    workers: { type: 'string', default: '7' },
    'connections-per-load-process': { type: 'string', default: '12500' },
  },
});

function positiveInteger(name: keyof typeof options): number {
  const value = Number(options[name]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a whole number >= 1, got ${String(options[name])}`);
  return value;
}

const scenarios: Scenario[] = positionals.length === 0 ? [...DEFAULT_SCENARIOS] : positionals.map((name) => {
  if (!(SCENARIOS as readonly string[]).includes(name)) throw new Error(`unknown scenario ${name}: use ${SCENARIOS.join(', ')}`);
  return name as Scenario;
});

/** One forked load process and a way to wait for its replies. */
class LoadProcess {
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
function sourceAddresses(processIndex: number, perProcess = 2): string[] {
  return Array.from({ length: perProcess }, (_, i) => `127.0.0.${2 + processIndex * perProcess + i}`);
}

/** Posts events over a few kept-alive connections, as seaf-server does. */
class Publisher {
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 16 });
  readonly #token = signToken({ exp: Math.floor(Date.now() / 1000) + 6 * 3600 }, Buffer.from(TEST_KEY));

  constructor(readonly port: number) {}

  post(repo: string, seq: number): Promise<void> {
    const sent = performance.timeOrigin + performance.now();
    const body = `{"type":"repo-update","content":{"repo_id":"${repo}","commit_id":"c${seq}","seq":${seq},"sent":${sent.toFixed(3)}}}`;
    return new Promise((resolve, reject) => {
      const req = request(
        { agent: this.#agent, host: '127.0.0.1', port: this.port, method: 'POST', path: '/events', headers: { authorization: `Token ${this.#token}`, 'content-length': Buffer.byteLength(body) } },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`POST /events answered ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

function repoId(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function merge(reports: ReceiptReport[]): { messages: number; outOfOrder: number; open: number; perEvent: Map<number, [number, number]> } {
  const perEvent = new Map<number, [number, number]>();
  for (const report of reports) {
    for (const [seq, count, latency] of report.perEvent) {
      const seen = perEvent.get(seq);
      if (seen === undefined) perEvent.set(seq, [count, latency]);
      else perEvent.set(seq, [seen[0] + count, Math.max(seen[1], latency)]);
    }
  }
  return {
    messages: reports.reduce((sum, r) => sum + r.messages, 0),
    outOfOrder: reports.reduce((sum, r) => sum + r.outOfOrder, 0),
    open: reports.reduce((sum, r) => sum + r.open, 0),
    perEvent,
  };
}

async function startServer(env: Record<string, string> = {}, args: string[] = []): Promise<ServerProcess> {
  // e.g. BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=prof" to profile the server.
  const nodeArgs = process.env['BENCH_SERVER_NODE_ARGS']?.split(' ').filter((arg) => arg !== '') ?? [];
  return ServerProcess.start({ env: { NOTIFICATION_SERVER_LOG_LEVEL: 'info', ...env }, nodeArgs, args });
}

/** How many connections load process `p` of `loads` opens, of `total`. */
function shareOf(total: number, loads: number, p: number): number {
  const per = Math.ceil(total / loads);
  return Math.max(0, Math.min(per, total - p * per));
}

async function openConnections(server: ServerProcess, loads: LoadProcess[], total: number, repos: string[], concurrency = 100): Promise<number> {
  const per = Math.ceil(total / loads.length);
  const replies = await Promise.all(
    loads.map((load, p) =>
      load.ask<Extract<LoadReply, { cmd: 'opened' }>>(
        { cmd: 'open', url: server.wsUrl, count: shareOf(total, loads.length, p), firstUser: p * per, repos, key: TEST_KEY, localAddresses: sourceAddresses(p), concurrency },
        10 * 60_000,
      ),
    ),
  );
  const failed = replies.reduce((sum, r) => sum + r.failed, 0);
  if (failed > 0) throw new Error(`${failed} connections failed to open: ${replies.find((r) => r.firstError !== null)?.firstError}`);
  return Math.max(...replies.map((r) => r.ms));
}

async function report(loads: LoadProcess[]): Promise<ReturnType<typeof merge>> {
  return merge(await Promise.all(loads.map((load) => load.ask<ReceiptReport>({ cmd: 'report' }, 60_000))));
}

async function closeAll(loads: LoadProcess[]): Promise<void> {
  await Promise.all(loads.map((load) => load.ask({ cmd: 'close' }, 120_000)));
}

/** CPU seconds used so far by the load processes together. */
function loadCpu(loads: LoadProcess[]): number {
  return loads.reduce((sum, load) => sum + readProcessUsage(load.pid).cpuSeconds, 0);
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);

async function idle(): Promise<void> {
  const total = positiveInteger('connections');
  const idleSeconds = positiveInteger('idle-seconds');
  const server = await startServer();
  const loads = Array.from({ length: positiveInteger('load-processes') }, () => new LoadProcess());
  try {
    await sleep(1000);
    const before = readProcessUsage(server.child.pid!);
    const openMs = await openConnections(server, loads, total, Array.from({ length: 1000 }, (_, i) => repoId(i)));
    await sleep(5000);
    const after = readProcessUsage(server.child.pid!);
    const perConnection = (after.rssBytes - before.rssBytes) / total;
    console.log(`idle: ${total} subscribed connections opened in ${(openMs / 1000).toFixed(1)} s`);
    console.log(`  server RSS ${mib(before.rssBytes)} MiB empty -> ${mib(after.rssBytes)} MiB: ${(perConnection / 1024).toFixed(2)} KiB per idle subscribed connection (target <= 8)`);
    const cpuStart = readProcessUsage(server.child.pid!).cpuSeconds;
    const wallStart = performance.now();
    await sleep(idleSeconds * 1000);
    const cpu = readProcessUsage(server.child.pid!).cpuSeconds - cpuStart;
    const wall = (performance.now() - wallStart) / 1000;
    const still = await report(loads);
    console.log(`  idle CPU over ${wall.toFixed(0)} s (server pings every 20 s, dead peers dropped after 50 s): ${(cpu / wall).toFixed(3)} cores (target <= 0.05 at 10,000)`);
    console.log(`  connections still open afterwards: ${still.open} of ${total}`);
    await closeAll(loads);
  } finally {
    for (const load of loads) load.stop();
    await server.stop();
  }
}

async function waitForDelivery(loads: LoadProcess[], expected: number, timeoutMs: number): Promise<ReturnType<typeof merge>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const merged = await report(loads);
    if (merged.messages >= expected || performance.now() > deadline) return merged;
    await sleep(200);
  }
}

async function fanout(): Promise<void> {
  const subscribers = positiveInteger('subscribers');
  const repo = repoId(1);
  const server = await startServer();
  const loads = Array.from({ length: positiveInteger('load-processes') }, () => new LoadProcess());
  const publisher = new Publisher(server.port);
  try {
    await openConnections(server, loads, subscribers, [repo]);
    console.log(`fanout: ${subscribers} subscribers of one library`);
    await measureFanout(server, loads, publisher, repo, subscribers);
    await closeAll(loads);
  } finally {
    publisher.close();
    for (const load of loads) load.stop();
    await server.stop();
  }
}

/**
 * `--events` at `--rate`/s, then `--burst-events` back to back, to the `subscribers` of `repo`
 * (whatever else is connected); prints delivery, order, latency, messages/s and server CPU
 * (all the server's processes: the primary and its workers with --workers).
 */
async function measureFanout(server: ServerProcess, loads: LoadProcess[], publisher: Publisher, repo: string, subscribers: number): Promise<void> {
  const events = positiveInteger('events');
  const rate = positiveInteger('rate');
  const burst = positiveInteger('burst-events');
  for (const load of loads) load.tell({ cmd: 'reset' });

  // Paced: one event every 1000/rate ms, on a schedule that does not drift.
  const started = performance.now();
  for (let seq = 0; seq < events; seq++) {
    const due = started + (seq * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    await publisher.post(repo, seq);
  }
  const paced = await waitForDelivery(loads, events * subscribers, 10_000);
  const latencies = [...paced.perEvent.values()].map(([, latency]) => latency).sort((a, b) => a - b);
  const complete = [...paced.perEvent.values()].filter(([count]) => count === subscribers).length;
  console.log(`  ${events} events at ${rate}/s: delivered ${paced.messages} of ${events * subscribers} messages (${((100 * paced.messages) / (events * subscribers)).toFixed(2)} %), ${complete} of ${events} events reached every subscriber, ${paced.outOfOrder} out of order`);
  console.log(`  last-subscriber latency: p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms, max ${percentile(latencies, 100).toFixed(2)} ms (target p99 <= 20)`);

  // Back to back: each event posted as soon as the previous one is accepted. One request in
  // flight keeps the acceptance order equal to seq, so the order check stays meaningful.
  for (const load of loads) load.tell({ cmd: 'reset' });
  const cpuStart = serverUsage(server).cpuSeconds;
  const burstStart = performance.now();
  for (let seq = 0; seq < burst; seq++) await publisher.post(repo, seq);
  const burstResult = await waitForDelivery(loads, burst * subscribers, 120_000);
  const seconds = (performance.now() - burstStart) / 1000;
  const cpu = serverUsage(server).cpuSeconds - cpuStart;
  console.log(`  back to back: ${burst} events -> ${burstResult.messages} of ${burst * subscribers} messages in ${seconds.toFixed(2)} s: ${Math.round(burstResult.messages / seconds)} messages/s (target >= 100,000), ${burstResult.outOfOrder} out of order`);
  console.log(`  server CPU ${(cpu * 1000).toFixed(0)} ms: ${((cpu * 1000) / (burstResult.messages / 1000)).toFixed(2)} ms per 1,000 messages, HTTP intake included (target <= 5)`);
}

/** The server's process and, with --workers, its workers: /proc/<pid>/task/<pid>/children. */
function serverPids(server: ServerProcess): number[] {
  const pid = server.child.pid!;
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return [pid, ...(children === '' ? [] : children.split(' ').map(Number))];
  } catch {
    return [pid];
  }
}

/** CPU and RSS summed over the server's processes; open files of the fullest one. */
function serverUsage(server: ServerProcess): { cpuSeconds: number; rssBytes: number; maxOpenFiles: number; processes: number } {
  const usages = serverPids(server).map((pid) => readProcessUsage(pid));
  return {
    cpuSeconds: usages.reduce((sum, u) => sum + u.cpuSeconds, 0),
    rssBytes: usages.reduce((sum, u) => sum + u.rssBytes, 0),
    maxOpenFiles: Math.max(...usages.map((u) => u.openFiles)),
    processes: usages.length,
  };
}

/**
 * `--scale-connections` (100,000) subscribed WebSockets over `--workers` (7) worker processes
 * and enough load processes that each holds at most `--connections-per-load-process` (12,500):
 * every process stays under the 20,000 open files this machine allows one. One connection in
 * `--scale-connections / --subscribers` follows the hot library, the rest 1,000 others; the
 * fan-out figures are then measured on the hot library with everything else still connected.
 */
async function scale(): Promise<void> {
  const total = positiveInteger('scale-connections');
  const workers = positiveInteger('workers');
  const wanted = positiveInteger('subscribers');
  const idleSeconds = positiveInteger('idle-seconds');
  const loadCount = Math.max(positiveInteger('load-processes'), Math.ceil(total / positiveInteger('connections-per-load-process')));
  const hotEvery = Math.max(1, Math.floor(total / wanted));
  const hot = repoId(1);
  const repos = [hot, ...Array.from({ length: hotEvery - 1 }, (_, i) => repoId(1000 + (i % 1000)))];
  const subscribers = Array.from({ length: loadCount }, (_, p) => Math.ceil(shareOf(total, loadCount, p) / hotEvery)).reduce((a, b) => a + b, 0);
  const server = await startServer({}, ['--workers', String(workers)]);
  const loads = Array.from({ length: loadCount }, () => new LoadProcess());
  const publisher = new Publisher(server.port);
  try {
    await sleep(1000);
    const before = serverUsage(server);
    console.log(`scale: ${total} subscribed connections, ${workers} workers (${before.processes} server processes with the primary), ${loadCount} load processes`);
    const openMs = await openConnections(server, loads, total, repos, 50);
    await sleep(5000);
    const after = serverUsage(server);
    console.log(`  opened in ${(openMs / 1000).toFixed(1)} s (${Math.round(total / (openMs / 1000))} per second); open files in the fullest server process: ${after.maxOpenFiles} (limit 20,000)`);
    console.log(`  server RSS, all processes: ${mib(before.rssBytes)} MiB empty -> ${mib(after.rssBytes)} MiB: ${((after.rssBytes - before.rssBytes) / total / 1024).toFixed(2)} KiB per idle subscribed connection`);
    const cpuStart = serverUsage(server).cpuSeconds;
    const wallStart = performance.now();
    await sleep(idleSeconds * 1000);
    const cpu = serverUsage(server).cpuSeconds - cpuStart;
    const wall = (performance.now() - wallStart) / 1000;
    console.log(`  idle CPU over ${wall.toFixed(0)} s: ${(cpu / wall).toFixed(3)} cores for ${total} connections`);
    console.log(`  fan-out to the ${subscribers} subscribers of one library among the ${total}:`);
    await measureFanout(server, loads, publisher, hot, subscribers);
    const still = await report(loads);
    console.log(`  connections still open afterwards: ${still.open} of ${total}`);
    await closeAll(loads);
  } finally {
    publisher.close();
    for (const load of loads) load.stop();
    await server.stop();
  }
}

async function churn(): Promise<void> {
  const seconds = positiveInteger('churn-seconds');
  const concurrency = positiveInteger('churn-concurrency');
  const repo = repoId(2);
  const server = await startServer();
  const loads = Array.from({ length: positiveInteger('load-processes') }, () => new LoadProcess());
  const publisher = new Publisher(server.port);
  let publishing = true;
  // Each cycle waits for one event: a steady trickle on the library every 2 ms.
  const ticker = (async () => {
    let seq = 0;
    while (publishing) {
      await publisher.post(repo, seq++);
      await sleep(2);
    }
  })();
  try {
    const cpuStart = readProcessUsage(server.child.pid!).cpuSeconds;
    const loadCpuStart = loadCpu(loads);
    const replies = await Promise.all(
      loads.map((load, p) =>
        load.ask<Extract<LoadReply, { cmd: 'churned' }>>(
          { cmd: 'churn', url: server.wsUrl, repo, key: TEST_KEY, localAddresses: sourceAddresses(p), concurrency: Math.ceil(concurrency / loads.length), durationMs: seconds * 1000 },
          seconds * 1000 + 60_000,
        ),
      ),
    );
    const cpu = readProcessUsage(server.child.pid!).cpuSeconds - cpuStart;
    const loadCpuSeconds = loadCpu(loads) - loadCpuStart;
    const cycles = replies.reduce((sum, r) => sum + r.cycles, 0);
    const failures = replies.reduce((sum, r) => sum + r.failures, 0);
    console.log(`churn: ${concurrency} concurrent loops for ${seconds} s`);
    console.log(`  ${cycles} connect-subscribe-receive-close cycles: ${Math.round(cycles / seconds)} per second (target >= 2,000), ${failures} failures${failures > 0 ? ` (first: ${replies.find((r) => r.firstError !== null)?.firstError})` : ''}`);
    console.log(`  server CPU ${(cpu / seconds).toFixed(2)} cores (${((cpu * 1e6) / cycles).toFixed(0)} µs per cycle); load processes ${(loadCpuSeconds / seconds).toFixed(2)} cores`);
  } finally {
    publishing = false;
    await ticker.catch(() => undefined);
    publisher.close();
    for (const load of loads) load.stop();
    await server.stop();
  }
}

async function main(): Promise<void> {
  const cpu = cpus();
  console.log(`machine: ${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}`);
  console.log('server and load generator share this machine; figures are one run each\n');
  const run: Record<Scenario, () => Promise<void>> = { idle, fanout, churn, scale };
  for (const scenario of scenarios) {
    await run[scenario]();
    console.log('');
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
