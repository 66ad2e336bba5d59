/**
 * The server's messages, typed after the event table of docs/protocol.md. Field names are the
 * wire's (snake_case); fields the table does not name are kept as the publisher sent them.
 */

/** Every server message: `{"type": ..., "content": {...}}`. */
export interface ServerMessage {
  type: string;
  content: Record<string, unknown>;
  /** Where a library event stands in its library's history, on connections that asked for positions. */
  position?: Position;
}

/** An event's place in its library's history: `offset` counts up without gaps within an `epoch`. */
export interface Position {
  epoch: string;
  offset: number;
}

/** `resync`: what the client missed cannot be replayed (history lost or too old); re-read the library's state. */
export interface Resync {
  repo_id: string;
  /** Why, as the server says: `epoch-changed`, `history-gone`, `unknown-position`, `history-unavailable`, `too-far-behind`. */
  reason: string;
  /** Where the client continues from; null when the server cannot tell yet. */
  position: Position | null;
}

interface LibraryContent {
  repo_id: string;
  /** Fields a newer publisher adds (the web UI reads `expire` from file-lock-changed). */
  [field: string]: unknown;
}

/** `repo-update`: a library has a new head commit. */
export interface RepoUpdate extends LibraryContent {
  commit_id: string;
}

/** `file-lock-changed`: a file was locked or unlocked. */
export interface FileLockChanged extends LibraryContent {
  path: string;
  change_event: 'locked' | 'unlocked';
  lock_user: string;
}

/** `folder-perm-changed`: a folder permission of a user or group was added, changed or removed. */
export interface FolderPermChanged extends LibraryContent {
  path: string;
  type: 'user' | 'group';
  change_event: 'add' | 'modify' | 'del';
  user: string;
  /** `-1` when the change is not for a group. */
  group: number;
  perm: 'r' | 'rw';
}

/** `comment-update`: a file's comments changed. */
export interface CommentUpdate extends LibraryContent {
  type: string;
  file_uuid: string;
  file_path: string;
}

/** The client's event names for the server's library events. */
export interface LibraryEvents {
  repoUpdate: RepoUpdate;
  fileLockChanged: FileLockChanged;
  folderPermChanged: FolderPermChanged;
  commentUpdate: CommentUpdate;
}

export type LibraryEventName = keyof LibraryEvents;

/** A library event ready to dispatch, or why a message is not one. */
export type ParsedEvent =
  | { [N in LibraryEventName]: { kind: 'library'; name: N; content: LibraryEvents[N] } }[LibraryEventName]
  | { kind: 'jwt-expired'; repoId: string }
  | { kind: 'subscribed'; repoId: string; position: Position }
  | { kind: 'resync'; repoId: string; reason: string; position: Position | null }
  | { kind: 'other' }
  | { kind: 'malformed'; reason: string };

const WIRE_NAMES: Record<string, LibraryEventName> = {
  'repo-update': 'repoUpdate',
  'file-lock-changed': 'fileLockChanged',
  'folder-perm-changed': 'folderPermChanged',
  'comment-update': 'commentUpdate',
};

/** Parses one text frame; never throws. */
export function parseServerMessage(text: string): { message: ServerMessage | null; event: ParsedEvent } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { message: null, event: { kind: 'malformed', reason: 'not JSON' } };
  }
  if (!isObject(value) || typeof value['type'] !== 'string' || !isObject(value['content'])) {
    return { message: null, event: { kind: 'malformed', reason: 'not a {"type": string, "content": object} message' } };
  }
  const message: ServerMessage = { type: value['type'], content: value['content'] };
  if (value['position'] !== undefined) {
    const position = asPosition(value['position']);
    if (position === null) return { message: null, event: { kind: 'malformed', reason: 'a position that is not {"epoch": string, "offset": integer}' } };
    message.position = position;
  }
  return { message, event: classify(message) };
}

/** A position as the server sends it, or null. */
export function asPosition(value: unknown): Position | null {
  if (!isObject(value)) return null;
  const { epoch, offset } = value;
  return typeof epoch === 'string' && epoch !== '' && typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= 0 ? { epoch, offset } : null;
}

function classify({ type, content }: ServerMessage): ParsedEvent {
  if (type === 'subscribed' || type === 'resync') {
    const repoId = content['repo_id'];
    const position = asPosition(content['position']);
    if (typeof repoId !== 'string') return { kind: 'malformed', reason: `${type} without a string repo_id` };
    if (type === 'resync') {
      const reason = typeof content['reason'] === 'string' ? content['reason'] : 'unknown';
      if (position === null && content['position'] !== null) return { kind: 'malformed', reason: 'resync with a position that is not one' };
      return { kind: 'resync', repoId, reason, position };
    }
    return position === null ? { kind: 'malformed', reason: 'subscribed without a position' } : { kind: 'subscribed', repoId, position };
  }
  if (type === 'jwt-expired') {
    return typeof content['repo_id'] === 'string'
      ? { kind: 'jwt-expired', repoId: content['repo_id'] }
      : { kind: 'malformed', reason: 'jwt-expired without a string repo_id' };
  }
  const name = WIRE_NAMES[type];
  if (name === undefined) return { kind: 'other' };
  const missing = missingField(name, content);
  if (missing !== undefined) return { kind: 'malformed', reason: `${type} without ${missing}` };
  // missingField checked every field the type names, with its wire type.
  return { kind: 'library', name, content: content as LibraryEvents[typeof name] } as ParsedEvent;
}

const STRING_FIELDS: Record<LibraryEventName, readonly string[]> = {
  repoUpdate: ['repo_id', 'commit_id'],
  fileLockChanged: ['repo_id', 'path', 'change_event', 'lock_user'],
  folderPermChanged: ['repo_id', 'path', 'type', 'change_event', 'user', 'perm'],
  commentUpdate: ['repo_id', 'type', 'file_uuid', 'file_path'],
};

const ALLOWED_VALUES: Partial<Record<LibraryEventName, Record<string, readonly string[]>>> = {
  fileLockChanged: { change_event: ['locked', 'unlocked'] },
  folderPermChanged: { type: ['user', 'group'], change_event: ['add', 'modify', 'del'], perm: ['r', 'rw'] },
};

function missingField(name: LibraryEventName, content: Record<string, unknown>): string | undefined {
  for (const field of STRING_FIELDS[name]) {
    if (typeof content[field] !== 'string') return `a string ${field}`;
  }
  for (const [field, allowed] of Object.entries(ALLOWED_VALUES[name] ?? {})) {
    if (!allowed.includes(content[field] as string)) return `${field} one of ${allowed.join(', ')}`;
  }
  if (name === 'folderPermChanged' && !Number.isInteger(content['group'])) return 'an integer group';
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
