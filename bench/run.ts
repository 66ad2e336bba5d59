/**
 * `npm run bench [-- idle|fanout|churn ...] [--connections N] [--subscribers N] ...`
 *
 * Starts the built server as its own process, drives it from separate load processes over
 * loopback, and prints the figures of issue 4 with the machine they ran on. Every phase is
 * bounded in count and time.
 */
import { Agent, request } from 'node:http';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { signToken } from '../src/auth/jwt.js';
import { backplaneChannel } from '../src/backplane/open-backplane.js';
import { clusterLayout } from '../src/backplane/redis-history.js';
import { CuttableLink } from '../test/support/cuttable-link.js';
import { startRedis, type RedisInstance } from '../test/support/redis.js';
import { startRedisCluster } from '../test/support/redis-cluster.js';
import { startSentinelTopology } from '../test/support/redis-sentinel.js';
import { ServerProcess, subscriberToken, TEST_KEY } from '../test/support/server-process.js';
import type { ClientKind, LoadReply, ParseMode, ReceiptReport } from './load-messages.js';
import { closeAll, LoadProcess, openSubscribers, shareOf, sourceAddresses } from './load-processes.js';
import { readProcessUsage, readRunQueueWait } from './process-usage.js';

const SCENARIOS = ['idle', 'fanout', 'churn', 'cluster', 'gap', 'scale', 'failover'] as const;
/** Run by `npm run bench` with no scenario named: scale takes minutes and most of the machine. */
const DEFAULT_SCENARIOS: Scenario[] = ['idle', 'fanout', 'churn', 'cluster', 'gap'];
type Scenario = (typeof SCENARIOS)[number];

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    connections: { type: 'string', default: '18000' },
    'idle-seconds': { type: 'string', default: '40' },
    subscribers: { type: 'string', default: '1000' },
    events: { type: 'string', default: '200' },
    rate: { type: 'string', default: '50' },
    'warmup-events': { type: 'string', default: '50' },
    'burst-events': { type: 'string', default: '2000' },
    'churn-seconds': { type: 'string', default: '10' },
    'churn-concurrency': { type: 'string', default: '64' },
    'load-processes': { type: 'string', default: '2' },
    'cluster-events': { type: 'string', default: '1000' },
    'cluster-rate': { type: 'string', default: '200' },
    'gap-clients': { type: 'string', default: '1000' },
    'gap-window': { type: 'string', default: '10' },
    'failover-events': { type: 'string', default: '6000' },
    'failover-rate': { type: 'string', default: '150' },
    'failover-libraries': { type: 'string', default: '100' },
    'scale-connections': { type: 'string', default: '100000' },
    workers: { type: 'string', default: '7' },
    'connections-per-load-process': { type: 'string', default: '12500' },
    parse: { type: 'string', default: 'bytes' },
    client: { type: 'string', default: 'lean' },
  },
});

function wholeNumber(name: keyof typeof options, min = 1): number {
  const value = Number(options[name]);
  if (!Number.isInteger(value) || value < min) throw new Error(`--${name} must be a whole number >= ${min}, got ${String(options[name])}`);
  return value;
}

function parseMode(): ParseMode {
  const mode = options.parse;
  if (mode !== 'bytes' && mode !== 'regex') throw new Error(`--parse must be bytes or regex, got ${String(mode)}`);
  return mode;
}

function clientKind(): ClientKind {
  const kind = options.client;
  if (kind !== 'lean' && kind !== 'ws') throw new Error(`--client must be lean or ws, got ${String(kind)}`);
  return kind;
}

const scenarios: Scenario[] = positionals.length === 0 ? [...DEFAULT_SCENARIOS] : positionals.map((name) => {
  if (!(SCENARIOS as readonly string[]).includes(name)) throw new Error(`unknown scenario ${name}: use ${SCENARIOS.join(', ')}`);
  return name as Scenario;
});

const CHURN_SOURCE_ADDRESSES = 8;

