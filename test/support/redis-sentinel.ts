/**
 * A throwaway Redis with Sentinel: one primary, one replica, three sentinels, on loopback, with
 * short timeouts so that a failover takes a second or two. The replica replicates through a
 * CuttableLink, so a test can make it lag behind the primary (as over a slow or cut network)
 * and then kill the primary: the promotion loses what the replica never received.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CuttableLink } from './cuttable-link.js';
import { findBinary, freeLoopbackPort, ServerBinaryMissingError } from './databases.js';
import { isCi } from './env.js';
import { selfSignedCertificate } from './redis.js';
import { pollRedis as poll, RedisProcesses, untilReplicaCaughtUp, type ClientOptions } from './redis-processes.js';

export const MASTER_NAME = 'notify-primary';
/** Sentinel's own timing: down after this much silence, and no second failover within the test. */
const DOWN_AFTER_MS = 600;
const FAILOVER_TIMEOUT_MS = 120_000;

export interface SentinelOptions {
  /** TLS only, everywhere (clients, replication, sentinels), with a self-signed certificate in `caFile`. */
  tls?: boolean;
  /**
   * ACL users: on the primary and replica `notify` (the documented least-privilege user, password
   * `notify-pw`), and on the sentinels `watch` (password `watch-pw`, the documented
   * least-privilege user for nodes); the default users are off.
   */
  acl?: boolean;
}

/** The least-privilege user docs/cluster.md documents, as an ACL file line. */
const NOTIFY_USER =
  'user notify on >notify-pw resetchannels &seafile-notification:* resetkeys ~seafile-notification:* -@all ' +
  '+publish +subscribe +ping +hello +info +client|setname +evalsha +eval +get +set +incr +exists +del +xadd +pexpire +xrange +xrevrange';
/** What a sentinel needs on the primary and replicas (Redis's Sentinel documentation). */
const SENTINEL_ON_REDIS_USER =
  'user sentinel on >sentinel-pw allchannels +multi +slaveof +ping +exec +subscribe +config|rewrite +role +publish +info +client|setname +client|kill +script|kill';
const REPLICATION_USER = 'user repl on >repl-pw +psync +replconf +ping';
/** Sentinels talking to each other. */
const PEER_USER = 'user peer on >peer-pw allchannels +@all';
/** What a node needs on a sentinel, as docs/cluster.md documents it: where the primary is, the other sentinels, failover announcements. */
const WATCH_USER = 'user watch on >watch-pw resetchannels &+switch-master -@all +sentinel|get-master-addr-by-name +sentinel|sentinels +subscribe +ping +client|setname';

export interface SentinelTopology {
  /** The certificate to trust (NODE_EXTRA_CA_CERTS) with `tls`. */
  readonly caFile: string | null;
  /** `redis+sentinel://127.0.0.1:<s1>,127.0.0.1:<s2>,127.0.0.1:<s3>/notify-primary` */
  readonly url: string;
  readonly primaryPort: number;
  /** The primary's process, for its CPU time in the bench. */
  readonly primaryPid: number;
  readonly replicaPort: number;
  /**
   * Waits until the replica has everything the primary took, then cuts its link: what the
   * primary takes from now on, a promotion of the replica loses.
   */
  detachReplica(): Promise<void>;
  /** SIGKILL the primary, as in a crash. */
  killPrimary(): Promise<void>;
  /** `SENTINEL FAILOVER`: an admin's switch to the replica, the old primary staying up. */
  failover(): Promise<void>;
  /** Resolves with the new primary's port once every sentinel names one other than `oldPort`. */
  waitForPromotion(oldPort: number, timeoutMs: number): Promise<number>;
  stop(): Promise<void>;
}

/** The sentinel binary: `redis-sentinel`, or `redis-server` run with `--sentinel`. */
function sentinelCommand(): string[] {
  try {
    return [findBinary(['redis-sentinel'], [], 'redis-sentinel')];
  } catch (error) {
    if (!(error instanceof ServerBinaryMissingError)) throw error;
    return [findBinary(['redis-server'], [], 'redis-server'), '--sentinel'];
  }
}

/** Why Sentinel tests must be skipped here, or null; under CI=true a missing binary is a failure. */
export function sentinelSkipReason(): string | null {
  try {
    findBinary(['redis-server'], [], 'redis-server');
    sentinelCommand();
    return null;
  } catch (error) {
    if (!(error instanceof ServerBinaryMissingError)) throw error;
    if (isCi()) throw new Error(`${error.message}; CI=true requires every Redis Sentinel test to run`);
    return error.message;
  }
}

