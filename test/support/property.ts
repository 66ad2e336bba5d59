/**
 * How the property tests run fast-check: a fixed seed by default, so `npm test` is
 * deterministic, and a bounded number of runs, so each file takes a few seconds.
 * fast-check prints the seed and the shrunk counterexample of a failure; replay it with
 * FAST_CHECK_SEED=<seed>, or explore new inputs with FAST_CHECK_SEED=random and
 * FAST_CHECK_RUNS_FACTOR=10.
 */
import fc from 'fast-check';

const seedText = process.env['FAST_CHECK_SEED'];
const seed = seedText === 'random' ? Date.now() ^ (Math.random() * 0x100000000) : Number(seedText ?? 20261126);
const factor = Number(process.env['FAST_CHECK_RUNS_FACTOR'] ?? 1);

/** Runs a property `numRuns` times (times FAST_CHECK_RUNS_FACTOR); throws fast-check's report on failure. */
export function check<Ts extends [unknown, ...unknown[]]>(property: fc.IProperty<Ts>, numRuns: number): void {
  fc.assert(property, { numRuns: Math.max(1, Math.round(numRuns * factor)), seed, endOnFailure: false });
}

/** The same for properties whose predicate returns a promise. */
export async function checkAsync<Ts extends [unknown, ...unknown[]]>(property: fc.IAsyncProperty<Ts>, numRuns: number): Promise<void> {
  await fc.assert(property, { numRuns: Math.max(1, Math.round(numRuns * factor)), seed });
}

/** Calls `fn` and returns its result, or the error it threw. */
export function outcome<T>(fn: () => T): { ok: true; value: T } | { ok: false; error: unknown } {
  try {
    return { ok: true, value: fn() };
  } catch (error) {
    return { ok: false, error };
  }
}
