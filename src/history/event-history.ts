/**
 * The bounded history of each library's events, and the one rule that decides whether a client
 * returning with its last position can be given exactly what it missed or must start over
 * ("resync"). The memory history (memory-history.ts) and the Redis one
 * (backplane/redis-history.ts) hold the events; `judgeRecovery` judges for both.
 */
import type { LibraryEvent } from '../protocol/event.js';
import type { Position } from './position.js';

/**
 * Why a client cannot be given what it missed and must fetch the library's state again:
 * - `epoch-changed`: history was lost since its position (Redis flushed, the server restarted);
 * - `history-gone`: what it missed is older than the history keeps (`history_size`, `history_ttl`);
 * - `unknown-position`: the position was never given out (past the newest event, or malformed);
 * - `history-unavailable`: the history cannot be read now (Redis is down);
 * - `too-far-behind`: more events arrived while its replay was being read than a replay may hold;
 * - `events-not-shared`: a node cut off from the others accepted events for the library that
 *   reached its own subscribers only, and are in no history;
 * - `history-lost`: Redis failed over to a replica that had not received the library's latest
 *   events: they were delivered, but are in no history any more.
 */
export const RESYNC_REASONS = [
  'epoch-changed',
  'history-gone',
  'unknown-position',
  'history-unavailable',
  'too-far-behind',
  'events-not-shared',
  'history-lost',
] as const;
export type ResyncReason = (typeof RESYNC_REASONS)[number];

export type HistoryRead =
  /** `events` are those after `since`, oldest first, ending at `position` (the library's newest). */
  | { kind: 'recovered'; position: Position; events: LibraryEvent[] }
  /** `position` is where the library stands now (null when it cannot be known): the client goes on from there. */
  | { kind: 'resync'; reason: ResyncReason; position: Position | null };

export interface EventHistory {
  /**
   * The library's position now and, when `since` is given, the events after it. `since` null:
   * nothing to recover, only the position (a `recovered` read with no events). Never rejects:
   * a history that cannot be read answers `resync` with `history-unavailable`.
   */
  read(repoId: string, since: Position | null): Promise<HistoryRead>;
}

/** How much history each library keeps: at most `size` events, none older than `ttlMs`. */
export interface HistoryLimits {
  size: number;
  ttlMs: number;
}

export const DEFAULT_HISTORY_LIMITS: HistoryLimits = { size: 1000, ttlMs: 60 * 60 * 1000 };

/** What a history holds of one library, as read at one moment. */
export interface HistorySnapshot {
  epoch: string;
  /** The offset of the library's newest event; 0 when it has had none in this epoch. */
  top: number;
  /** The events still held (within size and age), oldest first; each carries its position. */
  events: readonly LibraryEvent[];
  /**
   * Offsets that stand for events accepted by a node cut off from the others, which are in no
   * history: a client whose position is before one of them is told to resync (`events-not-shared`).
   */
  unshared?: readonly number[];
  /**
   * Offsets past the history's newest event that were given out before Redis failed over to a
   * replica without them: a client whose position is before one of them is told to resync (`history-lost`).
   */
  lost?: readonly number[];
}

/** Whether a client at `since` recovers from `snapshot`, and with which events. */
export function judgeRecovery(snapshot: HistorySnapshot, since: Position | null): HistoryRead {
  const position: Position = { epoch: snapshot.epoch, offset: snapshot.top };
  if (since === null) return { kind: 'recovered', position, events: [] };
  if (since.epoch !== snapshot.epoch) return { kind: 'resync', reason: 'epoch-changed', position };
  if (since.offset > snapshot.top) return { kind: 'resync', reason: 'unknown-position', position };
  if (snapshot.lost?.some((offset) => offset > since.offset)) return { kind: 'resync', reason: 'history-lost', position };
  if (snapshot.unshared?.some((offset) => offset > since.offset)) return { kind: 'resync', reason: 'events-not-shared', position };
  const missed = snapshot.events.filter((event) => (event.position?.offset ?? 0) > since.offset);
  const complete =
    missed.length === snapshot.top - since.offset && missed.every((event, i) => event.position?.offset === since.offset + 1 + i);
  if (!complete) return { kind: 'resync', reason: 'history-gone', position };
  return { kind: 'recovered', position, events: missed };
}
