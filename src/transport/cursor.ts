/**
 * The cursor of an SSE stream or a long poll: where each of its libraries stands, as
 * `<repo_id>@<epoch>:<offset>` joined by commas, the repo id URI-encoded. It is the SSE
 * `id:` of every event (so that a browser's Last-Event-ID resumes every library exactly)
 * and what a long poll sends back. Only URL- and header-safe characters.
 */

/** Position text as the history formats it: `<epoch>:<offset>`. */
const POSITION = /^[A-Za-z0-9_-]{1,32}:(0|[1-9][0-9]{0,15})$/;

export class CursorError extends Error {
  override readonly name = 'CursorError';
}

/** repo id → `<epoch>:<offset>`. */
export type Cursor = Map<string, string>;

export function parseCursor(text: string, maxLibraries: number): Cursor {
  const cursor: Cursor = new Map();
  if (text.trim() === '') return cursor;
  const parts = text.split(',');
  if (parts.length > maxLibraries) throw new CursorError(`the cursor names ${parts.length} libraries, more than the ${maxLibraries} allowed`);
  for (const part of parts) {
    const at = part.lastIndexOf('@');
    const position = part.slice(at + 1).trim();
    let repoId: string;
    try {
      repoId = decodeURIComponent(part.slice(0, at).trim());
    } catch {
      throw new CursorError(`the cursor entry ${JSON.stringify(part.slice(0, 80))} is not <repo_id>@<epoch>:<offset>`);
    }
    if (at <= 0 || repoId === '' || !POSITION.test(position)) {
      throw new CursorError(`the cursor entry ${JSON.stringify(part.slice(0, 80))} is not <repo_id>@<epoch>:<offset>`);
    }
    cursor.set(repoId, position);
  }
  return cursor;
}

export function formatCursor(cursor: Cursor): string {
  return [...cursor].map(([repoId, position]) => `${encodeURIComponent(repoId)}@${position}`).join(',');
}