export async function startSentinelTopology(options: SentinelOptions = {}): Promise<SentinelTopology> {
  const server = findBinary(['redis-server'], [], 'redis-server');
  const dir = await mkdtemp(join(tmpdir(), 'notif-test-sentinel-'));
  const cert = options.tls === true ? await selfSignedCertificate(dir) : null;
  const acl = options.acl === true;
  const redisAuth = acl ? { username: 'sentinel', password: 'sentinel-pw' } : {};
  const sentinelAuth = acl ? { username: 'peer', password: 'peer-pw' } : {};
  const tlsClient = cert === null ? {} : { tls: { ca: readFileSync(cert.cert) } };
  const redisClient = { ...redisAuth, ...tlsClient };
  /** `--port` or, with TLS, `--tls-port` and the certificate. */
  const listen = (port: number): string[] =>
    cert === null
      ? ['--port', String(port)]
      : ['--port', '0', '--tls-port', String(port), '--tls-cert-file', cert.cert, '--tls-key-file', cert.key, '--tls-ca-cert-file', cert.cert, '--tls-auth-clients', 'no', '--tls-replication', 'yes'];
  const aclArgs: string[] = [];
  if (acl) {
    const aclFile = join(dir, 'users.acl');
    await writeFile(aclFile, ['user default off', NOTIFY_USER, SENTINEL_ON_REDIS_USER, REPLICATION_USER, ''].join('\n'));
    aclArgs.push('--aclfile', aclFile, '--masteruser', 'repl', '--masterauth', 'repl-pw');
  }
  const processes = new RedisProcesses(dir, cert?.cert ?? null);
  let link: CuttableLink | null = null;
  const launch = processes.launch.bind(processes);
  const stopAll = async (): Promise<void> => {
    await link?.close();
    await processes.stopAll();
  };
  try {
    const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', '0'];
    const primaryPort = await freeLoopbackPort();
    const primary = await launch('primary', [server, ...common, ...listen(primaryPort), ...aclArgs, '--dir', dir, '--dbfilename', 'primary.rdb'], primaryPort);
    link = await CuttableLink.open(primaryPort);
    const replicaPort = await freeLoopbackPort();
    await launch(
      'replica',
      [server, ...common, ...listen(replicaPort), ...aclArgs, '--dir', dir, '--dbfilename', 'replica.rdb', '--replicaof', '127.0.0.1', String(link.port), '--repl-diskless-load', 'on-empty-db'],
      replicaPort,
    );
    await untilReplicating(replicaPort, redisClient);
    const sentinelPorts: number[] = [];
    for (let i = 1; i <= 3; i++) {
      const port = await freeLoopbackPort();
      const conf = join(dir, `sentinel-${i}.conf`);
      const sentinelTls =
        cert === null
          ? [`port ${port}`]
          : ['port 0', `tls-port ${port}`, `tls-cert-file ${cert.cert}`, `tls-key-file ${cert.key}`, `tls-ca-cert-file ${cert.cert}`, 'tls-auth-clients no', 'tls-replication yes'];
      const sentinelAcl = acl
        ? ['user default off', PEER_USER, WATCH_USER, 'sentinel sentinel-user peer', 'sentinel sentinel-pass peer-pw']
        : [];
      const sentinelOnRedis = acl ? [`sentinel auth-user ${MASTER_NAME} sentinel`, `sentinel auth-pass ${MASTER_NAME} sentinel-pw`] : [];
      await writeFile(
        conf,
        [
          ...sentinelTls,
          ...sentinelAcl,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${MASTER_NAME} ${DOWN_AFTER_MS}`,
          `sentinel failover-timeout ${MASTER_NAME} ${FAILOVER_TIMEOUT_MS}`,
          `sentinel parallel-syncs ${MASTER_NAME} 1`,
          ...sentinelOnRedis,
          '',
        ].join('\n'),
      );
      await launch(`sentinel-${i}`, [...sentinelCommand(), conf], port);
      sentinelPorts.push(port);
    }
    const sentinelClient = { ...sentinelAuth, ...tlsClient };
    await untilSentinelsKnowEachOther(sentinelPorts, sentinelClient);
    const replicationLink = link;
    const scheme = cert === null ? 'redis+sentinel' : 'rediss+sentinel';
    const credentials = acl ? 'notify:notify-pw@' : '';
    const query = acl ? '?sentinel_username=watch&sentinel_password=watch-pw' : '';
    return {
      caFile: cert?.cert ?? null,
      url: `${scheme}://${credentials}${sentinelPorts.map((port) => `127.0.0.1:${port}`).join(',')}/${MASTER_NAME}${query}`,
      primaryPort,
      primaryPid: primary.child.pid!,
      replicaPort,
      detachReplica: async () => {
        await untilReplicaCaughtUp(primaryPort, replicaPort, redisClient);
        replicationLink.cut();
      },
      killPrimary: () => primary.kill(),
      failover: () => poll(sentinelPorts[0]!, sentinelClient, async (redis) => (await redis.call('SENTINEL', 'FAILOVER', MASTER_NAME)) === 'OK', 'the sentinel to start a failover'),
      waitForPromotion: (oldPort, timeoutMs) => untilPromoted(sentinelPorts, oldPort, timeoutMs, sentinelClient),
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

async function untilReplicating(replicaPort: number, client: ClientOptions): Promise<void> {
  await poll(replicaPort, client, async (redis) => /master_link_status:up/.test(await redis.info('replication')), 'the replica to sync with the primary');
}

/** A sentinel counts votes only from sentinels it knows: they find each other over the primary every 2 s. */
async function untilSentinelsKnowEachOther(ports: number[], client: ClientOptions): Promise<void> {
  for (const port of ports) {
    await poll(
      port,
      client,
      async (redis) => {
        const fields = (await redis.call('SENTINEL', 'MASTER', MASTER_NAME)) as string[];
        const value = (key: string): number => Number(fields[fields.indexOf(key) + 1]);
        return value('num-other-sentinels') === ports.length - 1 && value('num-slaves') === 1;
      },
      'the sentinels to find each other and the replica',
    );
  }
}

async function untilPromoted(sentinelPorts: number[], oldPort: number, timeoutMs: number, client: ClientOptions): Promise<number> {
  let newPort = 0;
  for (const port of sentinelPorts) {
    await poll(
      port,
      client,
      async (redis) => {
        const address = (await redis.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME)) as [string, string] | null;
        newPort = Number(address?.[1] ?? oldPort);
        return newPort !== oldPort;
      },
      'a sentinel to name the promoted replica',
      timeoutMs,
    );
  }
  return newPort;
}
