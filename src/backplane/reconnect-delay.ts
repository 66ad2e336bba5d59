/** Reconnect backoff: doubling from `baseMs`, capped at `maxMs`, each delay jittered down to half so nodes do not retry in step. */
export interface ReconnectPolicy {
  baseMs: number;
  maxMs: number;
}

const DEFAULT_RECONNECT_POLICY: ReconnectPolicy = { baseMs: 100, maxMs: 5_000 };

/** The delay before reconnect attempt `attempt` (1, 2, ...); `random` returns [0, 1). */
export function reconnectDelay(attempt: number, policy: ReconnectPolicy = DEFAULT_RECONNECT_POLICY, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempt, 1) - 1, 30);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
