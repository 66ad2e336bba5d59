/**
 * What the cluster primary and its workers (`workers` > 1, Node's cluster module) say to each
 * other over the IPC channel (structured clone: `serialization: 'advanced'`, so frames travel
 * as bytes, not as JSON arrays). Every message carries `nsw` so that it is never mistaken for
 * one of Node's own cluster messages or a library's.
 *
 *   worker  -> primary  { nsw: 'hello' }                      once, when the worker starts its backplane
 *   primary -> worker   { nsw: 'welcome', state }             its backplane's state
 *   worker  -> primary  { nsw: 'publish', event }             an event POSTed to this worker
 *   primary -> workers  { nsw: 'events', events, origins }    the events positioned within one turn, in the primary's order
 *                                                             (origins[i]: the worker that accepted events[i], 0 for none)
 *   primary -> workers  { nsw: 'state', state }               the primary's backplane went up or down (Redis)
 *   worker  -> primary  { nsw: 'read', id, repoId, since }    a history read for a positioned subscriber
 *   primary -> worker   { nsw: 'history', id, read }          its answer, after every event sent before it
 *   primary -> workers  { nsw: 'followed?', id }              which libraries do your subscribers follow (after an outage)
 *   worker  -> primary  { nsw: 'followed', id, libraries }    the answer
 *   primary -> workers  { nsw: 'gap', gap }                   the primary's backplane is whole again after a gap
 *   worker  -> primary  { nsw: 'gather', id, ask }            a worker serving /metrics or /status wants the whole server's figures
 *   primary -> workers  { nsw: 'share?', id, ask }            the primary asks every worker for its own (cluster/whole-server-figures.ts)
 *   worker  -> primary  { nsw: 'share', id, share }           the answer
 *   primary -> worker   { nsw: 'gathered', id, figures }      the whole server's figures, to the worker that asked
 */
import type { HistoryRead, ResyncReason } from '../history/event-history.js';
import type { Position } from '../history/position.js';
import type { Registry } from 'prom-client';
import type { Audience, LibraryEvent } from '../protocol/event.js';
import type { StatusPoint, TailEntry } from '../status/live-status.js';
import type { BackplaneGap, BackplaneState } from './backplane.js';

/** A LibraryEvent as it crosses the channel: the frame arrives as a Uint8Array. */
export interface WireEvent {
  type: string;
  repoId: string;
  audience: Audience;
  frame: Uint8Array;
  position?: Position;
}

export type WireRead =
  | { kind: 'recovered'; position: Position; events: WireEvent[] }
  | { kind: 'resync'; reason: ResyncReason; position: Position | null };

export interface WireGap {
  cutOff: BackplaneGap['cutOff'];
  node: string;
  libraries: string[] | 'all';
  outageMs: number;
}

/** prom-client's `Registry.getMetricsAsJSON()`: plain data, so it crosses the channel as it is. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** What a worker serving /metrics or /status asks for. */
export type FiguresQuestion =
  | { kind: 'metrics' }
  /** The last `points` seconds, and the subscribers of `repoIds` now. */
  | { kind: 'status'; points: number; repoIds: string[] };

/** One worker's status page figures (src/status/whole-status.ts merges them). */
export interface StatusShare {
  worker: number;
  points: StatusPoint[];
  tail: TailEntry[];
  /** [repoId, subscribers on this worker] for the libraries asked about. */
  followers: Array<[string, number]>;
}

/** One worker's answer; `null` when that part is turned off (no metrics, no admin token). */
export type WorkerShare =
  | { kind: 'metrics'; worker: number; metrics: MetricsJson }
  | { kind: 'status'; status: StatusShare | null };

export type GatheredFigures =
  | { kind: 'metrics'; contentType: string; body: string }
  /** The workers that answered in time. */
  | { kind: 'status'; shares: StatusShare[] }
  | { kind: 'failed'; reason: string };

export type WorkerMessage =
  | { nsw: 'hello' }
  | { nsw: 'publish'; event: WireEvent }
  | { nsw: 'read'; id: number; repoId: string; since: Position | null }
  | { nsw: 'followed'; id: number; libraries: string[] }
  | { nsw: 'gather'; id: number; ask: FiguresQuestion }
  | { nsw: 'share'; id: number; share: WorkerShare };

export type PrimaryMessage =
  | { nsw: 'welcome'; state: BackplaneState }
  | { nsw: 'events'; events: WireEvent[]; origins: number[] }
  | { nsw: 'state'; state: BackplaneState }
  | { nsw: 'history'; id: number; read: WireRead }
  | { nsw: 'followed?'; id: number }
  | { nsw: 'gap'; gap: WireGap }
  | { nsw: 'share?'; id: number; ask: FiguresQuestion }
  | { nsw: 'gathered'; id: number; figures: GatheredFigures };

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

export function readToWire(read: HistoryRead): WireRead {
  return read.kind === 'recovered' ? { ...read, events: read.events.map(toWire) } : read;
}

export function readFromWire(read: WireRead): HistoryRead {
  return read.kind === 'recovered' ? { ...read, events: read.events.map(fromWire) } : read;
}

export function gapToWire(gap: BackplaneGap): WireGap {
  return { ...gap, libraries: gap.libraries === 'all' ? 'all' : [...gap.libraries] };
}

export function gapFromWire(gap: WireGap): BackplaneGap {
  return { ...gap, libraries: gap.libraries === 'all' ? 'all' : new Set(gap.libraries) };
}

const WORKER_KINDS: ReadonlySet<string> = new Set<WorkerMessage['nsw']>(['hello', 'publish', 'read', 'followed', 'gather', 'share']);
const PRIMARY_KINDS: ReadonlySet<string> = new Set<PrimaryMessage['nsw']>([
  'welcome',
  'events',
  'state',
  'history',
  'followed?',
  'gap',
  'share?',
  'gathered',
]);

function isTagged(message: unknown): message is { nsw: string } {
  return typeof message === 'object' && message !== null && typeof (message as { nsw?: unknown }).nsw === 'string';
}

export function isWorkerMessage(message: unknown): message is WorkerMessage {
  return isTagged(message) && WORKER_KINDS.has(message.nsw);
}

export function isPrimaryMessage(message: unknown): message is PrimaryMessage {
  return isTagged(message) && PRIMARY_KINDS.has(message.nsw);
}
