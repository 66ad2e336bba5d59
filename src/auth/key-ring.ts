/**
 * The JWT keys tokens are checked against: the current one, and after a rotation the previous
 * one until its grace period ends, so that tokens seahub handed out just before keep working.
 * Only one previous key is kept.
 */
export class KeyRing {
  #current: Buffer;
  #previous: { key: Buffer; until: number } | null = null;

  constructor(
    key: Buffer,
    private readonly now: () => number,
  ) {
    this.#current = key;
  }

  get current(): Buffer {
    return this.#current;
  }

  /** Makes `next` the current key; false when it already is (nothing changes then). */
  rotate(next: Buffer, graceMs: number): boolean {
    if (next.equals(this.#current)) return false;
    this.#previous = graceMs > 0 ? { key: this.#current, until: this.now() + graceMs } : null;
    this.#current = next;
    return true;
  }

  /** The keys a token may be signed with right now, current first. */
  accepted(): readonly Buffer[] {
    if (this.#previous !== null && this.now() >= this.#previous.until) this.#previous = null;
    return this.#previous === null ? [this.#current] : [this.#current, this.#previous.key];
  }
}

/** A fixed key, or a ring that changes on reload. */
export type VerificationKeys = Buffer | KeyRing;

export function acceptedKeys(keys: VerificationKeys): readonly Buffer[] {
  return keys instanceof KeyRing ? keys.accepted() : [keys];
}
