/**
 * The write side of the hot path. Fan-out hands the same payload Buffer to every subscriber
 * of a library one after the other, so the WebSocket frame (header + payload, unmasked, as a
 * server sends it) is built once per event and the identical bytes go to every socket.
 *
 * A quiet server writes each frame at once. Under a burst (a fan-out starting right after the
 * previous one ended, see TUNING.burstGapMs, or a sustained rate, see TUNING.sustainedIntervalMs)
 * sockets are corked and uncorked together after a short window, so several events that reach
 * one socket meanwhile leave in one write system call instead of one per frame: that system
 * call, not our JavaScript, is most of what a fan-out costs.
 *
 * It writes underneath ws, which holds only because of two things that websocket-endpoint.ts
 * sets up and this module relies on:
 * - ws's perMessageDeflate is off: our frames are uncompressed, and ws never holds a compressed
 *   frame back in its own queue, so nothing it sends can be overtaken by one of ours;
 * - ws's sender writes each frame of its own (pings, pongs, close) to the socket at once, in
 *   the call: its frames and ours share the socket's one write queue, in call order.
 * The caller writes nothing after ws sent a close frame (readyState CLOSING).
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
   * A fan-out that starts within this time of the end of the previous one is part of a burst:
   * its event was already waiting while the previous one was written. Events at a rate the
   * server keeps up with arrive after a gap and are written at once, even when another process
   * holding the core made one fan-out slow: a rule on the fan-out's own cost would hold them back.
   */
  burstGapMs: 2,

  /**
   * Fan-outs that come, on average, less than this far apart are a sustained rate (over about
   * 66 events/s): each is corked for up to this long, so a socket's frames of two or more events
   * leave in one write. A worker of `--workers N` needs this rule: it writes to 1/N of the
   * subscribers, so its fan-outs end long before the next event has come round through the
   * primary and the gap rule never sees a burst. At 50 events/s (20 ms apart, give or take the
   * scheduler) every frame is still written at once. The mean weighs the last fan-out 1/4.
   */
  sustainedIntervalMs: 15,
  /** A quiet spell counts as this long, so a burst after it is seen within a few fan-outs. */
  maxCountedIntervalMs: 100,

  /**
   * A sustained-rate batch of two or more fan-outs pays when its sockets got this many frames
   * each, on average: many events to few libraries. Many events to many small libraries (each
   * socket one frame per window, as in `churn`) share no write, and holding them only costs
   * latency; the rule is then off for sustainedRetryMs, after which one batch tries again. A
   * batch of one fan-out says nothing either way: the first batches of a burst hold one event
   * each, and judging them would turn the rule off just as it starts to pay.
   */
  minFramesPerSocket: 1.5,
  sustainedRetryMs: 1000,

  /**
   * Corked bytes at which one socket is written at once, whatever the window: a larger write
   * saves nothing more, and the send queue limit (which counts corked bytes) must not close a
   * client that reads everything for what the server itself held back.
   */
  flushBytes: 64 * 1024,
} as const;

/** One writer per process: the batching rule looks at every fan-out of the process. */
export class FrameWriter {
  /** The frames of the last two payloads: a library's stock and positioned frames of one event. */
  readonly #recentPayloads: [Buffer | null, Buffer | null] = [null, null];
  readonly #recentFrames: [Buffer | null, Buffer | null] = [null, null];
  #older = 0;
  /**
   * Whether frames are written at once (`false`: the server was quiet, so the first subscribers'
   * bytes are on their way while the fan-out goes on) or corked and flushed together (a burst).
   */
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
   * The frame for `payload`, built once for a run of calls with the same Buffer (one event's
   * fan-out). Two entries are enough: one fan-out finishes before the next event's starts, and
   * sends at most two payloads per event (stock, and positioned for the positions extension).
   */
  frameOf(payload: Buffer): Buffer {
    if (payload === this.#recentPayloads[0]) return this.#recentFrames[0]!;
    if (payload === this.#recentPayloads[1]) return this.#recentFrames[1]!;
    const slot = this.#older;
    this.#older = 1 - this.#older;
    this.#recentPayloads[slot] = payload;
    return (this.#recentFrames[slot] = encodeTextFrame(payload));
  }

  /**
   * Writes `frame` to `socket` after whatever ws or an earlier call queued on it: at once when
   * the server is quiet, or corked until the end of the batching window under a burst, together
   * with any other frame written to the same socket in the meantime.
   */
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
    // A fan-out that took T ms is followed by up to T ms of batching (write system calls then
    // get at most about half of the process under a burst), a sustained rate by
    // TUNING.sustainedIntervalMs; each flush carries every frame that reached a socket meanwhile.
    this.#batching = true;
    this.#batchedTurns = 1;
    const afterBurst = sinceEnd < TUNING.burstGapMs ? Math.min(this.#lastTook, TUNING.maxCoolDownMs) - sinceEnd : 0;
    this.#sustainedBatch = sustained && afterBurst < TUNING.sustainedIntervalMs;
    setTimeout(this.#flush, Math.max(0, afterBurst, sustained ? TUNING.sustainedIntervalMs : 0));
  }
}