/** TCP sockets in TIME_WAIT on this machine (/proc/net/sockstat), or null where it cannot be read. */
function socketsInTimeWait(): number | null {
  try {
    const match = /^TCP:.* tw (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'));
    return match === null ? null : Number(match[1]);
  } catch {
    return null;
  }
}

/** Posts events over a few kept-alive connections, as seaf-server does. */
class Publisher {
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 16 });
  readonly #token = signToken({ exp: Math.floor(Date.now() / 1000) + 6 * 3600 }, Buffer.from(TEST_KEY));

  constructor(readonly port: number) {}

  async post(repo: string, seq: number): Promise<void> {
    const sent = performance.timeOrigin + performance.now();
    const body = `{"type":"repo-update","content":{"repo_id":"${repo}","commit_id":"c${seq}","seq":${seq},"sent":${sent.toFixed(3)}}}`;
    try {
      await this.#send(body);
    } catch (err) {
      // The server closed a kept-alive connection as it was reused (idle past its keep-alive
      // timeout): the request never reached it, so it is sent again, once.
      if (!(err instanceof ResetOnReuse)) throw err;
      await this.#send(body);
    }
  }

  #send(body: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request(
        { agent: this.#agent, host: '127.0.0.1', port: this.port, method: 'POST', path: '/events', headers: { authorization: `Token ${this.#token}`, 'content-length': Buffer.byteLength(body) } },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`POST /events answered ${res.statusCode}`))));
        },
      );
      req.on('error', (err: Error & { code?: string }) => reject(req.reusedSocket && err.code === 'ECONNRESET' ? new ResetOnReuse() : err));
      req.end(body);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

class ResetOnReuse extends Error {}

function repoId(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

interface Merged {
  messages: number;
  outOfOrder: number;
  open: number;
  /** seq → [connections that got it, first arrival anywhere, last arrival anywhere] (ms after `sent`). */
  perEvent: Map<number, [number, number, number]>;
  /** Per event and load process: last minus first arrival there, the time that process took to read its share. */
  spreads: number[];
  reports: ReceiptReport[];
}

function merge(reports: ReceiptReport[]): Merged {
  const perEvent = new Map<number, [number, number, number]>();
  const spreads: number[] = [];
  for (const report of reports) {
    for (const [seq, count, first, last] of report.perEvent) {
      spreads.push(last - first);
      const seen = perEvent.get(seq);
      if (seen === undefined) perEvent.set(seq, [count, first, last]);
      else perEvent.set(seq, [seen[0] + count, Math.min(seen[1], first), Math.max(seen[2], last)]);
    }
  }
  return {
    messages: reports.reduce((sum, r) => sum + r.messages, 0),
    outOfOrder: reports.reduce((sum, r) => sum + r.outOfOrder, 0),
    open: reports.reduce((sum, r) => sum + r.open, 0),
    perEvent,
    spreads,
    reports,
  };
}

function quantiles(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `p50 ${percentile(sorted, 50).toFixed(2)}, p99 ${percentile(sorted, 99).toFixed(2)}, max ${percentile(sorted, 100).toFixed(2)} ms`;
}

/** Pauses in `--trace-gc` lines (BENCH_SERVER_NODE_ARGS=--trace-gc): count, total and longest; null without any. */
function gcPauses(lines: string[]): string | null {
  const pauses: Array<[string, number]> = [];
  for (const line of lines) {
    const match = /ms: (Scavenge|Mark-Compact|Minor Mark-Sweep)[^,]*, ([\d.]+) \/ [\d.]+ ms/.exec(line);
    if (match !== null) pauses.push([match[1]!, Number(match[2])]);
  }
  if (pauses.length === 0) return null;
  const longest = pauses.reduce((a, b) => (b[1] > a[1] ? b : a));
  // Wall-clock pauses: one the kernel descheduled midway includes the wait for a core.
  return `${pauses.length} pauses, ${pauses.reduce((sum, [, ms]) => sum + ms, 0).toFixed(1)} ms in all, longest ${longest[1].toFixed(2)} ms (${longest[0]})`;
}

/** The load average, printed with every latency: the machine is shared with other work. */
function machineLoad(): string {
  return `load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`;
}

/** The server's own histogram of accepted event → frames handed to every socket (Prometheus text). */
async function deliveryHistogram(server: ServerProcess): Promise<Map<number, number>> {
  const body = await new Promise<string>((resolve, reject) => {
    request({ host: '127.0.0.1', port: server.port, path: '/metrics' }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve(text));
    }).on('error', reject).end();
  });
  const buckets = new Map<number, number>();
  for (const match of body.matchAll(/^notification_delivery_latency_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\d+)/gm)) {
    const le = match[1] === '+Inf' ? Infinity : Number(match[1]);
    buckets.set(le, (buckets.get(le) ?? 0) + Number(match[2]));
  }
  return buckets;
}

/** The bucket bound under which p of the events observed between two scrapes fell. */
function histogramPercentile(before: Map<number, number>, after: Map<number, number>, p: number): string {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  if (total === 0) return 'none observed';
  for (const le of bounds) {
    if ((after.get(le)! - (before.get(le) ?? 0)) / total >= p / 100) return le === Infinity ? '> 1 s' : `<= ${(le * 1000).toFixed(le < 0.001 ? 2 : 1)} ms`;
  }
  return '?';
}

