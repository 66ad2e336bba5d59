import { createHmac, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

import type { BackplaneConfig } from '../config/config.js';
import { DEFAULT_HISTORY_LIMITS, type HistoryLimits } from '../history/event-history.js';
import type { Logger } from '../log.js';
import type { Backplane } from './backplane.js';
import { IpcBackplane, type PrimaryChannel } from './ipc-backplane.js';
import { MemoryBackplane } from './memory-backplane.js';
import { RedisBackplane } from './redis-backplane.js';

export interface OpenBackplaneInput {
  /** The JWT key: nodes of one deployment share it, so it names their channel. */
  key: Buffer;
  logger: Logger;
  /** How much each library's history keeps (`history_size`, `history_ttl`). */
  history?: HistoryLimits;
  /** In a cluster worker: events travel through the primary, which runs the configured backplane. */
  viaPrimary?: ViaPrimary;
}

/** A cluster worker's way to its primary. */
export interface ViaPrimary {
  workerId: number;
  channel: PrimaryChannel;
}

export function openBackplane(config: BackplaneConfig, input: OpenBackplaneInput): Backplane {
  // Host, process and a random part: a restarted process is a new node, even with the same pid.
  const nodeId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  if (input.viaPrimary !== undefined) return new IpcBackplane({ nodeId, channel: input.viaPrimary.channel });
  switch (config.kind) {
    case 'memory':
      return new MemoryBackplane(nodeId, input.history ?? DEFAULT_HISTORY_LIMITS);
    case 'redis':
      return new RedisBackplane({
        connection: config.connection,
        displayUrl: config.displayUrl,
        timeoutMs: config.timeoutMs,
        hold: { ms: config.holdMs, bytes: config.holdBytes },
        channel: backplaneChannel(input.key),
        history: input.history ?? DEFAULT_HISTORY_LIMITS,
        nodeId,
        logger: input.logger,
      });
    default: {
      const unknownKind: never = config;
      throw new Error(`unknown backplane kind: ${JSON.stringify(unknownKind)}`);
    }
  }
}

/**
 * Pub/sub channels span every database of a Redis server: two deployments on one must not meet,
 * so the name derives from the key they do not share (an HMAC tells nothing about the key).
 */
export function backplaneChannel(key: Buffer): string {
  const tag = createHmac('sha256', key).update('seafile-notification-server backplane channel').digest('hex').slice(0, 16);
  return `seafile-notification:events:${tag}`;
}
