import type { Position } from '../history/position.js';
import { isRecord, MAX_REPO_ID_LENGTH } from './client-message.js';
import { rawMember } from './raw-json.js';
import type { Outgoing } from './outgoing.js';

/** Who among a library's subscribers receives an event. */
export type Audience =
  | { kind: 'library' }
  | { kind: 'user'; username: string }
  | { kind: 'group'; groupId: number };

/** An event accepted from a publisher, encoded once for every subscriber. */
export interface LibraryEvent {
  type: string;
  repoId: string;
  audience: Audience;
  /** The complete WebSocket text frame payload, `{"type":...,"content":<raw content>}`. */
  frame: Buffer;
  /** Given by the backplane; absent when it could not be (Redis was down): the event is in no history. */
  position?: Position;
}

export class EventError extends Error {
  override readonly name = 'EventError';
}

/** `folder-perm-changed` goes to one user, one group, or (neither set) every subscriber. */
function audienceOf(type: string, content: Record<string, unknown>): Audience {
  if (type !== 'folder-perm-changed') return { kind: 'library' };
  const user = content['user'];
  const group = content['group'];
  if (user !== undefined && user !== null && typeof user !== 'string') {
    throw new EventError('folder-perm-changed: content.user must be a string');
  }
  if (typeof user === 'string' && user !== '') return { kind: 'user', username: user };
  if (typeof group !== 'number' || !Number.isSafeInteger(group)) {
    throw new EventError('folder-perm-changed: content.group must be an integer (-1 when the change is for a user)');
  }
  return group === -1 ? { kind: 'library' } : { kind: 'group', groupId: group };
}

/** Parses a publisher's `/events` body. Throws EventError with a message fit for a 400 answer. */
export function parseEvent(body: string): LibraryEvent {
  let message: unknown;
  try {
    message = JSON.parse(body);
  } catch {
    throw new EventError('body is not valid JSON');
  }
  if (!isRecord(message)) throw new EventError('body must be a JSON object');
  const type = message['type'];
  if (typeof type !== 'string' || type === '') throw new EventError('missing "type"');
  const content = message['content'];
  if (!isRecord(content)) throw new EventError('missing "content" object');
  const repoId = content['repo_id'];
  if (typeof repoId !== 'string' || repoId === '' || repoId.length > MAX_REPO_ID_LENGTH) {
    throw new EventError('missing "content.repo_id"');
  }
  const audience = audienceOf(type, content);
  const raw = rawMember(body, 'content') ?? JSON.stringify(content);
  return { type, repoId, audience, frame: Buffer.from(`{"type":${JSON.stringify(type)},"content":${raw}}`) };
}

/** The server's own message telling a client to fetch a new token for a library. */
export function encodeJwtExpired(repoId: string): Outgoing {
  return { kind: 'jwt-expired', repoId, frame: Buffer.from(`{"type":"jwt-expired","content":{"repo_id":${JSON.stringify(repoId)}}}`) };
}

/** Our answer to a client message we did not understand (stock clients never send one). */
export function encodeError(message: string, repoId?: string): Outgoing {
  const content = repoId === undefined ? { message } : { repo_id: repoId, message };
  const frame = Buffer.from(JSON.stringify({ type: 'error', content }));
  return repoId === undefined ? { kind: 'error', frame } : { kind: 'error', repoId, frame };
}
