/**
 * The cluster primary's question to its workers after a Redis outage: which libraries do your
 * subscribers follow? The union decides which libraries had events the workers missed. A
 * worker that does not answer in time makes the question fail, and the gap is then `all`:
 * better to refresh too many desktop clients than to leave some with a wrong lock state.
 */
import type { Worker } from 'node:cluster';
import type { PrimaryMessage } from '../backplane/cluster-messages.js';

const ANSWER_WAIT_MS = 5_000;

interface Question {
  waiting: Set<Worker>;
  libraries: Set<string>;
  settle: (error: Error | null) => void;
}

export class FollowedLibrariesQuery {
  readonly #open = new Map<number, Question>();
  #nextId = 0;

  constructor(private readonly workers: () => Iterable<Worker>) {}

  ask(): Promise<Set<string>> {
    const id = ++this.#nextId;
    const waiting = new Set([...this.workers()].filter((worker) => worker.isConnected()));
    const libraries = new Set<string>();
    return new Promise<Set<string>>((resolve, reject) => {
      const timer = setTimeout(() => question.settle(new Error(`${question.waiting.size} worker(s) did not say which libraries they follow`)), ANSWER_WAIT_MS);
      const question: Question = {
        waiting,
        libraries,
        settle: (error) => {
          clearTimeout(timer);
          this.#open.delete(id);
          if (error === null) resolve(libraries);
          else reject(error);
        },
      };
      this.#open.set(id, question);
      for (const worker of waiting) worker.send({ nsw: 'followed?', id } satisfies PrimaryMessage);
      if (waiting.size === 0) question.settle(null);
    });
  }

  answered(worker: Worker, id: number, libraries: readonly string[]): void {
    const question = this.#open.get(id);
    if (question === undefined || !question.waiting.delete(worker)) return;
    for (const repoId of libraries) question.libraries.add(repoId);
    if (question.waiting.size === 0) question.settle(null);
  }

  /** A worker that died has no subscribers left to ask about. */
  gone(worker: Worker): void {
    for (const question of this.#open.values()) {
      if (question.waiting.delete(worker) && question.waiting.size === 0) question.settle(null);
    }
  }
}
