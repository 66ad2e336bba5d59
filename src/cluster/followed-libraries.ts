/**
 * The cluster primary's question to its workers after a Redis outage: which libraries do your
 * subscribers follow? The union decides which libraries had events the workers missed. A
 * worker that does not answer in time makes the question fail, and the gap is then `all`:
 * better to refresh too many desktop clients than to leave some with a wrong lock state.
 */
import type { Worker } from 'node:cluster';
import type { PrimaryMessage } from '../backplane/cluster-messages.js';
import { BroadcastQuestions } from './rpc.js';

const ANSWER_WAIT_MS = 5_000;

export class FollowedLibrariesQuery {
  readonly #questions = new BroadcastQuestions<Worker, readonly string[]>();

  constructor(private readonly workers: () => Iterable<Worker>) {}

  async ask(): Promise<Set<string>> {
    const connected = [...this.workers()].filter((worker) => worker.isConnected());
    const { answers, late } = await this.#questions.ask(connected, (worker, id) => worker.send({ nsw: 'followed?', id } satisfies PrimaryMessage), ANSWER_WAIT_MS);
    if (late.size > 0) throw new Error(`${late.size} worker(s) did not say which libraries they follow`);
    return new Set(answers.flat());
  }

  answered(worker: Worker, id: number, libraries: readonly string[]): void {
    this.#questions.answered(worker, id, libraries);
  }

  /** A worker that died has no subscribers left to ask about. */
  gone(worker: Worker): void {
    this.#questions.gone(worker);
  }
}
