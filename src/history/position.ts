/**
 * Where an event stands in its library's history: a per-library `offset` (1, 2, 3... with no
 * gap) within an `epoch`, which changes when history is lost, so that an offset from before
 * the loss is never mistaken for one after it.
 */
import { randomBytes } from 'node:crypto';

export interface Position {
  readonly epoch: string;
  /** The event's number in its library, from 1; 0 means "before the first event". */
  readonly offset: number;
}

/** Epochs are short opaque strings; a client sends back what it was given. */
export const MAX_EPOCH_LENGTH = 64;

/** Random, so that two histories never share one. */
export function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A position sent by a client (`since`), or null when it is not one. */
export function parsePosition(value: unknown): Position | null {
  if (!isRecord(value)) return null;
  const { epoch, offset } = value;
  if (typeof epoch !== 'string' || epoch === '' || epoch.length > MAX_EPOCH_LENGTH) return null;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return null;
  return { epoch, offset };
}

/** `{"epoch":"...","offset":N}` */
export function positionJson(position: Position): string {
  return `{"epoch":${JSON.stringify(position.epoch)},"offset":${position.offset}}`;
}
