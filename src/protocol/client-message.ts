import { parsePosition, type Position } from '../history/position.js';

/**
 * Messages a subscriber sends (docs/protocol.md). Older servers took unsubscribe ids as plain
 * strings; both forms are accepted.
 */

export interface SubscribeEntry {
  repoId: string;
  /** Null when the entry carried no token: it is refused with `jwt-expired` like any bad token. */
  token: string | null;
  /** The positions extension: absent without `since`; null when `since` is not a position. */
  since?: Position | null;
}

export type ClientMessage =
  | { type: 'subscribe'; entries: SubscribeEntry[]; ignored: number }
  | { type: 'unsubscribe'; repoIds: string[]; ignored: number };

/** A client message we cannot act on; `reason` says what was wrong, for the client and the log. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly failure: 'malformed' | 'unknown-type',
    message: string,
  ) {
    super(message);
  }
}

/** Seafile repo ids are 36-character UUIDs; anything far longer is not one. */
export const MAX_REPO_ID_LENGTH = 255;

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isRepoId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_REPO_ID_LENGTH;
}

function reposOf(content: unknown, type: string): unknown[] {
  if (!isRecord(content) || !Array.isArray(content['repos'])) {
    throw new ProtocolError('malformed', `${type} needs content.repos as an array`);
  }
  return content['repos'];
}

export function parseClientMessage(text: string): ClientMessage {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    throw new ProtocolError('malformed', 'message is not valid JSON');
  }
  if (!isRecord(message) || typeof message['type'] !== 'string') {
    throw new ProtocolError('malformed', 'message must be a JSON object with a string "type"');
  }
  const type = message['type'];
  if (type === 'subscribe') {
    const entries: SubscribeEntry[] = [];
    let ignored = 0;
    for (const repo of reposOf(message['content'], type)) {
      if (!isRecord(repo) || !isRepoId(repo['id'])) {
        ignored++;
        continue;
      }
      const token = repo['jwt_token'];
      const entry: SubscribeEntry = { repoId: repo['id'], token: typeof token === 'string' ? token : null };
      if (repo['since'] !== undefined) entry.since = parsePosition(repo['since']);
      entries.push(entry);
    }
    return { type, entries, ignored };
  }
  if (type === 'unsubscribe') {
    const repoIds: string[] = [];
    let ignored = 0;
    for (const repo of reposOf(message['content'], type)) {
      const id = isRecord(repo) ? repo['id'] : repo;
      if (isRepoId(id)) repoIds.push(id);
      else ignored++;
    }
    return { type, repoIds, ignored };
  }
  throw new ProtocolError('unknown-type', `unknown message type ${JSON.stringify(type.slice(0, 64))}`);
}
