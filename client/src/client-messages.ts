/** The messages the client sends, in the stock shapes of PROTOCOL.md. */

export function encodeSubscribe(repoId: string, token: string, position?: string): string {
  const entry: { id: string; jwt_token: string; since?: string } = { id: repoId, jwt_token: token };
  // Reserved for the server's event history: a position is only sent once the server hands them out.
  if (position !== undefined) entry.since = position;
  return JSON.stringify({ type: 'subscribe', content: { repos: [entry] } });
}

export function encodeUnsubscribe(repoId: string): string {
  return JSON.stringify({ type: 'unsubscribe', content: { repos: [{ id: repoId }] } });
}
