import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent, get } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { parsePrometheusText, type Scrape } from '../support/prometheus-text.js';
import { postOnNewConnection, ServerProcess } from '../support/server-process.js';
import { subscribedClient } from '../support/cluster.js';
import type { TestClient } from '../support/test-client.js';

const REPO = '7a7a7a7a-2222-4222-8333-000000000002';
const TOKEN = 'admin-token-for-the-workers-test';
const CLIENTS = 6;
const EVENTS = 5;

/** GET over `agent` (false: a connection of its own, which the primary hands to the next worker). */
function fetchText(port: number, path: string, agent: Agent | false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

async function scrapeOver(port: number, agent: Agent | false): Promise<Scrape> {
  const { status, body } = await fetchText(port, '/metrics', agent);
  assert.equal(status, 200, body);
  return parsePrometheusText(body);
}

interface FeedMessage {
  kind: string;
  point?: { connections: number; subscriptions: number; libraries: number };
  tail: Array<{ repoId: string; recipients: number }>;
  busiest: Array<{ repoId: string; events: number; subscribers: number }>;
  workers?: { answered: number; expected: number };
}

/** Reads /status/feed on a connection of its own until `done` holds for a message; returns it. */
function readFeedUntil(port: number, done: (message: FeedMessage) => boolean, timeoutMs = 15_000): Promise<FeedMessage> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/status/feed', agent: false, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      let buffered = '';
      const seen: string[] = [];
      const timer = setTimeout(() => {
        req.destroy();
        reject(new Error(`no feed message matched; last ones: ${seen.slice(-3).join('\n')}`));
      }, timeoutMs);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let end;
        while ((end = buffered.indexOf('\n\n')) >= 0) {
          const data = buffered.slice(0, end).split('\n').find((line) => line.startsWith('data: '));
          buffered = buffered.slice(end + 2);
          if (data === undefined) continue;
          seen.push(data);
          const message = JSON.parse(data.slice('data: '.length)) as FeedMessage;
          if (done(message)) {
            clearTimeout(timer);
            req.destroy();
            resolve(message);
          }
        }
      });
    });
    req.on('error', (err: Error & { code?: string }) => {
      if (err.code !== 'ECONNRESET') reject(err);
    });
  });
}

function workerPids(server: ServerProcess): number[] {
  const pid = server.child.pid!;
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').map(Number);
}

function assertWholeServer(scrape: Scrape, what: string): void {
  assert.equal(scrape.value('notification_connections'), CLIENTS, `${what}: connections of both workers`);
  assert.equal(scrape.value('notification_subscriptions'), CLIENTS, `${what}: subscriptions of both workers`);
  assert.equal(scrape.value('notification_connections_opened_total'), CLIENTS, what);
  assert.equal(scrape.value('notification_messages_sent_total'), CLIENTS * EVENTS, `${what}: deliveries of both workers`);
  assert.equal(scrape.sum('notification_events_accepted_total'), EVENTS, `${what}: events accepted by either worker`);
  assert.equal(scrape.value('notification_events_sequenced_total'), EVENTS, `${what}: the primary's own figure`);
  assert.equal(scrape.value('notification_workers', { state: 'answered' }), 2, what);
  assert.equal(scrape.value('notification_workers', { state: 'missing' }), 0, what);
  assert.equal(scrape.value('notification_backplane_state', { kind: 'memory', state: 'connected' }), 1, `${what}: the primary's backplane`);
  const fdsOf = new Set(scrape.samples.filter((sample) => sample.name === 'process_open_fds').map((sample) => sample.labels['worker']));
  assert.equal(fdsOf.size, 3, `${what}: one process_open_fds per process: ${[...fdsOf].join(', ')}`);
  assert.ok(fdsOf.has('primary'), what);
}

