/**
 * The one wire form of an event between processes: a line of JSON saying what the event is and
 * whom it is for, then the WebSocket frame as the accepting node encoded it, sent on untouched.
 *
 *   {"v":1,"origin":"web1:4242:9f3a0c","seq":17,"at":1732600000000,"type":"repo-update","repo":"<id>","audience":{"kind":"library"},"offset":18,"epoch":"k3x9q2"}\n<frame>
 *
 * Between nodes, `origin` + `seq` (gapless per origin) let a receiver drop repeats and count
 * what it missed; between a cluster primary and its workers they are left out. The Redis script
 * appends the position (`offset`, `epoch`) to an open header; older nodes ignore it.
 */
import { MAX_EPOCH_LENGTH } from '../history/position.js';
import { isRecord } from '../protocol/client-message.js';
import type { Audience, LibraryEvent } from '../protocol/event.js';

const BACKPLANE_MESSAGE_VERSION = 1;
const NEWLINE = 0x0a;

export interface BackplaneMessage {
  /** The node that accepted the event. */
  origin: string;
  /** 1, 2, 3... per origin, in the order that node accepted its events. */
  seq: number;
  /** When the origin accepted it (ms since the epoch, the origin's clock). */
  acceptedAt: number;
  event: LibraryEvent;
}

export class BackplaneMessageError extends Error {
  override readonly name = 'BackplaneMessageError';
}

/** The header without its closing brace, to append members to (`,"offset":18,...}`); a sender if given. */
export function openBackplaneHeader(event: LibraryEvent, from?: BackplaneMessage): string {
  const header = JSON.stringify({
    v: BACKPLANE_MESSAGE_VERSION,
    origin: from?.origin,
    seq: from?.seq,
    at: from?.acceptedAt,
    type: event.type,
    repo: event.repoId,
    audience: event.audience,
  });
  return header.slice(0, -1);
}

/** The whole message; the event's position, when it has one, goes in the header. */
export function encodeBackplaneMessage(message: BackplaneMessage): Buffer {
  return withFrame(openBackplaneHeader(message.event, message), message.event);
}

/** An event without a sender, as the cluster primary and its workers pass it. */
export function encodeEvent(event: LibraryEvent): Buffer {
  return withFrame(openBackplaneHeader(event), event);
}

function withFrame(openedHeader: string, event: LibraryEvent): Buffer {
  const position = event.position === undefined ? '' : `,"offset":${event.position.offset},"epoch":${JSON.stringify(event.position.epoch)}`;
  const header = `${openedHeader}${position}}`;
  const headerBytes = Buffer.byteLength(header);
  const bytes = Buffer.allocUnsafe(headerBytes + 1 + event.frame.length);
  bytes.write(header, 0, 'utf8');
  bytes[headerBytes] = NEWLINE;
  event.frame.copy(bytes, headerBytes + 1);
  return bytes;
}

function decodeAudience(value: unknown): Audience {
  if (isRecord(value)) {
    const kind = value['kind'];
    if (kind === 'library') return { kind };
    if (kind === 'user' && typeof value['username'] === 'string') return { kind, username: value['username'] };
    if (kind === 'group' && Number.isSafeInteger(value['groupId'])) return { kind, groupId: value['groupId'] as number };
  }
  throw new BackplaneMessageError('bad audience');
}

/** A message from another node: its sender is required. Throws BackplaneMessageError. */
export function decodeBackplaneMessage(bytes: Buffer): BackplaneMessage {
  const { header, event } = decode(bytes);
  const { origin, seq, at } = header;
  if (typeof origin !== 'string' || origin === '') throw new BackplaneMessageError('bad origin');
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) throw new BackplaneMessageError('bad seq');
  if (typeof at !== 'number' || !Number.isFinite(at)) throw new BackplaneMessageError('bad at');
  return { origin, seq, acceptedAt: at, event };
}

/** An event as encodeEvent wrote it (a sender, if any, is ignored). Throws BackplaneMessageError. */
export function decodeEvent(bytes: Uint8Array): LibraryEvent {
  return decode(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).event;
}

/** The frame is a view into `bytes`, not a copy. */
function decode(bytes: Buffer): { header: Record<string, unknown>; event: LibraryEvent } {
  const newline = bytes.indexOf(NEWLINE);
  if (newline < 0) throw new BackplaneMessageError('no header line');
  let header: unknown;
  try {
    header = JSON.parse(bytes.toString('utf8', 0, newline));
  } catch {
    throw new BackplaneMessageError('header is not JSON');
  }
  if (!isRecord(header)) throw new BackplaneMessageError('header is not an object');
  if (header['v'] !== BACKPLANE_MESSAGE_VERSION) throw new BackplaneMessageError(`unknown version ${JSON.stringify(header['v'])}`);
  const { type, repo } = header;
  if (typeof type !== 'string' || type === '') throw new BackplaneMessageError('bad type');
  if (typeof repo !== 'string' || repo === '') throw new BackplaneMessageError('bad repo');
  const frame = bytes.subarray(newline + 1);
  if (frame.length === 0) throw new BackplaneMessageError('no frame');
  const event: LibraryEvent = { type, repoId: repo, audience: decodeAudience(header['audience']), frame };
  const { offset, epoch } = header;
  // Both or neither: a message numbered by the script carries both.
  if (offset !== undefined || epoch !== undefined) {
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 1) throw new BackplaneMessageError('bad offset');
    if (typeof epoch !== 'string' || epoch === '' || epoch.length > MAX_EPOCH_LENGTH) throw new BackplaneMessageError('bad epoch');
    event.position = { epoch, offset };
  }
  return { header, event };
}
