/**
 * `npm run soak [-- --minutes N] [--every S]`
 *
 * Runs the built server over loopback for a bounded time under a mix of fan-out (steady
 * subscribers receiving a stream of events), churn (connections that subscribe and leave)
 * and abuse (bad frames, forged tokens, refused subscribes), printing the server's RSS and
 * open files every few seconds, then a verdict on growth measured after a warm-up third.
 * Not part of the test suite.
 */
import { randomBytes } from 'node:crypto';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { RawWebSocket } from '../test/support/raw-websocket.js';
import { ServerProcess, subscriberToken } from '../test/support/server-process.js';
import { TestClient } from '../test/support/test-client.js';
import { readProcessUsage, type ProcessUsage } from './process-usage.js';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '10' }, every: { type: 'string', default: '10' } } });
const minutes = Number(values.minutes);
const everySeconds = Number(values.every);
if (!(minutes > 0) || !(everySeconds > 0)) throw new Error('--minutes and --every must be positive numbers');

const FANOUT_REPO = '50a60000-0000-4000-8000-000000000001';
const FANOUT_SUBSCRIBERS = 200;
const CHURN_CONCURRENCY = 16;

const server = await ServerProcess.start({ env: { NOTIFICATION_SERVER_LOG_LEVEL: 'info' } });
const pid = server.child.pid!;
const endAt = Date.now() + minutes * 60_000;
const running = () => Date.now() < endAt;
const counts = { events: 0, churned: 0, abuses: 0, errors: 0 };

const fanout: TestClient[] = [];
for (let i = 0; i < FANOUT_SUBSCRIBERS; i++) {
  const client = await TestClient.connect(server.wsUrl);
  client.subscribe([{ id: FANOUT_REPO, jwt_token: subscriberToken(FANOUT_REPO, `fan${i}@example.com`) }]);
  fanout.push(client);
}

async function publishLoop(): Promise<void> {
  while (running()) {
    await server.publish('repo-update', { repo_id: FANOUT_REPO, commit_id: `c${counts.events}` });
    counts.events++;
    // Fan-out subscribers keep only a count, so their memory does not grow with the run.
    for (const client of fanout) client.messages.length = 0;
    await sleep(20);
  }
}

async function churnLoop(): Promise<void> {
  while (running()) {
    const id = `50a60000-0000-4000-8000-${randomBytes(6).toString('hex')}`;
    try {
      const client = await TestClient.connect(server.wsUrl);
      client.subscribe([{ id, jwt_token: subscriberToken(id, 'churn@example.com') }]);
      await client.roundTrip(30_000);
      client.close();
      await client.closed;
      counts.churned++;
    } catch {
      counts.errors++;
    }
  }
}

async function abuseLoop(): Promise<void> {
  const forged = subscriberToken(FANOUT_REPO, 'mallory@example.com', { key: 'not the key' });
  while (running()) {
    try {
      const raw = await RawWebSocket.connect(server.port);
      raw.sendFrame(1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
      await raw.closed;
      const binary = await RawWebSocket.connect(server.port);
      binary.sendFrame(2, randomBytes(64));
      await binary.closed;
      const flooder = await TestClient.connect(server.wsUrl);
      for (let i = 0; i < 200 && flooder.socket.readyState === flooder.socket.OPEN; i++) flooder.subscribe([{ id: FANOUT_REPO, jwt_token: forged }]);
      await flooder.closed;
      await server.publish('repo-update', { repo_id: FANOUT_REPO }, { authorization: `Token ${forged}` });
      counts.abuses += 4;
    } catch {
      counts.errors++;
    }
    await sleep(100);
  }
}

const samples: Array<{ atSeconds: number; usage: ProcessUsage }> = [];
const startedAt = Date.now();
function sample(): void {
  const usage = readProcessUsage(pid);
  const atSeconds = Math.round((Date.now() - startedAt) / 1000);
  samples.push({ atSeconds, usage });
  console.log(
    `t=${String(atSeconds).padStart(5)} s  rss=${(usage.rssBytes / 2 ** 20).toFixed(1)} MiB  open files=${usage.openFiles}  ` +
      `events=${counts.events} churned=${counts.churned} abuses=${counts.abuses} errors=${counts.errors}  load=${loadavg()[0]!.toFixed(2)}`,
  );
}

const cpu = cpus();
console.log(`machine: ${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}; load = 1-minute load average of the whole machine`);
console.log(`soak: ${minutes} min on ${server.url} (pid ${pid}), ${FANOUT_SUBSCRIBERS} fan-out subscribers, ${CHURN_CONCURRENCY} churners, 1 abuser`);
sample();
const timer = setInterval(sample, everySeconds * 1000);
await Promise.all([publishLoop(), abuseLoop(), ...Array.from({ length: CHURN_CONCURRENCY }, () => churnLoop())]);
clearInterval(timer);
sample();

const ready = await fetch(`${server.url}/health/ready`);
await ready.arrayBuffer();
for (const client of fanout) client.socket.terminate();
await server.stop();

// The first third warms up (JIT, buffers, heap growth); growth is judged from there on.
const steady = samples.filter((s) => s.atSeconds >= (minutes * 60) / 3);
const first = steady[0] ?? samples[0]!;
const last = samples[samples.length - 1]!;
const rssGrowth = (last.usage.rssBytes - first.usage.rssBytes) / 2 ** 20;
const fileGrowth = last.usage.openFiles - first.usage.openFiles;
// Generous: 20 % of the steady RSS plus 16 MiB, and a handful of descriptors for sockets in flight.
const rssBound = (first.usage.rssBytes / 2 ** 20) * 0.2 + 16;
const bounded = rssGrowth <= rssBound && fileGrowth <= CHURN_CONCURRENCY * 2 + 8;
console.log(
  `verdict: ${bounded ? 'BOUNDED' : 'GROWING'}: from t=${first.atSeconds} s to t=${last.atSeconds} s RSS ${rssGrowth >= 0 ? '+' : ''}${rssGrowth.toFixed(1)} MiB ` +
    `(bound ${rssBound.toFixed(1)} MiB), open files ${fileGrowth >= 0 ? '+' : ''}${fileGrowth}; /health/ready ${ready.status}; ${counts.errors} client errors`,
);
process.exitCode = bounded && ready.status === 200 ? 0 : 1;