async function startServer(env: Record<string, string> = {}, args: string[] = []): Promise<ServerProcess> {
  // e.g. BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=prof" to profile the server.
  const nodeArgs = process.env['BENCH_SERVER_NODE_ARGS']?.split(' ').filter((arg) => arg !== '') ?? [];
  // Another build's bin/notification-server.js, to compare two versions under the same driver.
  const bin = process.env['BENCH_SERVER_BIN'];
  return ServerProcess.start({ env: { NOTIFICATION_SERVER_LOG_LEVEL: 'info', ...env }, nodeArgs, args, ...(bin === undefined ? {} : { bin }) });
}

function openConnections(server: ServerProcess, loads: LoadProcess[], total: number, repos: string[], concurrency = 100): Promise<number> {
  return openSubscribers(server.wsUrl, loads, total, repos, { key: TEST_KEY, client: clientKind(), concurrency });
}

async function report(loads: LoadProcess[]): Promise<Merged> {
  return merge(await Promise.all(loads.map((load) => load.ask<ReceiptReport>({ cmd: 'report' }, 60_000))));
}

/** CPU seconds used so far by the load processes together. */
function loadCpu(loads: LoadProcess[]): number {
  return loads.reduce((sum, load) => sum + readProcessUsage(load.pid).cpuSeconds, 0);
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);

async function idle(): Promise<void> {
  const total = wholeNumber('connections');
  const idleSeconds = wholeNumber('idle-seconds');
  const server = await startServer();
  const loads = Array.from({ length: wholeNumber('load-processes') }, () => new LoadProcess());
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

async function waitForDelivery(loads: LoadProcess[], expected: number, timeoutMs: number): Promise<Merged> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const merged = await report(loads);
    if (merged.messages >= expected || performance.now() > deadline) return merged;
    await sleep(200);
  }
}

