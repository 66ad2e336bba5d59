/** The messages the client sends over a WebSocket, in the stock shapes of docs/protocol.md. */

import type { Position } from './events.js';

export function encodeSubscribe(repoId: string, token: string, position?: Position): string {
  const entry: { id: string; jwt_token: string; since?: Position } = { id: repoId, jwt_token: token };
  // The positions extension: only sent once the server handed out a position for the library.
  if (position !== undefined) entry.since = position;
  return JSON.stringify({ type: 'subscribe', content: { repos: [entry] } });
}

export function encodeUnsubscribe(repoId: string): string {
  return JSON.stringify({ type: 'unsubscribe', content: { repos: [{ id: repoId }] } });
}
