/**
 * The write side of the hot path: the WebSocket frame (unmasked, as a server sends it) is built
 * once per event and the same bytes go to every subscriber's socket. Under a burst, sockets are
 * corked for a short window so that several frames to one socket leave in one write system call:
 * that call, not our JavaScript, is most of what a fan-out costs.
 *
 * Writing underneath ws holds because websocket-endpoint.ts turns perMessageDeflate off (ws never
 * holds a compressed frame back in its own queue) and ws writes its own frames (ping, pong, close)
 * at once: its frames and ours share the socket's write queue in call order. The caller writes
 * nothing after ws sent a close frame (readyState CLOSING).
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

/** How the writer tells a burst from a quiet server, and how long it batches. */
const TUNING = {
  /** Bound on the batching window, whatever a fan-out cost. */
  maxCoolDownMs: 20,

  /**
   * A fan-out starting this soon after the previous one ended is part of a burst (its event was
   * waiting). Not a rule on a fan-out's cost: another process holding the core can make one slow.
   */
  burstGapMs: 2,

  /**
   * Fan-outs less than this far apart on average (the last weighs 1/4) are a sustained rate and
   * each is corked for up to this long. A `--workers N` worker needs it: it writes to 1/N of the
   * subscribers, so its fan-outs end long before the next event comes round through the primary
   * and the gap rule never sees a burst.
   */
  sustainedIntervalMs: 15,
  /** A quiet spell counts as this long, so a burst after it is seen within a few fan-outs. */
  maxCountedIntervalMs: 100,

  /**
   * A sustained-rate batch of two or more fan-outs pays only with this many frames per socket on
   * average (many events to few libraries); else holding frames only costs latency, and the rule
   * is off for sustainedRetryMs. A batch of one fan-out is not judged: a burst starts with those.
   */
  minFramesPerSocket: 1.5,
  sustainedRetryMs: 1000,

  /**
   * Corked bytes at which a socket is written at once: a larger write saves nothing more, and the
   * send queue limit (it counts corked bytes) must not close a client for what we held back.
   */
  flushBytes: 64 * 1024,
} as const;

/** One writer per process: the batching rule looks at every fan-out of the process. */
export class FrameWriter {
  /** The frames of the last two payloads: a library's stock and positioned frames of one event. */
  readonly #recentPayloads: [Buffer | null, Buffer | null] = [null, null];
  readonly #recentFrames: [Buffer | null, Buffer | null] = [null, null];
  #older = 0;
  /** Frames are corked until the flush (a burst); else written at once. */
  #batching = false;
  /** A fan-out (a turn of the event loop with frames to write) is going on. */
  #inTurn = false;
  #turnStarted = 0;
  /** When the previous fan-out (direct writes, or a flush) ended, and how long it took (ms). */
  #lastEnded = -Infinity;
  #lastTook = 0;
  /** When the previous fan-out started, and the mean time between fan-outs. */
  #lastStarted = -Infinity;
  #meanInterval = TUNING.maxCountedIntervalMs;
  /** Sockets corked since the last flush, uncorked together by `flush`, and the frames written to them. */
  readonly #corked: Socket[] = [];
  #corkedFrames = 0;
  /** Fan-outs in the batch waiting for its flush. */
  #batchedTurns = 0;
  /** The batch waiting for its flush was started by the sustained-rate rule. */
  #sustainedBatch = false;
  /** When the sustained-rate rule may batch again after a batch that did not pay. */
  #sustainedOffUntil = -Infinity;
  readonly #now: () => number;
  readonly #endTurn = (): void => {
    this.#inTurn = false;
    if (!this.#batching) this.#ended(this.#turnStarted);
  };
  readonly #flush = (): void => this.#flushCorked();

  /** `now` (milliseconds, performance.now() by default) tells a burst from a quiet server; tests give a fake one. */
  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /**
   * The frame for `payload`, built once per fan-out. Two entries are enough: a fan-out ends before
   * the next one starts, and sends at most two payloads (stock and positioned).
   */
  frameOf(payload: Buffer): Buffer {
    if (payload === this.#recentPayloads[0]) return this.#recentFrames[0]!;
    if (payload === this.#recentPayloads[1]) return this.#recentFrames[1]!;
    const slot = this.#older;
    this.#older = 1 - this.#older;
    this.#recentPayloads[slot] = payload;
    return (this.#recentFrames[slot] = encodeTextFrame(payload));
  }

  /** Writes `frame` after what ws or an earlier call queued on `socket`: at once, or corked under a burst. */
  write(socket: Socket, frame: Buffer): void {
    if (!this.#inTurn) this.#startTurn();
    if (!this.#batching) {
      socket.write(frame);
      return;
    }
    if (socket.writableCorked === 0) {
      socket.cork();
      this.#corked.push(socket);
    }
    this.#corkedFrames++;
    socket.write(frame);
    // Uncorked early; the flush skips it unless a later frame corks it again.
    if (socket.writableLength >= TUNING.flushBytes) socket.uncork();
  }

  /** Sockets waiting for the end of the batching window. */
  get pendingSockets(): number {
    return this.#corked.length;
  }

  #ended(started: number): void {
    this.#lastEnded = this.#now();
    this.#lastTook = this.#lastEnded - started;
  }

  #flushCorked(): void {
    const started = this.#now();
    this.#batching = false;
    // uncork() may run user code (write callbacks, 'drain'); take the list first.
    const sockets = this.#corked.splice(0);
    if (this.#sustainedBatch && this.#batchedTurns >= 2 && this.#corkedFrames / sockets.length < TUNING.minFramesPerSocket) {
      this.#sustainedOffUntil = started + TUNING.sustainedRetryMs;
    }
    this.#sustainedBatch = false;
    this.#corkedFrames = 0;
    this.#batchedTurns = 0;
    for (const socket of sockets) {
      // Our cork is the outer one: ws corks and uncorks within a single send.
      if (socket.writableCorked > 0) socket.uncork();
    }
    this.#ended(started);
  }

  /** At a fan-out's first frame: keeps the rate, and starts a batch under a burst. */
  #startTurn(): void {
    const at = this.#now();
    this.#inTurn = true;
    setImmediate(this.#endTurn);
    this.#meanInterval += (Math.min(at - this.#lastStarted, TUNING.maxCountedIntervalMs) - this.#meanInterval) / 4;
    this.#lastStarted = at;
    if (this.#batching) {
      this.#batchedTurns++; // this fan-out joins the batch waiting for its flush
      return;
    }
    const sinceEnd = at - this.#lastEnded;
    const sustained = this.#meanInterval < TUNING.sustainedIntervalMs && at >= this.#sustainedOffUntil;
    if (sinceEnd >= TUNING.burstGapMs && !sustained) {
      this.#turnStarted = at;
      return;
    }
    // A burst after a fan-out of T ms batches for up to T ms, so writes get at most about half of
    // the process; a sustained rate batches for TUNING.sustainedIntervalMs.
    this.#batching = true;
    this.#batchedTurns = 1;
    const afterBurst = sinceEnd < TUNING.burstGapMs ? Math.min(this.#lastTook, TUNING.maxCoolDownMs) - sinceEnd : 0;
    this.#sustainedBatch = sustained && afterBurst < TUNING.sustainedIntervalMs;
    setTimeout(this.#flush, Math.max(0, afterBurst, sustained ? TUNING.sustainedIntervalMs : 0));
  }
}