async function fanout(): Promise<void> {
  const subscribers = wholeNumber('subscribers');
  const repo = repoId(1);
  const server = await startServer();
  const loads = Array.from({ length: wholeNumber('load-processes') }, () => new LoadProcess());
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
/** Posts `events` events (seq 0 up) one every 1000/rate ms, on a schedule that does not drift. */
async function postPaced(publisher: Publisher, repo: string, events: number, rate: number): Promise<void> {
  const started = performance.now();
  for (let seq = 0; seq < events; seq++) {
    const due = started + (seq * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    await publisher.post(repo, seq);
  }
}

async function measureFanout(server: ServerProcess, loads: LoadProcess[], publisher: Publisher, repo: string, subscribers: number): Promise<void> {
  const events = wholeNumber('events');
  const rate = wholeNumber('rate');
  const burst = wholeNumber('burst-events');
  const parse = parseMode();
  const warmup = wholeNumber('warmup-events', 0);
  if (warmup > 0) {
    // The first events meet cold code (JIT) in the server and in the load processes: they are
    // measured apart, so the paced figures are the steady state a running server is in.
    for (const load of loads) load.tell({ cmd: 'reset', parse });
    await postPaced(publisher, repo, warmup, rate);
    const cold = (await waitForDelivery(loads, warmup * subscribers, 10_000)).perEvent;
    const of = (which: 1 | 2): string => {
      const sorted = [...cold.values()].map((seen) => seen[which]).sort((a, b) => a - b);
      return `p50 ${percentile(sorted, 50).toFixed(2)}, p99 ${percentile(sorted, 99).toFixed(2)}, max ${percentile(sorted, 100).toFixed(2)} ms`;
    };
    console.log(`  warm-up, ${warmup} events at ${rate}/s (not counted below): last-subscriber ${of(2)}; first-subscriber ${of(1)}`);
  }
  for (const load of loads) load.tell({ cmd: 'reset', parse });

  const histogramBefore = await deliveryHistogram(server);
  const pacedCpuStart = serverUsage(server).cpuSeconds;
  const waitStart = runQueueWait(server, loads);
  const logStart = server.logs.length;
  const started = performance.now();
  await postPaced(publisher, repo, events, rate);
  const paced = await waitForDelivery(loads, events * subscribers, 10_000);
  const pacedSeconds = (performance.now() - started) / 1000;
  const pacedCpu = serverUsage(server).cpuSeconds - pacedCpuStart;
  const waited = runQueueWait(server, loads);
  const histogramAfter = await deliveryHistogram(server);
  const perEvent = [...paced.perEvent.values()];
  const latencies = perEvent.map(([, , last]) => last).sort((a, b) => a - b);
  const complete = perEvent.filter(([count]) => count === subscribers).length;
  console.log(`  ${events} events at ${rate}/s: delivered ${paced.messages} of ${events * subscribers} messages (${((100 * paced.messages) / (events * subscribers)).toFixed(2)} %), ${complete} of ${events} events reached every subscriber, ${paced.outOfOrder} out of order`);
  console.log(`  last-subscriber latency: p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms, max ${percentile(latencies, 100).toFixed(2)} ms (target p99 <= 20); ${machineLoad()}`);
  // Where the time goes: the first subscriber's arrival (HTTP intake, the server's first write,
  // loopback), the server's own accept -> last write, and how long each load process took to
  // read its share of one event, against how late its event loop was.
  console.log(`    first-subscriber latency: ${quantiles(perEvent.map(([, first]) => first))}`);
  // With --workers, /metrics sums the workers' histograms: one observation per event per worker.
  const whose = serverPids(server).length > 1 ? 'its workers\' histograms, summed' : 'its histogram';
  console.log(`    server, accepted -> frame handed to every socket (${whose}): p50 ${histogramPercentile(histogramBefore, histogramAfter, 50)}, p99 ${histogramPercentile(histogramBefore, histogramAfter, 99)}; server CPU ${(pacedCpu / pacedSeconds).toFixed(2)} cores`);
  console.log(`    per load process, last minus first arrival of an event: ${quantiles(paced.spreads)}`);
  const gc = gcPauses(server.logs.slice(logStart).map((line) => line.msg));
  if (gc !== null) console.log(`    server GC (--trace-gc): ${gc}`);
  console.log(`    waiting for a core (run queue), per event: server ${((1000 * (waited.server - waitStart.server)) / events).toFixed(2)} ms${serverPids(server).length > 1 ? ` (its ${serverPids(server).length} processes together)` : ''}, load processes ${((1000 * (waited.loads - waitStart.loads)) / events / loads.length).toFixed(2)} ms each`);
  console.log(`    ${loads.length} load processes (parse: ${parse}): ${paced.reports.map((r) => `${(r.cpuMs / r.wallMs).toFixed(2)} cores, loop delay p99 ${r.loopDelayP99Ms.toFixed(1)} max ${r.loopDelayMaxMs.toFixed(1)} ms`).join('; ')}`);

  // Back to back: each event posted as soon as the previous one is accepted. One request in
  // flight keeps the acceptance order equal to seq, so the order check stays meaningful.
  for (const load of loads) load.tell({ cmd: 'reset', parse });
  const cpuStart = serverUsage(server).cpuSeconds;
  const perProcessStart = new Map(serverPids(server).map((pid) => [pid, readProcessUsage(pid).cpuSeconds]));
  const burstStart = performance.now();
  for (let seq = 0; seq < burst; seq++) await publisher.post(repo, seq);
  const burstResult = await waitForDelivery(loads, burst * subscribers, 120_000);
  const seconds = (performance.now() - burstStart) / 1000;
  const cpu = serverUsage(server).cpuSeconds - cpuStart;
  const perProcess = [...perProcessStart].map(([pid, start]) => `${((readProcessUsage(pid).cpuSeconds - start) * 1000).toFixed(0)}`);
  console.log(`  back to back: ${burst} events -> ${burstResult.messages} of ${burst * subscribers} messages in ${seconds.toFixed(2)} s: ${Math.round(burstResult.messages / seconds)} messages/s (target >= 100,000), ${burstResult.outOfOrder} out of order`);
  console.log(`  server CPU ${(cpu * 1000).toFixed(0)} ms: ${((cpu * 1000) / (burstResult.messages / 1000)).toFixed(2)} ms per 1,000 messages, HTTP intake included (target <= 5); load processes ${burstResult.reports.map((r) => `${(r.cpuMs / r.wallMs).toFixed(2)}`).join(', ')} cores; ${machineLoad()}`);
  if (perProcess.length > 1) console.log(`    server CPU by process, ms: primary ${perProcess[0]}, workers ${perProcess.slice(1).join(', ')}`);
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

/** Seconds the server's and the load processes' JavaScript threads have waited for a core, summed. */
function runQueueWait(server: ServerProcess, loads: LoadProcess[]): { server: number; loads: number } {
  return {
    server: serverPids(server).reduce((sum, pid) => sum + readRunQueueWait(pid), 0),
    loads: loads.reduce((sum, load) => sum + readRunQueueWait(load.pid), 0),
  };
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
 * every process stays under an open-files limit of 20,000. One connection in
 * `--scale-connections / --subscribers` follows the hot library, the rest 1,000 others; the
 * fan-out figures are then measured on the hot library with everything else still connected.
 */
async function scale(): Promise<void> {
  const total = wholeNumber('scale-connections');
  const workers = wholeNumber('workers');
  const wanted = wholeNumber('subscribers');
  const idleSeconds = wholeNumber('idle-seconds');
  const loadCount = Math.max(wholeNumber('load-processes'), Math.ceil(total / wholeNumber('connections-per-load-process')));
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
  const seconds = wholeNumber('churn-seconds');
  const concurrency = wholeNumber('churn-concurrency');
  const repo = repoId(2);
  const server = await startServer();
  const loads = Array.from({ length: wholeNumber('load-processes') }, () => new LoadProcess());
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
    const timeWaitAtStart = socketsInTimeWait();
    const replies = await Promise.all(
      loads.map((load, p) =>
        load.ask<Extract<LoadReply, { cmd: 'churned' }>>(
          // 8 source addresses each: a run leaves ~25,000 connections in TIME_WAIT for 60 s, and
          // with 2 a second run soon after spent the load processes' CPU looking for free ports.
          { cmd: 'churn', url: server.wsUrl, repo, key: TEST_KEY, localAddresses: sourceAddresses(p, CHURN_SOURCE_ADDRESSES), concurrency: Math.ceil(concurrency / loads.length), durationMs: seconds * 1000, client: clientKind() },
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
    console.log(`  server CPU ${(cpu / seconds).toFixed(2)} cores (${((cpu * 1e6) / cycles).toFixed(0)} µs per cycle); load processes ${(loadCpuSeconds / seconds).toFixed(2)} cores; TCP sockets in TIME_WAIT at the start ${timeWaitAtStart ?? 'unknown'}`);
  } finally {
    publishing = false;
    await ticker.catch(() => undefined);
    publisher.close();
    for (const load of loads) load.stop();
    await server.stop();
  }
}

/** Three nodes on a throwaway Redis, each logging at info, all joined. */
async function startCluster(redisUrl: string, count: number, env: Record<string, string> = {}): Promise<ServerProcess[]> {
  const nodes = await Promise.all(Array.from({ length: count }, () => startServer({ REDIS_URL: redisUrl, ...env })));
  await Promise.all(nodes.map((node) => node.waitForLog((line) => line.msg.startsWith('backplane: connected to Redis'), 15_000)));
  return nodes;
}

/** A subscriber in this process recording, per `seq`, the arrival time minus the `sent` stamp. */
async function latencyProbe(url: string, repo: string): Promise<{ latencies: Map<number, number>; socket: WebSocket }> {
  const latencies = new Map<number, number>();
  const socket = new WebSocket(url, ['notification.seafile.com']);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  socket.on('message', (data) => {
    const now = performance.timeOrigin + performance.now();
    const { content } = JSON.parse(data.toString()) as { content: { seq?: number; sent?: number } };
    if (typeof content.seq === 'number' && typeof content.sent === 'number' && !latencies.has(content.seq)) latencies.set(content.seq, now - content.sent);
  });
  socket.send(JSON.stringify({ type: 'subscribe', content: { repos: [{ id: repo, jwt_token: subscriberToken(repo, 'bench@example.com') }] } }));
  await new Promise<void>((resolve) => {
    socket.ping();
    socket.once('pong', () => resolve());
  });
  return { latencies, socket };
}

function describeLatencies(label: string, latencies: Map<number, number>, expected: number): string {
  const sorted = [...latencies.values()].sort((a, b) => a - b);
  return `  ${label}: ${latencies.size} of ${expected} events, p50 ${percentile(sorted, 50).toFixed(2)} ms, p99 ${percentile(sorted, 99).toFixed(2)} ms, max ${percentile(sorted, 100).toFixed(2)} ms`;
}

async function cluster(): Promise<void> {
  const events = wholeNumber('cluster-events');
  const rate = wholeNumber('cluster-rate');
  const repo = repoId(3);
  let redis: RedisInstance | null = null;
  let nodes: ServerProcess[] = [];
  const sockets: WebSocket[] = [];
  try {
    redis = await startRedis();
    nodes = await startCluster(redis.url, 3);
    const [a, b, c] = nodes as [ServerProcess, ServerProcess, ServerProcess];
    const onA = await latencyProbe(a.wsUrl, repo);
    const onB = await latencyProbe(b.wsUrl, repo);
    const onC = await latencyProbe(c.wsUrl, repo);
    sockets.push(onA.socket, onB.socket, onC.socket);
    const publisher = new Publisher(a.port);
    const started = performance.now();
    for (let seq = 0; seq < events; seq++) {
      const wait = started + (seq * 1000) / rate - performance.now();
      if (wait > 0) await sleep(wait);
      await publisher.post(repo, seq);
    }
    const deadline = performance.now() + 10_000;
    while ([onA, onB, onC].some((probe) => probe.latencies.size < events) && performance.now() < deadline) await sleep(50);
    publisher.close();
    console.log(`cluster: 3 nodes on one Redis ${redis.url.replace(/\/$/, '')} (redis-server on this machine), ${events} events at ${rate}/s posted to node A`);
    console.log(describeLatencies('node A (where it was posted; through the Redis script and back)', onA.latencies, events));
    console.log(describeLatencies('node B (another node)', onB.latencies, events));
    console.log(describeLatencies('node C (another node)', onC.latencies, events));
    console.log('  latency: from just before the POST to the arrival at a WebSocket client of that node');
  } finally {
    for (const socket of sockets) socket.terminate();
    await Promise.all(nodes.map((node) => node.stop()));
    await redis?.stop();
  }
}

/**
 * Stock desktop clients after a known gap: node A is cut off from Redis for a few seconds
 * while node B accepts an event for every library; when A is back, its desktop clients of
 * those libraries are closed with 1000 over gap_refresh_window and come back 60 s later
 * (the desktop client's own pause), re-reading their lock and permission state.
 */
async function gap(): Promise<void> {
  const clients = wholeNumber('gap-clients');
  const windowS = wholeNumber('gap-window');
  const libraries = Array.from({ length: 100 }, (_, i) => repoId(1000 + i));
  let redis: RedisInstance | null = null;
  let link: CuttableLink | null = null;
  let nodes: ServerProcess[] = [];
  const sockets: WebSocket[] = [];
  try {
    redis = await startRedis();
    link = await CuttableLink.open(redis.port);
    const env = { NOTIFICATION_SERVER_GAP_REFRESH_WINDOW: String(windowS), NOTIFICATION_SERVER_REDIS_TIMEOUT: '1' };
    nodes = [...(await startCluster(`redis://127.0.0.1:${link.port}/`, 1, env)), ...(await startCluster(redis.url, 1, env))];
    const [a, b] = nodes as [ServerProcess, ServerProcess];
    const changed = new Set(libraries.slice(0, libraries.length / 2));
    const closedAt: number[] = [];
    let unchangedClosed = 0;
    let changedClients = 0;
    for (let i = 0; i < clients; i++) {
      const repo = libraries[i % libraries.length]!;
      if (changed.has(repo)) changedClients++;
      const socket = new WebSocket(a.wsUrl, ['notification.seafile.com'], { headers: { 'user-agent': 'Seafile/9.0.8 (Linux)' } });
      await new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      });
      socket.on('close', (code) => {
        if (code !== 1000) return;
        if (changed.has(repo)) closedAt.push(performance.now());
        else unchangedClosed++;
      });
      socket.send(JSON.stringify({ type: 'subscribe', content: { repos: [{ id: repo, jwt_token: subscriberToken(repo, `user${i}@example.com`) }] } }));
      sockets.push(socket);
    }
    await sleep(500);
    link.cut();
    await a.waitForLog((line) => line.msg.startsWith('backplane: lost Redis'), 15_000);
    const publisher = new Publisher(b.port);
    for (const [seq, repo] of [...changed].entries()) await publisher.post(repo, seq);
    publisher.close();
    await sleep(2000);
    link.restore();
    await a.waitForLog((line) => line.msg.startsWith('backplane: back on Redis'), 20_000);
    const backAt = performance.now();
    await sleep(windowS * 1000 + 2000);
    const after = closedAt.map((t) => (t - backAt) / 1000).sort((x, y) => x - y);
    console.log(`gap: ${clients} desktop clients on node A over ${libraries.length} libraries; A cut off from Redis while B accepted one event for each of ${changed.size} of them`);
    console.log(`  after A is back: ${after.length} of the ${changedClients} clients of the libraries that changed closed with 1000, the first after ${percentile(after, 0.001).toFixed(2)} s, half after ${percentile(after, 50).toFixed(2)} s, the last after ${percentile(after, 100).toFixed(2)} s (gap_refresh_window ${windowS} s); ${unchangedClosed} of the ${clients - changedClients} others`);
    console.log(`  each comes back 60 s after its close (the desktop client's pause) and re-reads lock and permission state: right again ${(60 + percentile(after, 0.001)).toFixed(0)}-${(60 + percentile(after, 100)).toFixed(0)} s after A is back; left connected, not until its next reconnect`);
  } finally {
    for (const socket of sockets) socket.terminate();
    await Promise.all(nodes.map((node) => node.stop()));
    await link?.close();
    await redis?.stop();
  }
}

/** A WebSocket on one node subscribed to many libraries, recording each event's arrival time (epoch ms) by `seq`. */
async function arrivalProbe(url: string, repos: string[]): Promise<{ arrivals: Map<number, { sent: number; at: number }>; socket: WebSocket }> {
  const arrivals = new Map<number, { sent: number; at: number }>();
  const socket = new WebSocket(url, ['notification.seafile.com']);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  // A reset shows as missing arrivals in the figures, not as a crash of the bench.
  socket.on('error', () => {});
  socket.on('message', (data) => {
    const at = performance.timeOrigin + performance.now();
    const { content } = JSON.parse(data.toString()) as { content: { seq?: number; sent?: number } };
    if (typeof content.seq === 'number' && typeof content.sent === 'number' && !arrivals.has(content.seq)) arrivals.set(content.seq, { sent: content.sent, at });
  });
  const entries = repos.map((id) => ({ id, jwt_token: subscriberToken(id, 'bench@example.com') }));
  socket.send(JSON.stringify({ type: 'subscribe', content: { repos: entries } }));
  await new Promise<void>((resolve) => {
    socket.ping();
    socket.once('pong', () => resolve());
  });
  return { arrivals, socket };
}

/** A Redis topology the failover bench runs on, and which primary it kills. */
interface FailoverTopology {
  url: string;
  primaryPids: readonly number[];
  killPrimary(): Promise<void>;
  stop(): Promise<void>;
}

/** The failover bench on one Redis primary with Sentinel, then on a Redis Cluster of three. */
async function failover(): Promise<void> {
  const libraries = Array.from({ length: wholeNumber('failover-libraries') }, (_, i) => repoId(1000 + i));
  await failoverOn('Redis with Sentinel (1 primary, 1 replica, 3 sentinels, down-after 600 ms)', libraries, async () => {
    const topology = await startSentinelTopology();
    return { url: topology.url, primaryPids: [topology.primaryPid], killPrimary: () => topology.killPrimary(), stop: () => topology.stop() };
  });
  console.log('');
  await failoverOn('Redis Cluster (3 primaries with a replica each, node timeout 1.5 s); every node subscribed to every lane', libraries, async () => {
    const topology = await startRedisCluster();
    const layout = clusterLayout(backplaneChannel(Buffer.from(TEST_KEY)).replace(/^.*:events:/, ''));
    // The shard of the first library: about a third of them.
    const shard = await topology.shardOf(layout.channel(layout.laneOf(libraries[0]!)));
    return { url: topology.url, primaryPids: topology.primaryPids, killPrimary: () => topology.killPrimary(shard.primaryPort), stop: () => topology.stop() };
  });
}

/**
 * Three nodes on `start`'s Redis: the events per second its primaries take and what each costs
 * them, then a steady stream across the nodes while a primary is SIGKILLed: delivery p99 in the
 * steady state and in the failover window, and how long clients saw nothing.
 */
async function failoverOn(label: string, libraries: string[], start: () => Promise<FailoverTopology>): Promise<void> {
  const events = wholeNumber('failover-events');
  const rate = wholeNumber('failover-rate');
  let topology: FailoverTopology | null = null;
  let nodes: ServerProcess[] = [];
  const sockets: WebSocket[] = [];
  const primariesCpu = (): number => topology!.primaryPids.reduce((sum, pid) => sum + readProcessUsage(pid).cpuSeconds, 0);
  try {
    topology = await start();
    nodes = await startCluster(topology.url, 3, { NOTIFICATION_SERVER_REDIS_FAILOVER_HOLD: '30' });
    const probes = await Promise.all(nodes.map((node) => arrivalProbe(node.wsUrl, libraries)));
    sockets.push(...probes.map((probe) => probe.socket));
    const publishers = nodes.map((node) => new Publisher(node.port));
    console.log(`failover: ${label} under 3 nodes, ${libraries.length} libraries, one client per node subscribed to all`);

    // Throughput: as fast as 48 POSTs in flight (16 per node) go.
    const redisBefore = primariesCpu();
    const nodesBefore = nodes.reduce((sum, node) => sum + readProcessUsage(node.child.pid!).cpuSeconds, 0);
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 48 }, async (_, lane) => {
        for (let seq = next++; seq < events; seq = next++) await publishers[lane % 3]!.post(libraries[seq % libraries.length]!, seq);
      }),
    );
    const deadline = performance.now() + 30_000;
    while (probes.some((probe) => probe.arrivals.size < events) && performance.now() < deadline) await sleep(20);
    const seconds = (performance.now() - started) / 1000;
    const redisCpu = primariesCpu() - redisBefore;
    const nodesCpu = nodes.reduce((sum, node) => sum + readProcessUsage(node.child.pid!).cpuSeconds, 0) - nodesBefore;
    const delivered = Math.min(...probes.map((probe) => probe.arrivals.size));
    console.log(`  throughput: ${events} events posted to 3 nodes, all on every node after ${seconds.toFixed(2)} s: ${Math.round(events / seconds)} events/s (${delivered} of ${events} on the slowest node)`);
    console.log(`  Redis primaries' CPU ${((redisCpu * 1e6) / events).toFixed(0)} µs per event in all (${(redisCpu / seconds).toFixed(2)} cores: one core takes ~${Math.round(events / redisCpu)} events/s); the 3 nodes ${((nodesCpu * 1e6) / events).toFixed(0)} µs per event in all (HTTP, script call, fan-out to 3 probes)`);
    for (const probe of probes) probe.arrivals.clear();

    // The failover: a steady stream over the nodes and libraries; the primary killed after 3 s.
    const total = rate * 14;
    const base = events;
    const killAfterMs = 3_000;
    const streamStart = performance.now();
    let killedAt = 0;
    let backAt = 0;
    const killer = (async () => {
      await sleep(killAfterMs);
      killedAt = performance.timeOrigin + performance.now();
      await topology!.killPrimary();
      await Promise.all(nodes.map((node) => node.waitForLog((line) => line.msg.startsWith('backplane: back on Redis'), 30_000)));
      backAt = performance.timeOrigin + performance.now();
    })();
    const posts: Array<Promise<void>> = [];
    for (let i = 0; i < total; i++) {
      const wait = streamStart + (i * 1000) / rate - performance.now();
      if (wait > 0) await sleep(wait);
      posts.push(publishers[i % 3]!.post(libraries[i % libraries.length]!, base + i));
    }
    await Promise.all(posts);
    await killer;
    const end = performance.now() + 15_000;
    while (probes.some((probe) => probe.arrivals.size < total) && performance.now() < end) await sleep(50);
    for (const publisher of publishers) publisher.close();
    const steady: number[] = [];
    const window: number[] = [];
    let silentMs = 0;
    for (const probe of probes) {
      const arrivals = [...probe.arrivals.values()];
      for (const { sent, at } of arrivals) {
        if (sent < killedAt - 100 && sent > killedAt - killAfterMs + 1_000) steady.push(at - sent);
        else if (sent >= killedAt - 100 && sent <= backAt) window.push(at - sent);
        else if (sent > backAt + 1_000) steady.push(at - sent);
      }
      const times = arrivals.map((a) => a.at).sort((x, y) => x - y);
      for (let i = 1; i < times.length; i++) if (times[i]! > killedAt - 1_000) silentMs = Math.max(silentMs, times[i]! - times[i - 1]!);
    }
    steady.sort((x, y) => x - y);
    window.sort((x, y) => x - y);
    const received = probes.map((probe) => probe.arrivals.size);
    console.log(`  failover: ${total} events at ${rate}/s over 3 nodes, a primary SIGKILLed after ${killAfterMs / 1000} s; every node back on the promoted replica ${((backAt - killedAt) / 1000).toFixed(2)} s after the kill`);
    console.log(`  delivered per node: ${received.join(', ')} of ${total}`);
    console.log(`  delivery p99: steady ${percentile(steady, 99).toFixed(1)} ms (p50 ${percentile(steady, 50).toFixed(1)}, ${steady.length} deliveries); events posted in the failover window ${percentile(window, 99).toFixed(0)} ms (p50 ${percentile(window, 50).toFixed(0)}, max ${percentile(window, 100).toFixed(0)}, ${window.length} deliveries)`);
    console.log(`  clients saw nothing for ${(silentMs / 1000).toFixed(2)} s at most (the longest pause between two arrivals on any node, events being posted every ${(1000 / rate).toFixed(1)} ms)`);
  } finally {
    for (const socket of sockets) socket.terminate();
    await Promise.all(nodes.map((node) => node.stop()));
    await topology?.stop();
  }
}

async function main(): Promise<void> {
  const cpu = cpus();
  console.log(`machine: ${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}`);
  console.log('server and load generator share this machine; figures are one run each\n');
  const run: Record<Scenario, () => Promise<void>> = { idle, fanout, churn, cluster, gap, scale, failover };
  for (const scenario of scenarios) {
    await run[scenario]();
    console.log('');
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