describe('--workers 2: /metrics, /status and /health answer for the whole server', () => {
  let server: ServerProcess;
  const clients: TestClient[] = [];
  before(async () => {
    server = await ServerProcess.start({ args: ['--workers', '2'], env: { NOTIFICATION_SERVER_ADMIN_TOKEN: TOKEN } });
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(await subscribedClient(server, REPO, `user${i}@example.com`));
    }
    await server.waitForLog(() => new Set(server.logs.filter((l) => l.msg === 'websocket connected').map((l) => l['worker'])).size === 2, 5000);
    for (let i = 0; i < EVENTS; i++) assert.equal(await postOnNewConnection(server.port, REPO, `c${i}`), 200);
    for (const client of clients) await client.waitForCount(EVENTS, 10_000);
  });
  after(async () => {
    for (const client of clients) client.socket.terminate();
    await server?.stop();
  });

  it('a scrape on any worker, and repeated over one kept-alive connection, sums both workers and adds the primary', async () => {
    const opened = server.logs.filter((l) => l.msg === 'websocket connected').map((l) => l['worker']);
    assert.deepEqual([...new Set(opened)].sort(), [1, 2], 'the clients are on both workers');
    const keptAlive = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 3; i++) assertWholeServer(await scrapeOver(server.port, keptAlive), `kept-alive scrape ${i + 1}`);
    } finally {
      keptAlive.destroy();
    }
    // Connections of their own go to the workers in turn.
    for (let i = 0; i < 4; i++) assertWholeServer(await scrapeOver(server.port, false), `scrape on new connection ${i + 1}`);
  });

  it('the status page shows both workers\' connections, and every event\'s recipients on both', async () => {
    for (let i = 0; i < 2; i++) {
      const snapshot = await readFeedUntil(server.port, (m) => m.kind === 'snapshot');
      assert.deepEqual(
        snapshot.tail.map((entry) => [entry.repoId, entry.recipients]),
        Array.from({ length: EVENTS }, () => [REPO, CLIENTS]),
        'each event reached the subscribers of both workers',
      );
      assert.deepEqual(snapshot.workers, { answered: 2, expected: 2 });
      const update = await readFeedUntil(server.port, (m) => m.kind === 'update' && m.busiest.length > 0);
      assert.equal(update.point?.connections, CLIENTS);
      assert.equal(update.point?.subscriptions, CLIENTS);
      assert.deepEqual(update.busiest, [{ repoId: REPO, events: EVENTS, subscribers: CLIENTS }]);
      assert.deepEqual(update.workers, { answered: 2, expected: 2 });
    }
    const script = await fetch(`${server.url}/status/app.js`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.match(await script.text(), /data\.workers\.answered \+ ' of '/, 'the page says how many workers answered');
  });

  it('/health/ready is ready on either worker', async () => {
    for (let i = 0; i < 2; i++) {
      const { status, body } = await fetchText(server.port, '/health/ready', false);
      assert.equal(status, 200);
      assert.deepEqual(JSON.parse(body), { status: 'ready' });
    }
  });

  it('a hung worker does not hang the scrape: it is left out and counted missing', async () => {
    const [hung] = workerPids(server);
    process.kill(hung!, 'SIGSTOP');
    try {
      // Four connections of their own, handed out in turn: those on the running worker answer.
      const scrapes = Array.from({ length: 4 }, () => scrapeOver(server.port, false));
      const first = await Promise.any(scrapes);
      assert.equal(first.value('notification_workers', { state: 'answered' }), 1);
      assert.equal(first.value('notification_workers', { state: 'missing' }), 1);
      const connections = first.value('notification_connections');
      assert.ok(connections > 0 && connections < CLIENTS, `the running worker's connections only: ${connections}`);
      process.kill(hung!, 'SIGCONT');
      await Promise.allSettled(scrapes);
    } finally {
      process.kill(hung!, 'SIGCONT');
    }
    assertWholeServer(await scrapeOver(server.port, false), 'after the worker runs again');
  });
});
