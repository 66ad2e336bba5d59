/**
 * The bounded history of each library's events, and the one rule (`judgeRecovery`, for the
 * memory and the Redis history) that decides whether a returning client can be given exactly
 * what it missed or must start over ("resync").
 */
import type { LibraryEvent } from '../protocol/event.js';
import type { Position } from './position.js';

/** Why a client cannot be given what it missed: the table in docs/recovery.md. */
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
  /** `position`: where the library stands now (null: not known); the client goes on from there. */
  | { kind: 'resync'; reason: ResyncReason; position: Position | null };

export interface EventHistory {
  /**
   * The library's position now and the events after `since` (null: none). Never rejects: a
   * history that cannot be read answers `resync` with `history-unavailable`.
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
  /** Offsets of events a cut-off node accepted alone: clients from before one resync (`events-not-shared`). */
  unshared?: readonly number[];
  /** Offsets given out before a Redis failover lost them: clients from before one resync (`history-lost`). */
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
