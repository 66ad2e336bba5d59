/**
 * A throwaway Redis Cluster: three primaries with a replica each, on loopback, joined with
 * `redis-cli --cluster create`, with a short node timeout so that a failover takes a few
 * seconds, and `cluster-replica-validity-factor 0` so that a replica is promoted however long
 * its link was down.
 */
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBinary, freeLoopbackPort, ServerBinaryMissingError } from './databases.js';
import { isCi } from './env.js';
import { pollRedis, RedisProcesses, untilReplicaCaughtUp, type RedisProcess } from './redis-processes.js';

const NODE_TIMEOUT_MS = 1_500;

export interface ClusterShard {
  readonly primaryPort: number;
  readonly replicaPort: number;
}

export interface ClusterTopology {
  /** `redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>` */
  readonly url: string;
  readonly shards: readonly ClusterShard[];
  /** The primaries' processes, for their CPU time in the bench. */
  readonly primaryPids: readonly number[];
  /** The shard that serves `key` (a key or a sharded channel). */
  shardOf(key: string): Promise<ClusterShard>;
  /**
   * Waits until `shard`'s replica has everything its primary took, then stops it replicating
   * while the primary goes on taking writes: what the primary takes from now on, a promotion
   * of that replica loses.
   */
  detachReplica(shard: ClusterShard): Promise<void>;
  /** SIGKILL the primary at `port`, as in a crash. */
  killPrimary(port: number): Promise<void>;
  /** Resolves once the cluster is whole again with `shard`'s replica as its primary. */
  waitForPromotion(shard: ClusterShard, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

/** Why Cluster tests must be skipped here, or null; under CI=true a missing binary is a failure. */
export function clusterSkipReason(): string | null {
  try {
    findBinary(['redis-server'], [], 'redis-server');
    findBinary(['redis-cli'], [], 'redis-tools');
    return null;
  } catch (error) {
    if (!(error instanceof ServerBinaryMissingError)) throw error;
    if (isCi()) throw new Error(`${error.message}; CI=true requires every Redis Cluster test to run`);
    return error.message;
  }
}

export async function startRedisCluster(): Promise<ClusterTopology> {
  const server = findBinary(['redis-server'], [], 'redis-server');
  const cli = findBinary(['redis-cli'], [], 'redis-tools');
  const processes = new RedisProcesses(await mkdtemp(join(tmpdir(), 'notif-test-cluster-')));
  try {
    const ports: Array<[number, number]> = [];
    for (let i = 0; i < 6; i++) ports.push([await freeLoopbackPort(), await freeLoopbackPort()]);
    // Started together: one after the other, their start-up adds up to seconds on a loaded machine.
    const started: RedisProcess[] = await Promise.all(
      ports.map(([port, busPort]) => {
        const argv = [server, '--bind', '127.0.0.1', '--port', String(port), '--cluster-port', String(busPort), '--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', '0', '--dir', processes.dir];
        argv.push('--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', String(NODE_TIMEOUT_MS), '--cluster-replica-validity-factor', '0');
        return processes.launch(`node-${port}`, argv, port);
      }),
    );
    await new Promise<void>((resolve, reject) => {
      const args = ['--cluster', 'create', ...started.map((p) => `127.0.0.1:${p.port}`), '--cluster-replicas', '1', '--cluster-yes'];
      execFile(cli, args, { timeout: 60_000 }, (error, stdout) => (error === null ? resolve() : reject(new Error(`redis-cli --cluster create failed: ${error.message}\n${stdout}`))));
    });
    for (const p of started) await untilWhole(p.port, 20_000);
    const byPort = new Map(started.map((p) => [p.port, p]));
    // CLUSTER NODES names each replica's primary at once (CLUSTER SLOTS lists a replica only once
    // gossip has carried its offset, seconds later); each replica is then waited on until it replicates.
    const shards: ClusterShard[] = [];
    await pollRedis(started[0]!.port, {}, async (redis) => {
      const nodes = String(await redis.call('CLUSTER', 'NODES')).trim().split('\n').map((line) => line.split(' '));
      const portOf = (id: string): number => Number(/:(\d+)@/.exec(nodes.find((fields) => fields[0] === id)?.[1] ?? '')?.[1] ?? 0);
      shards.length = 0;
      for (const [, address, flags, primaryId] of nodes) {
        if (flags?.includes('slave') === true) shards.push({ primaryPort: portOf(primaryId!), replicaPort: Number(/:(\d+)@/.exec(address!)?.[1]) });
      }
      return shards.length === 3 && shards.every((shard) => shard.primaryPort > 0);
    }, 'every shard to have a replica');
    for (const shard of shards) {
      await pollRedis(shard.replicaPort, {}, async (redis) => /master_link_status:up/.test(await redis.info('replication')), 'the replica to replicate');
    }
    return {
      url: `redis+cluster://${shards.map((s) => `127.0.0.1:${s.primaryPort}`).join(',')}`,
      shards,
      primaryPids: shards.map((s) => byPort.get(s.primaryPort)!.child.pid!),
      shardOf: async (key) => {
        let slot = -1;
        await pollRedis(started[0]!.port, {}, async (redis) => (slot = Number(await redis.call('CLUSTER', 'KEYSLOT', key))) >= 0, 'the slot of a key');
        let primary = 0;
        await pollRedis(shards[0]!.primaryPort, {}, async (redis) => {
          const slots = (await redis.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
          primary = slots.find(([from, to]) => from <= slot && slot <= to)?.[2][1] ?? 0;
          return primary !== 0;
        }, 'the primary of a slot');
        return shards.find((s) => s.primaryPort === primary)!;
      },
      detachReplica: async (shard) => {
        await untilReplicaCaughtUp(shard.primaryPort, shard.replicaPort, {});
        // The replica reconnects at once; refused PSYNC, it stays behind while the primary answers everyone else.
        await pollRedis(shard.primaryPort, {}, async (redis) => {
          await redis.call('ACL', 'SETUSER', 'default', '-psync', '-sync');
          await redis.call('CLIENT', 'KILL', 'TYPE', 'replica');
          return true;
        }, 'the primary to drop its replica');
        await pollRedis(shard.replicaPort, {}, async (redis) => /master_link_status:down/.test(await redis.info('replication')), 'the replica to lose its primary');
      },
      killPrimary: (port) => byPort.get(port)!.kill(),
      waitForPromotion: (shard, timeoutMs) =>
        pollRedis(
          shard.replicaPort,
          {},
          async (redis) => /role:master/.test(await redis.info('replication')) && /cluster_state:ok/.test(String(await redis.call('CLUSTER', 'INFO'))),
          'the replica to be promoted and the cluster to be whole',
          timeoutMs,
        ),
      stop: () => processes.stopAll(),
    };
  } catch (error) {
    await processes.stopAll();
    throw error;
  }
}

async function untilWhole(port: number, timeoutMs: number): Promise<void> {
  await pollRedis(port, {}, async (redis) => {
    const info = String(await redis.call('CLUSTER', 'INFO'));
    return /cluster_state:ok/.test(info) && /cluster_known_nodes:6/.test(info);
  }, 'the cluster to be whole', timeoutMs);
}
