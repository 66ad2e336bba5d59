/** A client of the positions extension (docs/recovery.md) over a real WebSocket. */
import { subscriberToken, type ServerProcess } from './server-process.js';
import { TestClient, type Message } from './test-client.js';

export const POSITIONS_SUBPROTOCOL = 'notification.positions.v1';

export interface WirePosition {
  epoch: string;
  offset: number;
}

/** Opens a positioned connection to `node` and subscribes `repoId`, with `since` if given; resolves once `subscribed` or `resync` arrived. */
export async function positionedClient(
  node: ServerProcess,
  repoId: string,
  since?: WirePosition,
  username = 'alice@example.com',
): Promise<TestClient> {
  const client = await TestClient.connect(node.wsUrl, { protocols: [POSITIONS_SUBPROTOCOL, 'notification.seafile.com'] });
  if (client.socket.protocol !== POSITIONS_SUBPROTOCOL) throw new Error(`the server chose ${JSON.stringify(client.socket.protocol)}`);
  const entry: Record<string, unknown> = { id: repoId, jwt_token: subscriberToken(repoId, username) };
  if (since !== undefined) entry['since'] = since;
  client.send({ type: 'subscribe', content: { repos: [entry] } });
  await client.waitFor((m) => isAnswer(m, repoId), 10_000);
  return client;
}

export function isAnswer(message: Message, repoId: string): boolean {
  return (message.type === 'subscribed' || message.type === 'resync') && message.content['repo_id'] === repoId;
}

/** The position of a message: an event's own, or the one `subscribed`/`resync` names. */
export function positionOf(message: Message): WirePosition | null {
  const own = (message as Message & { position?: WirePosition }).position;
  if (own !== undefined) return own;
  return (message.content['position'] as WirePosition | null | undefined) ?? null;
}

/** The last position the client was given: what it would send back as `since`. */
export function lastPosition(client: TestClient): WirePosition {
  for (let i = client.messages.length - 1; i >= 0; i--) {
    const position = positionOf(client.messages[i]!);
    if (position !== null) return position;
  }
  throw new Error('the client was given no position');
}

/** `commit@offset` for repo-update events, `subscribed@offset`, `resync:<reason>@offset`, in arrival order. */
export function timeline(client: TestClient): string[] {
  return client.messages.map((m) => {
    const at = positionOf(m)?.offset ?? '-';
    if (m.type === 'subscribed') return `subscribed@${at}`;
    if (m.type === 'resync') return `resync:${String(m.content['reason'])}@${at}`;
    return `${String(m.content['commit_id'] ?? m.type)}@${at}`;
  });
}
