/**
 * The cursor of an SSE stream or a long poll: where each of its libraries stands, as
 * `<repo_id>@<epoch>:<offset>` joined by commas, repo id and epoch URI-encoded. It is the SSE
 * `id:` of every event (so that a browser's Last-Event-ID resumes every library exactly) and
 * what a long poll is sent back with. Only URL- and header-safe characters.
 */
import { MAX_EPOCH_LENGTH, type Position } from '../history/position.js';

export class CursorError extends Error {
  override readonly name = 'CursorError';
}

/** repo id → the position of the last message its client was given. */
export type Cursor = Map<string, Position>;

const OFFSET = /^(0|[1-9][0-9]{0,15})$/;

export function parseCursor(text: string, maxLibraries: number): Cursor {
  const cursor: Cursor = new Map();
  if (text.trim() === '') return cursor;
  const parts = text.split(',');
  if (parts.length > maxLibraries) throw new CursorError(`the cursor names ${parts.length} libraries, more than the ${maxLibraries} allowed`);
  for (const part of parts) {
    const at = part.lastIndexOf('@');
    const colon = part.lastIndexOf(':');
    const bad = () => new CursorError(`the cursor entry ${JSON.stringify(part.slice(0, 80))} is not <repo_id>@<epoch>:<offset>`);
    if (at <= 0 || colon < at + 2 || !OFFSET.test(part.slice(colon + 1))) throw bad();
    let repoId: string;
    let epoch: string;
    try {
      repoId = decodeURIComponent(part.slice(0, at));
      epoch = decodeURIComponent(part.slice(at + 1, colon));
    } catch {
      throw bad();
    }
    const offset = Number(part.slice(colon + 1));
    if (epoch.length > MAX_EPOCH_LENGTH || !Number.isSafeInteger(offset)) throw bad();
    cursor.set(repoId, { epoch, offset });
  }
  return cursor;
}

export function formatCursor(cursor: Cursor): string {
  return [...cursor].map(([repoId, { epoch, offset }]) => `${encodeURIComponent(repoId)}@${encodeURIComponent(epoch)}:${offset}`).join(',');
}
