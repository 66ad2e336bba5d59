/**
 * The write side of the hot path. Fan-out hands the same payload Buffer to every subscriber
 * of a library one after the other, so the WebSocket frame (header + payload, unmasked, as a
 * server sends it) is built once per event and the identical bytes go to every socket.
 *
 * Sockets written during one turn of the event loop are corked and uncorked together once
 * the turn is over, so several events that reach one socket in the same turn (a burst of
 * POSTs, several backplane messages read at once) leave in one write system call instead of
 * one per frame. A profile of the fan-out showed the write system call at about 58 % of the
 * server's CPU when every frame was its own write.
 */
import type { Socket } from 'node:net';

const OPCODE_TEXT_FIN = 0x81;

/** An unmasked, final text frame carrying `payload` (RFC 6455 §5.2), in one Buffer. */
export function encodeTextFrame(payload: Buffer): Buffer {
  const length = payload.length;
  const headerBytes = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerBytes + length);
  frame[0] = OPCODE_TEXT_FIN;
  if (length < 126) {
    frame[1] = length;
  } else if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  payload.copy(frame, headerBytes);
  return frame;
}

/** The frames of the last two payloads: a library's stock and positioned frames of one event. */
const recentPayloads: [Buffer | null, Buffer | null] = [null, null];
const recentFrames: [Buffer | null, Buffer | null] = [null, null];
let older = 0;

/**
 * The frame for `payload`, built once for a run of calls with the same Buffer (one event's
 * fan-out). Two entries are enough: one fan-out finishes before the next event's starts, and
 * sends at most two payloads per event (stock, and positioned for the positions extension).
 */
export function textFrameOf(payload: Buffer): Buffer {
  if (payload === recentPayloads[0]) return recentFrames[0]!;
  if (payload === recentPayloads[1]) return recentFrames[1]!;
  const slot = older;
  older = 1 - older;
  recentPayloads[slot] = payload;
  return (recentFrames[slot] = encodeTextFrame(payload));
}

/** Sockets corked since the last flush, uncorked together by `flush`. */
const corked: Socket[] = [];
let flushScheduled = false;
/** When the last flush ended and how long it took (performance.now(), ms). */
let lastFlushEnd = -Infinity;
let lastFlushCost = 0;

function flush(): void {
  flushScheduled = false;
  const started = performance.now();
  // uncork() may run user code (write callbacks, 'drain'); take the list first.
  const sockets = corked.splice(0);
  for (const socket of sockets) {
    // Our cork is the outer one: ws corks and uncorks within a single send.
    if (socket.writableCorked > 0) socket.uncork();
  }
  lastFlushEnd = performance.now();
  lastFlushCost = lastFlushEnd - started;
}

function scheduleFlush(): void {
  flushScheduled = true;
  // A flush that took T ms is followed by at least T ms of other work before the next one:
  // write system calls get at most about half of the process, and frames written
  // meanwhile share them. A quiet server (or a small fan-out) flushes at the end of the
  // current turn; a burst to many subscribers waits at most as long as one flush took.
  const wait = lastFlushEnd + lastFlushCost - performance.now();
  if (wait < 0.5) setImmediate(flush);
  else setTimeout(flush, Math.min(wait, MAX_FLUSH_DELAY_MS));
}

/** Bound on the wait above, whatever a flush cost. */
const MAX_FLUSH_DELAY_MS = 20;

/**
 * Writes `frame` to `socket` after whatever ws or an earlier call queued on it; the bytes
 * leave at the next flush (the end of this turn of the event loop, or a little later under
 * a burst, see scheduleFlush), together with any other frame written to the same socket in
 * the meantime.
 */
export function writeBatched(socket: Socket, frame: Buffer): void {
  if (socket.writableCorked === 0) {
    socket.cork();
    corked.push(socket);
    if (!flushScheduled) scheduleFlush();
  }
  socket.write(frame);
}

/** Sockets waiting for the end of this turn: for tests. */
export function pendingSockets(): number {
  return corked.length;
}
