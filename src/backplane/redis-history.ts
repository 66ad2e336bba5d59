/**
 * History in Redis, where the whole cluster numbers each library's events: one script takes the
 * next offset, appends the message to the library's capped stream (entry id = offset, so a replay
 * is an XRANGE) and publishes it, atomically, so every node sees the order the history holds.
 * Marks at an offset (`unshared`: accepted alone while cut off; `lost`: missing on a promoted
 * replica) make a client whose position is before them resync; a Redis flushed or restarted
 * empty loses the epoch, and old positions get `epoch-changed`.
 */
import type { Cluster, Redis } from 'ioredis';

import { DEFAULT_HISTORY_LIMITS, judgeRecovery, type EventHistory, type HistoryLimits, type HistoryRead, type HistorySnapshot } from '../history/event-history.js';
import { newEpoch, type Position } from '../history/position.js';
import type { Logger } from '../log.js';
import type { LibraryEvent } from '../protocol/event.js';
import { BackplaneMessageError, decodeBackplaneMessage, openBackplaneHeader, type BackplaneMessage } from './backplane-message.js';

/**
 * Lua setting `epoch` and `offset` to the library's next position; `candidate`: the ARGV with a
 * new epoch. Offset 1 with the stream still there: the offset key alone was evicted, new epoch.
 */
function nextPosition(candidate: string): string {
  return `local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ${candidate}, 'NX')
  epoch = redis.call('GET', KEYS[1])
end
local offset = redis.call('INCR', KEYS[2])
if offset == 1 and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('DEL', KEYS[3])
  redis.call('SET', KEYS[1], ${candidate})
  epoch = ${candidate}
end
`;
}

/**
 * KEYS: epoch, offset, history. ARGV: channel, open header, frame, history size, ttl (ms),
 * epoch candidate, now (ms), PUBLISH or SPUBLISH. Returns {epoch, offset}.
 */
const NUMBER_AND_PUBLISH = `
${nextPosition('ARGV[6]')}local message = ARGV[2] .. ',"offset":' .. offset .. ',"epoch":"' .. epoch .. '"}\\n' .. ARGV[3]
if tonumber(ARGV[4]) > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], offset .. '-0', 't', ARGV[7], 'm', message)
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
redis.call(ARGV[8], ARGV[1], message)
return {epoch, offset}
`;

/**
 * KEYS: epoch, offset, history. ARGV: history size, ttl (ms), epoch candidate, now (ms). Takes
 * an offset for the events accepted alone and marks it `unshared`. Returns {epoch, offset}.
 */
const MARK_UNSHARED = `
${nextPosition('ARGV[3]')}if tonumber(ARGV[1]) > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], offset .. '-0', 't', ARGV[4], 'unshared', '1')
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return {epoch, offset}
`;

/**
 * KEYS: epoch, offset, history. ARGV: epoch candidate, first offset wanted ('' for none), count.
 * Returns {epoch, top, entries}: entries as XRANGE gives them.
 */
const READ_HISTORY = `
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1], 'NX')
  epoch = redis.call('GET', KEYS[1])
end
local top = tonumber(redis.call('GET', KEYS[2]) or '0')
local entries = {}
if ARGV[2] ~= '' then
  entries = redis.call('XRANGE', KEYS[3], ARGV[2] .. '-0', '+', 'COUNT', ARGV[3])
end
return {epoch, top, entries}
`;

/**
 * KEYS: epoch, offset, history. ARGV: the epoch and offset a node last saw, history size, ttl (ms),
 * now (ms). Same epoch but an older offset (offsets would be given out again): raises it past the
 * seen one, marked `lost`, and returns 1; else 0.
 */
