/**
 * The status page for the whole server under `workers` > 1 (docs/metrics.md): the worker holding
 * the page's feed merges its own second with the other workers' shares. Levels, tail recipients
 * and the busiest libraries' subscribers are summed (tail entries matched by position; one
 * without keeps this worker's count). Event counts are this worker's own: every worker receives
 * every event. Latency is the slowest worker's: an event reaches its last subscriber when that
 * worker is done. The workers' seconds are not aligned, up to a second apart.
 */
import type { StatusShare } from '../cluster/whole-server-figures.js';
import type { BusyLibrary, StatusPoint, StatusSnapshot, StatusUpdate, TailEntry } from './live-status.js';

export interface WorkersAnswered {
  /** Workers whose figures are in, this one included. */
  answered: number;
  /** Workers configured. */
  expected: number;
}

function addPoint(own: StatusPoint, other: StatusPoint | undefined): StatusPoint {
  if (other === undefined) return own;
  const slowest = (a: number | null, b: number | null): number | null => (a === null ? b : b === null ? a : Math.max(a, b));
  return {
    ...own,
    connections: own.connections + other.connections,
    subscriptions: own.subscriptions + other.subscriptions,
    libraries: own.libraries + other.libraries,
    latencyP50Ms: slowest(own.latencyP50Ms, other.latencyP50Ms),
    latencyP99Ms: slowest(own.latencyP99Ms, other.latencyP99Ms),
  };
}

function eventKey(entry: TailEntry): string | null {
  return entry.position === undefined ? null : `${entry.repoId} ${entry.position.epoch} ${entry.position.offset}`;
}

function addRecipients(tail: readonly TailEntry[], others: readonly StatusShare[]): TailEntry[] {
  const elsewhere = new Map<string, number>();
  for (const share of others) {
    for (const entry of share.tail) {
      const key = eventKey(entry);
      if (key !== null) elsewhere.set(key, (elsewhere.get(key) ?? 0) + entry.recipients);
    }
  }
  return tail.map((entry) => {
    const key = eventKey(entry);
    return key === null ? entry : { ...entry, recipients: entry.recipients + (elsewhere.get(key) ?? 0) };
  });
}

function addSubscribers(busiest: readonly BusyLibrary[], others: readonly StatusShare[]): BusyLibrary[] {
  const elsewhere = new Map<string, number>();
  for (const share of others) for (const [repoId, n] of share.followers) elsewhere.set(repoId, (elsewhere.get(repoId) ?? 0) + n);
  return busiest.map((library) => ({ ...library, subscribers: library.subscribers + (elsewhere.get(library.repoId) ?? 0) }));
}

/** This worker's history with the other workers', second by second counted from the latest. */
function mergeSnapshot(own: StatusSnapshot, others: readonly StatusShare[]): StatusSnapshot {
  const points = own.points.map((point, i) =>
    others.reduce((merged, share) => addPoint(merged, share.points.at(i - own.points.length)), point),
  );
  return { points, tail: addRecipients(own.tail, others), busiest: addSubscribers(own.busiest, others) };
}

/** This worker's closed second with the other workers' latest ones. */
export function mergeUpdate(own: StatusUpdate, others: readonly StatusShare[]): StatusUpdate {
  const { points, tail, busiest } = mergeSnapshot({ points: [own.point], tail: own.tail, busiest: own.busiest }, others);
  return { point: points[0]!, tail, busiest };
}

/** Turns this worker's status into the whole server's, asking the other workers each time. */
export class WholeStatus {
  constructor(
    private readonly self: number,
    private readonly expected: number,
    /** Every worker's share (this one's included), or null when the primary did not answer. */
    private readonly gatherStatus: (points: number, repoIds: string[]) => Promise<StatusShare[] | null>,
  ) {}

  /** Closed seconds of this worker (oldest first), merged with one gathering of the others' latest. */
  async updates(own: readonly StatusUpdate[]): Promise<Array<StatusUpdate & { workers: WorkersAnswered }>> {
    const { others, workers } = await this.#others(1, own.at(-1)?.busiest ?? []);
    return own.map((second) => ({ ...mergeUpdate(second, others), workers }));
  }

  async snapshot(own: StatusSnapshot): Promise<StatusSnapshot & { workers: WorkersAnswered }> {
    const { others, workers } = await this.#others(own.points.length, own.busiest);
    return { ...mergeSnapshot(own, others), workers };
  }

  async #others(points: number, busiest: readonly BusyLibrary[]): Promise<{ others: StatusShare[]; workers: WorkersAnswered }> {
    const shares = await this.gatherStatus(points, busiest.map((library) => library.repoId));
    const others = (shares ?? []).filter((share) => share.worker !== this.self);
    return { others, workers: { answered: others.length + 1, expected: this.expected } };
  }
}
