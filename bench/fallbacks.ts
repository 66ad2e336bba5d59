/**
 * `npm run bench:fallbacks [-- --events 200 --rate 50]`: the client library over each transport
 * (WebSocket, SSE, long polling) against the built server: how long an event takes from just
 * before its POST to the client's typed event, and whether each arrived once. Prints figures,
 * asserts nothing.
 */
import { cpus, loadavg, release } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { longPollTransport, NotificationClient, sseTransport, webSocketTransport, type TransportFactory } from '#client';
import { ServerProcess, subscriberToken } from '../test/support/server-process.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '200' }, rate: { type: 'string', default: '50' } } });
const events = Number(values.events);
const intervalMs = 1000 / Number(values.rate);
const now = () => performance.timeOrigin + performance.now();

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function measure(server: ServerProcess, transport: TransportFactory): Promise<string> {
  const repo = `bench-${transport.name}`;
  const latencies: number[] = [];
  const seen = new Set<number>();
  let duplicates = 0;
  const client = new NotificationClient({ url: `${server.url}/notification`, transports: [transport], tokenProvider: async (id) => subscriberToken(id, 'bench@example.com') });
  client.on('repoUpdate', (event) => {
    const seq = Number(event['seq']);
    if (seen.has(seq)) duplicates++;
    seen.add(seq);
    latencies.push(now() - Number(event['sent']));
  });
  client.subscribe(repo);
  while (client.positionOf(repo) === undefined) await sleep(10);
  const started = now();
  for (let seq = 0; seq < events; seq++) {
    const due = started + seq * intervalMs;
    if (due > now()) await sleep(due - now());
    await server.publish('repo-update', { repo_id: repo, commit_id: `c${seq}`, seq, sent: now() });
  }
  const deadline = Date.now() + 30_000;
  while (seen.size < events && Date.now() < deadline) await sleep(20);
  client.close();
  const sorted = [...latencies].sort((a, b) => a - b);
  const ms = (value: number) => `${value.toFixed(1)} ms`;
  return `${transport.name.padEnd(10)} received ${seen.size}/${events}, duplicates ${duplicates}; latency p50 ${ms(percentile(sorted, 50))}, p99 ${ms(percentile(sorted, 99))}, max ${ms(sorted.at(-1) ?? NaN)}`;
}

const server = await ServerProcess.start({ env: { NOTIFICATION_SERVER_LOG_LEVEL: 'info' } });
try {
  process.stdout.write(`${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Linux ${release()}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}, Node ${process.version}\n`);
  process.stdout.write(`${events} events at ${values.rate}/s to one client per transport, each from just before its POST to the client's repoUpdate\n`);
  for (const transport of [webSocketTransport(WebSocket), sseTransport(), longPollTransport()]) process.stdout.write(`${await measure(server, transport)}\n`);
} finally {
  await server.stop();
}