const RECONCILE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local top = tonumber(redis.call('GET', KEYS[2]) or '0')
local seen = tonumber(ARGV[2])
if top >= seen then return 0 end
local mark = seen + 1
redis.call('SET', KEYS[2], mark)
if tonumber(ARGV[3]) > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], mark .. '-0', 't', ARGV[5], 'lost', tostring(top))
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
return 1
`;

interface HistoryCommands {
  notificationNumberAndPublish(...args: Array<string | Buffer | number>): Promise<[string, number]>;
  notificationMarkUnshared(...args: Array<string | Buffer | number>): Promise<[string, number]>;
  notificationReconcile(...args: Array<string | Buffer | number>): Promise<number>;
  notificationReadHistoryBuffer(...args: Array<string | Buffer | number>): Promise<[Buffer, number, Array<[Buffer, Buffer[]]>]>;
}

function commands(redis: Redis | Cluster): HistoryCommands {
  return redis as unknown as HistoryCommands;
}

/** Where each library's keys and events go: one set for all (one Redis, Sentinel), or one per lane (Redis Cluster). */
export interface KeyLayout {
  readonly lanes: number;
  laneOf(repoId: string): number;
  /** The lane's key prefix, ending with `:`. */
  prefix(lane: number): string;
  channel(lane: number): string;
  /** Where nodes tell each other of gaps. */
  readonly gapChannel: string;
  /** Sharded pub/sub (SPUBLISH, SSUBSCRIBE): Redis Cluster. */
  readonly sharded: boolean;
}

/** Enough lanes that the shards of a cluster get close to equal shares; each is one channel every node subscribes. */
const CLUSTER_LANES = 256;

export function singleLayout(channel: string, keyPrefix: string): KeyLayout {
  return { lanes: 1, laneOf: () => 0, prefix: () => keyPrefix, channel: () => channel, gapChannel: `${channel}:gaps`, sharded: false };
}

/** `tag`: the deployment's. A script's keys must share a slot, so each lane has its own hash tag. */
export function clusterLayout(tag: string): KeyLayout {
  return {
    lanes: CLUSTER_LANES,
    laneOf: (repoId) => fnv1a(repoId) % CLUSTER_LANES,
    prefix: (lane) => `seafile-notification:{${tag}:${lane}}:`,
    channel: (lane) => `seafile-notification:{${tag}:${lane}}:events`,
    gapChannel: `seafile-notification:{${tag}}:gaps`,
    sharded: true,
  };
}

/** A stable spread of library ids (any string) over lanes, the same on every node. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** The keys of one library; the epoch is its lane's. The offset never expires: offsets never restart. */
function keysOf(layout: KeyLayout, repoId: string, lane = layout.laneOf(repoId)): [string, string, string] {
  const prefix = layout.prefix(lane);
  return [`${prefix}epoch`, `${prefix}offset:${repoId}`, `${prefix}history:${repoId}`];
}

export class RedisHistory implements EventHistory {
  /** Teaches `redis` the scripts (sent once, then called by their SHA). */
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly layout: KeyLayout,
    private readonly logger: Logger,
    readonly limits: HistoryLimits = DEFAULT_HISTORY_LIMITS,
  ) {
    redis.defineCommand('notificationNumberAndPublish', { numberOfKeys: 3, lua: NUMBER_AND_PUBLISH });
    redis.defineCommand('notificationReadHistory', { numberOfKeys: 3, lua: READ_HISTORY });
    redis.defineCommand('notificationMarkUnshared', { numberOfKeys: 3, lua: MARK_UNSHARED });
    redis.defineCommand('notificationReconcile', { numberOfKeys: 3, lua: RECONCILE });
  }

  /** Numbers the event, keeps it and publishes it to every node (this one included), in one step. */
  async numberAndPublish(message: BackplaneMessage): Promise<Position> {
    const { redis, layout, limits } = this;
    const lane = layout.laneOf(message.event.repoId);
    const [epoch, offset] = await commands(redis).notificationNumberAndPublish(
      ...keysOf(layout, message.event.repoId, lane),
      layout.channel(lane),
      openBackplaneHeader(message.event, message),
      message.event.frame,
      limits.size,
      limits.ttlMs,
      newEpoch(),
      Date.now(),
      layout.sharded ? 'SPUBLISH' : 'PUBLISH',
    );
    return { epoch, offset: Number(offset) };
  }

  /** Marks the events accepted alone while cut off; `all` (too many to name): a new epoch tells all. */
  async markUnshared(repoIds: ReadonlySet<string> | 'all'): Promise<void> {
    const { redis, layout, limits } = this;
    if (repoIds === 'all') {
      await Promise.all(Array.from({ length: layout.lanes }, (_, lane) => redis.set(`${layout.prefix(lane)}epoch`, newEpoch())));
      return;
    }
    await Promise.all(
      [...repoIds].map((repoId) =>
        commands(redis).notificationMarkUnshared(...keysOf(layout, repoId), limits.size, limits.ttlMs, newEpoch(), Date.now()),
      ),
    );
  }

  /** After a failover: marks lost the libraries whose seen offset Redis no longer reaches; returns them. */
  async reconcile(seen: ReadonlyMap<string, Position>): Promise<Set<string>> {
    const { redis, layout, limits } = this;
    const replies = await inBatches(seen, CHANGED_BATCH, ([repoId, position]) =>
      commands(redis).notificationReconcile(...keysOf(layout, repoId), position.epoch, position.offset, limits.size, limits.ttlMs, Date.now()),
    );
    return new Set(replies.filter(([, marked]) => Number(marked) === 1).map(([[repoId]]) => repoId));
  }

  /** Each lane's current epoch (drawn now if Redis has none). Rejects when any does not answer (a shard is down). */
  async epochs(): Promise<string[]> {
    const { redis, layout } = this;
    return Promise.all(
      Array.from({ length: layout.lanes }, async (_, lane) => {
        const [epoch] = await commands(redis).notificationReadHistoryBuffer(...keysOf(layout, '', lane), newEpoch(), '', 1);
        return epoch.toString();
      }),
    );
  }

  /** Which of `repoIds` have an event in their history stamped at or after `sinceMs`. */
  async changedSince(repoIds: Iterable<string>, sinceMs: number): Promise<Set<string>> {
    const { redis, layout } = this;
    const replies = await inBatches(repoIds, CHANGED_BATCH, (repoId) => redis.xrevrange(keysOf(layout, repoId)[2], '+', '-', 'COUNT', 1));
    const changed = new Set<string>();
    for (const [repoId, [newest]] of replies) {
      const t = newest?.[1].indexOf('t') ?? -1;
      if (t >= 0 && Number(newest![1][t + 1]) >= sinceMs) changed.add(repoId);
    }
    return changed;
  }

  async read(repoId: string, since: Position | null): Promise<HistoryRead> {
    const read = await this.#readEntries(repoId, since);
    if (read === null) return { kind: 'resync', reason: 'history-unavailable', position: null };
    return judgeRecovery(read.snapshot, since);
  }

  /** The messages after `since`, as published (with origin and sequence); null unless the history has all. */
  async missedMessages(repoId: string, since: Position): Promise<BackplaneMessage[] | null> {
    const read = await this.#readEntries(repoId, since);
    if (read === null || judgeRecovery(read.snapshot, since).kind !== 'recovered') return null;
    return read.messages.filter((message) => (message.event.position?.offset ?? 0) > since.offset);
  }

  async #readEntries(repoId: string, since: Position | null): Promise<{ snapshot: HistorySnapshot; messages: BackplaneMessage[] } | null> {
    const { redis, layout, limits, logger } = this;
    const from = since === null ? '' : String(since.offset + 1);
    let reply;
    try {
      // One more than history_size can hold: more than that missed is gone anyway.
      reply = await commands(redis).notificationReadHistoryBuffer(...keysOf(layout, repoId), newEpoch(), from, limits.size + 1);
    } catch (err) {
      logger.debug({ err, repoId }, 'history: Redis did not answer a read');
      return null;
    }
    const [epochBytes, top, entries] = reply;
    const oldest = Date.now() - limits.ttlMs;
    const messages: BackplaneMessage[] = [];
    const unshared: number[] = [];
    const lost: number[] = [];
    for (const [id, fields] of entries) {
      const entry = fieldsOf(fields);
      const mark = entry.has('lost') ? lost : entry.has('unshared') ? unshared : null;
      if (mark !== null) {
        mark.push(Number(id.toString().split('-')[0]));
        continue;
      }
      const at = Number(entry.get('t')?.toString() ?? '0');
      const bytes = entry.get('m');
      if (bytes === undefined || at <= oldest) continue;
      try {
        messages.push(decodeBackplaneMessage(bytes));
      } catch (err) {
        if (!(err instanceof BackplaneMessageError)) throw err;
        logger.warn({ repoId, reason: err.message }, 'history: an entry that is not ours to read was skipped');
      }
    }
    const events = messages.map((message) => message.event);
    return { snapshot: { epoch: epochBytes.toString(), top: Number(top), events, unshared, lost }, messages };
  }
}

/** Libraries whose history is read at once when looking for changes. */
const CHANGED_BATCH = 1000;

/** `ask` for every item, `size` at a time; not a pipeline: on a cluster the libraries' keys are on several shards. */
export async function inBatches<T, R>(items: Iterable<T>, size: number, ask: (item: T) => Promise<R>): Promise<Array<[T, R]>> {
  const all = [...items];
  const answers: Array<[T, R]> = [];
  for (let i = 0; i < all.length; i += size) {
    const batch = all.slice(i, i + size);
    const replies = await Promise.all(batch.map(ask));
    batch.forEach((item, j) => answers.push([item, replies[j]!]));
  }
  return answers;
}

function fieldsOf(flat: Buffer[]): Map<string, Buffer> {
  const map = new Map<string, Buffer>();
  for (let i = 0; i + 1 < flat.length; i += 2) map.set(flat[i]!.toString(), flat[i + 1]!);
  return map;
}
