/** Several notification nodes sharing one Redis, as behind a load balancer. */
import { setTimeout as sleep } from 'node:timers/promises';
import { ServerProcess, subscriberToken, type LogLine } from './server-process.js';
import { TestClient, type Message } from './test-client.js';

export const isConnectedLine = (line: LogLine): boolean => line.msg.startsWith('backplane: connected to Redis');

/** Starts `count` nodes on `redisUrl` and waits until each has joined. */
export async function startNodes(count: number, redisUrl: string, env: Record<string, string | undefined> = {}): Promise<ServerProcess[]> {
  const nodes = await Promise.all(Array.from({ length: count }, () => ServerProcess.start({ env: { REDIS_URL: redisUrl, ...env } })));
  await Promise.all(nodes.map((node) => node.waitForLog(isConnectedLine, 15_000)));
  return nodes;
}

/** A WebSocket client on `node` subscribed to `repoId`, ready once the server has seen the subscription. */
export async function subscribedClient(node: ServerProcess, repoId: string, username = 'alice@example.com'): Promise<TestClient> {
  const client = await TestClient.connect(node.wsUrl);
  client.subscribe([{ id: repoId, jwt_token: subscriberToken(repoId, username) }]);
  // A client's frames are handled in order, so the pong proves the subscribe was processed.
  await client.roundTrip();
  return client;
}

/** The `commit_id`s of the repo-update events received, in order. */
export function commits(client: TestClient): string[] {
  return client.messages.filter((m: Message) => m.type === 'repo-update').map((m) => String(m.content['commit_id']));
}

/**
 * Publishes a marker on `node` and waits until every client has it: whatever `node` sent them
 * before it has then arrived too (one node's events stay in order), so counts can be asserted.
 */
export async function flushFrom(node: ServerProcess, repoId: string, marker: string, clients: TestClient[], timeoutMs = 15_000): Promise<void> {
  const status = await node.publish('repo-update', { repo_id: repoId, commit_id: marker });
  if (status !== 200) throw new Error(`marker ${marker} refused: ${status}`);
  await Promise.all(clients.map((client) => client.waitFor((m) => m.content['commit_id'] === marker, timeoutMs)));
}

/** A desktop client: every version re-reads its state on connecting; only 9.0.16 and later send a User-Agent. */
export async function desktopClient(node: ServerProcess, repoId: string, userAgent: string | null = 'Seafile/9.0.8 (Linux)'): Promise<TestClient> {
  const headers: Record<string, string> = userAgent === null ? {} : { 'user-agent': userAgent };
  const client = await TestClient.connect(node.wsUrl, { protocols: ['notification.seafile.com'], headers });
  client.subscribe([{ id: repoId, jwt_token: subscriberToken(repoId, 'alice@example.com') }]);
  await client.roundTrip();
  return client;
}

export const isLostLine = (line: LogLine): boolean => line.msg.startsWith('backplane: lost Redis');
export const isBackLine = (line: LogLine): boolean => line.msg.startsWith('backplane: back on Redis');

/** How a stock desktop client is told that it missed events. */
export const REFRESH = { code: 1000, reason: 'missed events: reconnect to refresh' };

/**
 * Posts a `repo-update` for each library to every node in turn, one every 25 ms per library
 * (commits named `<name>-<node>-<i>`), until stopped, and keeps what each node accepted.
 */
export class SteadyPosting {
  /** Per library, per node (its index), the commits the node answered 200 to, in order. */
  readonly posted: Record<string, Record<number, string[]>> = {};
  readonly refused: string[] = [];
  readonly #paused = new Set<string>();
  /** Paused libraries whose loop has no POST on its way. */
  readonly #idle = new Set<string>();
  #posting = true;
  readonly #loops: Array<Promise<void>>;

  /** `names`: each library's id and the name its commits carry. */
  constructor(
    private readonly nodes: readonly ServerProcess[],
    names: Record<string, string>,
  ) {
    this.#loops = Object.entries(names).map(([repoId, name]) => {
      this.posted[repoId] = {};
      return this.#loop(repoId, name);
    });
  }

  async #loop(repoId: string, name: string): Promise<void> {
    for (let i = 0; this.#posting && i < 2_000; i++) {
      if (this.#paused.has(repoId)) {
        this.#idle.add(repoId);
        await sleep(10);
        continue;
      }
      this.#idle.delete(repoId);
      const at = i % this.nodes.length;
      const commit = `${name}-${at}-${i}`;
      const status = await this.nodes[at]!.publish('repo-update', { repo_id: repoId, commit_id: commit });
      if (status === 200) this.accepted(repoId, at, commit);
      else this.refused.push(`${commit}: ${status}`);
      await sleep(25);
    }
  }

  accepted(repoId: string, at: number, commit: string): void {
    (this.posted[repoId]![at] ??= []).push(commit);
  }

  /**
   * Stops posting for `repoIds` and waits until `clientsOf` each has every event posted for it:
   * Redis has numbered them all then, so they are on the primary.
   */
  async pause(repoIds: string[], clientsOf: (repoId: string) => TestClient[], timeoutMs = 10_000): Promise<void> {
    for (const repoId of repoIds) this.#paused.add(repoId);
    const deadline = Date.now() + timeoutMs;
    while (!repoIds.every((repoId) => this.#idle.has(repoId))) {
      if (Date.now() > deadline) throw new Error(`still posting for ${repoIds.join(', ')} after ${timeoutMs} ms`);
      await sleep(10);
    }
    const sent = repoIds.flatMap((repoId) => Object.values(this.posted[repoId]!).flat().map((commit) => [repoId, commit] as const));
    await Promise.all(sent.flatMap(([repoId, commit]) => clientsOf(repoId).map((client) => client.waitFor((m) => m.content['commit_id'] === commit, timeoutMs))));
  }

  resume(): void {
    this.#paused.clear();
  }

  /** Stops every loop; resolves once none has a POST on its way. */
  async stop(): Promise<void> {
    this.#posting = false;
    await Promise.all(this.#loops);
  }
}
