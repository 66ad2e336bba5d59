import { isRecord, MAX_REPO_ID_LENGTH } from '../protocol/client-message.js';
import { CursorError, parseCursor, type Cursor } from '../session/cursor.js';

/**
 * What an SSE or long-poll request asks for: libraries with their tokens, and where to resume.
 *
 *   GET  /notification/sse?repo_id=<id>&jwt_token=<jwt>[&repo_id=..&jwt_token=..][&cursor=<cursor>]
 *        (a browser's Last-Event-ID header, when present, is the cursor)
 *   POST /notification/poll  {"cursor": "<cursor>", "repos": [{"id": "<id>", "jwt_token": "<jwt>"}]}
 */
export interface FallbackRequest {
  /** In request order, one per library (a repeated library keeps its last token). */
  entries: Array<{ repoId: string; token: string }>;
  cursor: Cursor;
}

/** A request the endpoint cannot serve; the message is the 400 answer's body. */
export class FallbackRequestError extends Error {
  override readonly name = 'FallbackRequestError';
}

export function parseSseRequest(query: URLSearchParams, lastEventId: string | undefined, maxLibraries: number): FallbackRequest {
  const repoIds = query.getAll('repo_id');
  const tokens = query.getAll('jwt_token');
  if (repoIds.length !== tokens.length) {
    throw new FallbackRequestError(`${repoIds.length} repo_id but ${tokens.length} jwt_token parameters: give one jwt_token after each repo_id`);
  }
  return build(
    repoIds.map((repoId, i) => ({ repoId, token: tokens[i]! })),
    lastEventId !== undefined && lastEventId !== '' ? lastEventId : (query.get('cursor') ?? ''),
    maxLibraries,
  );
}

export function parsePollRequest(body: string, maxLibraries: number): FallbackRequest {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new FallbackRequestError('the body is not JSON: send {"cursor": "...", "repos": [{"id": "<repo_id>", "jwt_token": "<jwt>"}]}');
  }
  if (!isRecord(value) || !Array.isArray(value['repos'])) {
    throw new FallbackRequestError('the body must be {"cursor": "...", "repos": [{"id": "<repo_id>", "jwt_token": "<jwt>"}]}');
  }
  const cursor = value['cursor'] ?? '';
  if (typeof cursor !== 'string') throw new FallbackRequestError('"cursor" must be a string');
  const entries = value['repos'].map((repo: unknown) => {
    if (!isRecord(repo) || typeof repo['id'] !== 'string' || typeof repo['jwt_token'] !== 'string') {
      throw new FallbackRequestError('each of "repos" must be {"id": "<repo_id>", "jwt_token": "<jwt>"}');
    }
    return { repoId: repo['id'], token: repo['jwt_token'] };
  });
  return build(entries, cursor, maxLibraries);
}

function build(entries: Array<{ repoId: string; token: string }>, cursorText: string, maxLibraries: number): FallbackRequest {
  if (entries.length === 0) throw new FallbackRequestError('name at least one library (repo_id and jwt_token)');
  const unique = new Map<string, { repoId: string; token: string }>();
  for (const entry of entries) {
    if (entry.repoId === '' || entry.repoId.length > MAX_REPO_ID_LENGTH) throw new FallbackRequestError(`not a library id: ${JSON.stringify(entry.repoId.slice(0, 80))}`);
    unique.delete(entry.repoId);
    unique.set(entry.repoId, entry);
  }
  if (unique.size > maxLibraries) {
    throw new FallbackRequestError(`${unique.size} libraries in one request, more than the server's limit of ${maxLibraries}`);
  }
  try {
    return { entries: [...unique.values()], cursor: parseCursor(cursorText, maxLibraries) };
  } catch (err) {
    if (err instanceof CursorError) throw new FallbackRequestError(err.message);
    throw err;
  }
}
