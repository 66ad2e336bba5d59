/**
 * `npm run bench:container [-- --connections N] [--starts N]`
 *
 * Builds the Dockerfile's image with podman (test/support/container-image.ts) and prints: the
 * image's size; the server's RSS idle and holding `--connections` (10,000) subscribed
 * WebSockets, in the container and as a bare process on the same Node.js (and on the Node.js
 * running this bench) under the same load; and the time from `podman run` to the first 200
 * on /ping. Needs root, podman, runc and debootstrap, like the container test.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { BASE_NODE_VERSION, buildImage, logsVolume, Podman, requireContainerTools, unpackBaseNode } from '../test/support/container-image.js';
import { freePort, ServerProcess, TEST_KEY } from '../test/support/server-process.js';
import { closeAll, LoadProcess, openSubscribers } from './load-processes.js';
import { readProcessUsage } from './process-usage.js';

const { values: options } = parseArgs({
  options: {
    connections: { type: 'string', default: '10000' },
    starts: { type: 'string', default: '3' },
    'load-processes': { type: 'string', default: '2' },
  },
});

function wholeNumber(name: keyof typeof options): number {
  const value = Number(options[name]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a whole number >= 1, got ${String(options[name])}`);
  return value;
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
const repos = Array.from({ length: 1000 }, (_, i) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`);

/** Polls /ping every 10 ms; resolves at the first 200. */
async function firstPong(port: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/ping`, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`no 200 on /ping within ${timeoutMs} ms`);
    await sleep(10);
  }
}

interface RunningContainer {
  name: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** `podman run` of the image as Seafile runs it, on the host's network, listening on a free loopback port. */
async function runContainer(podman: Podman, image: string, name: string, extra: string[] = []): Promise<RunningContainer & { startMs: number }> {
  const logs = await logsVolume();
  const port = await freePort();
  const started = performance.now();
  await podman.must([
    'run', '--detach', '--name', name,
    '--network', 'host',
    '--volume', `${logs}:/shared/seafile/logs`,
    '--env', `JWT_PRIVATE_KEY=${TEST_KEY}`,
    '--env', 'NOTIFICATION_SERVER_HOST=127.0.0.1',
    '--env', `NOTIFICATION_SERVER_PORT=${port}`,
    ...extra,
    image,
  ]);
  await firstPong(port);
  const startMs = performance.now() - started;
  const pid = Number((await podman.must(['inspect', '--format', '{{.State.Pid}}', name])).trim());
  return {
    name,
    port,
    pid,
    startMs,
    async stop() {
      await podman.run(['rm', '--force', '--time', '10', name], 60_000);
      await rm(logs, { recursive: true, force: true });
    },
  };
}

/** RSS idle, then with `total` subscribed connections, of the process `pid` listening on `port`. */
async function measureLoad(label: string, port: number, pid: number, total: number): Promise<void> {
  const loads = Array.from({ length: wholeNumber('load-processes') }, () => new LoadProcess());
  try {
    await sleep(2_000);
    const idle = readProcessUsage(pid).rssBytes;
    const openMs = await openSubscribers(`ws://127.0.0.1:${port}`, loads, total, repos, { key: TEST_KEY, client: 'lean' });
    await sleep(5_000);
    const loaded = readProcessUsage(pid);
    console.log(
      `  ${label.padEnd(34)} idle ${mib(idle).padStart(6)} MiB, with ${total} connections ${mib(loaded.rssBytes).padStart(6)} MiB ` +
        `(${((loaded.rssBytes - idle) / total / 1024).toFixed(2)} KiB each; opened in ${(openMs / 1000).toFixed(1)} s)`,
    );
    await closeAll(loads);
  } finally {
    for (const load of loads) load.stop();
  }
}

async function main(): Promise<void> {
  requireContainerTools();
  const cpu = cpus();
  console.log(`machine: ${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, bench on Node ${process.version}`);
  const total = wholeNumber('connections');
  const podman = await Podman.open();
  const image = `localhost/notification-server-bench:${process.pid}`;
  const nodeDir = await mkdtemp(join(tmpdir(), 'notif-bench-node-'));
  try {
    const built = await buildImage(podman, image);
    const base = built.base.builtSeconds === null ? 'reused' : `made in ${built.base.builtSeconds.toFixed(0)} s`;
    console.log(`image built in ${built.buildSeconds.toFixed(0)} s from the local base ${built.base.name} (${base}), Node ${BASE_NODE_VERSION}`);

    const size = async (name: string): Promise<number> => Number((await podman.must(['image', 'inspect', '--format', '{{.Size}}', name])).trim());
    const imageBytes = await size(image);
    const baseBytes = await size(built.base.name);
    console.log(`\nimage size: ${mib(imageBytes)} MiB; its base ${mib(baseBytes)} MiB, so the image's own layers ${mib(imageBytes - baseBytes)} MiB`);

    console.log(`\ntime from \`podman run\` to the first 200 on /ping (${wholeNumber('starts')} starts each):`);
    for (const [label, network] of [
      ['host network', null],
      ['own network, -p 127.0.0.1:<port>:8083', 'bridge'],
    ] as const) {
      const times: number[] = [];
      for (let i = 0; i < wholeNumber('starts'); i++) {
        const name = `notification-server-bench-start-${process.pid}-${i}`;
        if (network === null) {
          const container = await runContainer(podman, image, name);
          times.push(container.startMs);
          await container.stop();
        } else {
          const port = await freePort();
          const started = performance.now();
          await podman.must(['run', '--detach', '--name', name, '--publish', `127.0.0.1:${port}:8083`, '--env', `JWT_PRIVATE_KEY=${TEST_KEY}`, '--env', 'SEAFILE_LOG_TO_STDOUT=true', image]);
          await firstPong(port);
          times.push(performance.now() - started);
          await podman.run(['rm', '--force', '--time', '10', name], 60_000);
        }
      }
      console.log(`  ${label.padEnd(40)} ${times.map((ms) => `${(ms / 1000).toFixed(2)} s`).join(', ')}`);
    }

    console.log(`\nserver RSS, idle and with ${total} subscribed WebSockets over ${repos.length} libraries (lean clients, ${wholeNumber('load-processes')} load processes):`);
    // No --ulimit: the container inherits podman's open-files limit (and on some hosts runc cannot set rlimits).
    const container = await runContainer(podman, image, `notification-server-bench-load-${process.pid}`);
    try {
      const limit = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${container.pid}/limits`, 'utf8'))?.[1];
      if (limit !== undefined && Number(limit) < total + 100) console.log(`  (the container may open ${limit} files: run podman with a higher limit for ${total} connections)`);
      await measureLoad(`container (Node ${BASE_NODE_VERSION})`, container.port, container.pid, total);
    } finally {
      await container.stop();
    }
    const node24 = await unpackBaseNode(nodeDir);
    for (const [label, node] of [
      [`bare process (Node ${BASE_NODE_VERSION})`, node24],
      [`bare process (Node ${process.version.slice(1)})`, process.execPath],
    ] as const) {
      const server = await ServerProcess.start({ node, env: { NOTIFICATION_SERVER_LOG_LEVEL: 'info' } });
      try {
        await measureLoad(label, server.port, server.child.pid!, total);
      } finally {
        await server.stop();
      }
    }
  } finally {
    await podman.run(['rmi', '--force', image]);
    await podman.close();
    await rm(nodeDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
