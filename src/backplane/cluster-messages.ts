/**
 * What the cluster primary and its workers (`workers` > 1, Node's cluster module) say to each
 * other over the IPC channel (structured clone: `serialization: 'advanced'`, so frames travel
 * as bytes, not as JSON arrays). Every message carries `nsw` so that it is never mistaken for
 * one of Node's own cluster messages or a library's.
 *
 *   worker  -> primary  { nsw: 'hello' }                     once, when the worker starts its backplane
 *   primary -> worker   { nsw: 'welcome', epoch, state }     the history it numbers in, and its backplane's state
 *   worker  -> primary  { nsw: 'publish', event }            an event POSTed to this worker
 *   primary -> workers  { nsw: 'event', event, origin }      every event, positioned, in the primary's order
 *   primary -> workers  { nsw: 'state', state }              the primary's backplane went up or down (Redis)
 */
import type { Position } from '../history/position.js';
import type { Audience, LibraryEvent } from '../protocol/event.js';
import type { BackplaneState } from './backplane.js';

/** A LibraryEvent as it crosses the channel: the frame arrives as a Uint8Array. */
export interface WireEvent {
  type: string;
  repoId: string;
  audience: Audience;
  frame: Uint8Array;
  position?: Position;
}

export type WorkerMessage = { nsw: 'hello' } | { nsw: 'publish'; event: WireEvent };

export type PrimaryMessage =
  | { nsw: 'welcome'; epoch: string | null; state: BackplaneState }
  | { nsw: 'event'; event: WireEvent; origin: number }
  | { nsw: 'state'; state: BackplaneState };

export function toWire(event: LibraryEvent): WireEvent {
  const wire: WireEvent = { type: event.type, repoId: event.repoId, audience: event.audience, frame: event.frame };
  if (event.position !== undefined) wire.position = event.position;
  return wire;
}

export function fromWire(wire: WireEvent): LibraryEvent {
  const { frame } = wire;
  const bytes = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  const event: LibraryEvent = { type: wire.type, repoId: wire.repoId, audience: wire.audience, frame: bytes };
  if (wire.position !== undefined) event.position = wire.position;
  return event;
}

function isTagged(message: unknown): message is { nsw: string } {
  return typeof message === 'object' && message !== null && typeof (message as { nsw?: unknown }).nsw === 'string';
}

export function isWorkerMessage(message: unknown): message is WorkerMessage {
  return isTagged(message) && (message.nsw === 'hello' || message.nsw === 'publish');
}

export function isPrimaryMessage(message: unknown): message is PrimaryMessage {
  return isTagged(message) && (message.nsw === 'welcome' || message.nsw === 'event' || message.nsw === 'state');
}
