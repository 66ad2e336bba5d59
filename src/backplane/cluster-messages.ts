/**
 * What a cluster worker's backplane and the primary say over Node's IPC channel (`serialization:
 * 'advanced'`, so bytes travel as bytes). Events are encoded once (backplane-message.ts), so the
 * primary sends one batch to every worker. `nsw` tells these apart from Node's own messages.
 *
 *   worker  -> primary  { nsw: 'hello', id }                  once, when the worker starts its backplane
 *   primary -> worker   { nsw: 'welcome', id }                from now on it gets every event
 *   worker  -> primary  { nsw: 'publish', event }             an event POSTed to this worker
 *   primary -> workers  { nsw: 'events', events }             the events positioned within one turn, in the primary's order
 *   worker  -> primary  { nsw: 'read', id, repoId, since }    a history read for a positioned subscriber
 *   primary -> worker   { nsw: 'history', id, read }          its answer, after every event sent before it
 *   primary -> workers  { nsw: 'followed?', id }              which libraries do your subscribers follow (after an outage)
 *   worker  -> primary  { nsw: 'followed', id, libraries }    the answer
 *   primary -> workers  { nsw: 'gap', gap }                   the primary's backplane is whole again after a gap
 */
import type { HistoryRead, ResyncReason } from '../history/event-history.js';
import type { Position } from '../history/position.js';
import type { BackplaneGap } from './backplane.js';
import { decodeEvent, encodeEvent } from './backplane-message.js';

/** An event in the backplane's wire form; it arrives as a Uint8Array. */
export type EncodedEvent = Uint8Array;

export type WireRead =
  | { kind: 'recovered'; position: Position; events: EncodedEvent[] }
  | { kind: 'resync'; reason: ResyncReason; position: Position | null };

export type WorkerMessage =
  | { nsw: 'hello'; id: number }
  | { nsw: 'publish'; event: EncodedEvent }
  | { nsw: 'read'; id: number; repoId: string; since: Position | null }
  | { nsw: 'followed'; id: number; libraries: string[] };

export type PrimaryMessage =
  | { nsw: 'welcome'; id: number }
  | { nsw: 'events'; events: EncodedEvent[] }
  | { nsw: 'history'; id: number; read: WireRead }
  | { nsw: 'followed?'; id: number }
  /** Its set of libraries survives the structured clone. */
  | { nsw: 'gap'; gap: BackplaneGap };

export function readToWire(read: HistoryRead): WireRead {
  return read.kind === 'recovered' ? { ...read, events: read.events.map(encodeEvent) } : read;
}

export function readFromWire(read: WireRead): HistoryRead {
  return read.kind === 'recovered' ? { ...read, events: read.events.map(decodeEvent) } : read;
}

/** A guard for the messages tagged with one of `kinds`: a record, so that every kind must be named. */
export function taggedWith<Message extends { nsw: string }>(kinds: Record<Message['nsw'], true>): (message: unknown) => message is Message {
  const known: ReadonlySet<unknown> = new Set(Object.keys(kinds));
  return (message: unknown): message is Message => typeof message === 'object' && message !== null && known.has((message as { nsw?: unknown }).nsw);
}

export const isWorkerMessage = taggedWith<WorkerMessage>({ hello: true, publish: true, read: true, followed: true });
export const isPrimaryMessage = taggedWith<PrimaryMessage>({ welcome: true, events: true, history: true, 'followed?': true, gap: true });
