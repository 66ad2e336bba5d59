/**
 * The last sequence number delivered from each origin node: a message repeated or overtaken (a
 * resend) is dropped, and a skipped range (accepted while the backplane was down) is counted.
 */
export type SequenceVerdict = { deliver: true; missed: number } | { deliver: false };

/** Origins not heard from for this long are forgotten (a restarted node is a new origin). */
const FORGET_AFTER_MS = 60 * 60 * 1000;

export class OriginSequences {
  readonly #last = new Map<string, { seq: number; seenAt: number }>();
  #nextSweep = 0;

  constructor(private readonly now: () => number = Date.now) {}

  check(origin: string, seq: number): SequenceVerdict {
    const now = this.now();
    this.#sweep(now);
    const last = this.#last.get(origin);
    if (last !== undefined && seq <= last.seq) return { deliver: false };
    // A node first heard of mid-stream (this node started later) missed nothing of ours to count.
    const missed = last === undefined ? 0 : seq - last.seq - 1;
    this.#last.set(origin, { seq, seenAt: now });
    return { deliver: true, missed };
  }

  get size(): number {
    return this.#last.size;
  }

  #sweep(now: number): void {
    if (now < this.#nextSweep) return;
    this.#nextSweep = now + FORGET_AFTER_MS / 4;
    for (const [origin, last] of this.#last) if (now - last.seenAt > FORGET_AFTER_MS) this.#last.delete(origin);
  }
}
