/** The messages the client sends over a WebSocket, in the stock shapes of PROTOCOL.md. */

export function encodeSubscribe(repoId: string, token: string, position?: string): string {
  const entry: { id: string; jwt_token: string; since?: string } = { id: repoId, jwt_token: token };
  // The positions extension: only sent once the server handed out a position for the library.
  if (position !== undefined) entry.since = position;
  return JSON.stringify({ type: 'subscribe', content: { repos: [entry] } });
}

export function encodeUnsubscribe(repoId: string): string {
  return JSON.stringify({ type: 'unsubscribe', content: { repos: [{ id: repoId }] } });
}
