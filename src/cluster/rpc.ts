/**
 * How the processes of one server ask each other over Node's IPC channel. Every question carries
 * an id and is waited for a bounded time, so a hung or dead process never hangs the one asking;
 * an answer to a question no longer waited for is ignored.
 */

/** Questions asked one at a time, each answered once, by id. */
export class PendingQuestions<Answer> {
  readonly #waiting = new Map<number, (answer: Answer) => void>();
  #nextId = 0;

  /** Sends the question under a new id; settles with its answer, or with `unanswered` after `waitMs`. */
  ask(send: (id: number) => void, waitMs: number, unanswered: Answer): Promise<Answer> {
    const id = ++this.#nextId;
    return new Promise<Answer>((resolve) => {
      const settle = (answer: Answer): void => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        resolve(answer);
      };
      const timer = setTimeout(() => settle(unanswered), waitMs);
      this.#waiting.set(id, settle);
      send(id);
    });
  }

  answered(id: number, answer: Answer): void {
    this.#waiting.get(id)?.(answer);
  }

  /** Settles every question still waiting with `answer`: the channel is gone. */
  settleAll(answer: Answer): void {
    for (const settle of [...this.#waiting.values()]) settle(answer);
  }
}

/** What a question to many peers came to: the answers given, and who did not answer in time. */
export interface Collected<Peer, Answer> {
  answers: Answer[];
  /** Empty when every peer answered or went away. */
  late: ReadonlySet<Peer>;
}

/** One question to many peers at once, answered by each; a peer that goes away is no longer waited for. */
export class BroadcastQuestions<Peer, Answer> {
  readonly #rounds = new Map<number, { waiting: Set<Peer>; answers: Answer[]; done: () => void }>();
  #nextId = 0;

  /** Sends the question to every peer under one new id; settles once all answered or left, or after `waitMs`. */
  ask(peers: Iterable<Peer>, send: (peer: Peer, id: number) => void, waitMs: number): Promise<Collected<Peer, Answer>> {
    const id = ++this.#nextId;
    const waiting = new Set(peers);
    const answers: Answer[] = [];
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#rounds.delete(id);
        resolve({ answers, late: waiting });
      };
      const timer = setTimeout(done, waitMs);
      this.#rounds.set(id, { waiting, answers, done });
      for (const peer of waiting) send(peer, id);
      if (waiting.size === 0) done();
    });
  }

  answered(peer: Peer, id: number, answer: Answer): void {
    const round = this.#rounds.get(id);
    if (round === undefined || !round.waiting.delete(peer)) return;
    round.answers.push(answer);
    if (round.waiting.size === 0) round.done();
  }

  /** A peer that died will not answer. */
  gone(peer: Peer): void {
    for (const round of [...this.#rounds.values()]) if (round.waiting.delete(peer) && round.waiting.size === 0) round.done();
  }
}
