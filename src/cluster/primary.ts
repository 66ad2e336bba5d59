/**
 * `workers` > 1: this process serves no client. It forks the workers (they share the listening
 * port) and is the single sequencer of their events: each event a worker accepts gets its
 * position here from the configured backplane and goes to every worker in that one order
 * (backplane/ipc-backplane.ts). The workers read the history through it and hear of gaps from it.
 *
 * SIGTERM/SIGINT drain every worker and stop; SIGHUP and SIGUSR1 are passed on. A worker that
 * dies is replaced; one that dies before it ever listened (a port in use, a bad setting) stops
 * the whole server, as a single process would.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Backplane } from '../backplane/backplane.js';
import { decodeEvent } from '../backplane/backplane-message.js';
import { isWorkerMessage, readToWire, type PrimaryMessage, type WorkerMessage } from '../backplane/cluster-messages.js';
import { openBackplane } from '../backplane/open-backplane.js';
import type { Config } from '../config/config.js';
import type { LogOutput } from '../log.js';
import { removeStaleSocketFile } from '../http/listen.js';
import { WorkerEventBatch } from './event-batch.js';
import { BroadcastQuestions } from './rpc.js';
import { isFiguresToPrimary, PrimaryFigures } from './whole-server-figures.js';

const BACKPLANE_START_WAIT_MS = 5_000;
const FOLLOWED_WAIT_MS = 5_000;
/** A replaced worker is started after this pause, so a crash loop does not spin. */
const RESTART_DELAY_MS = 1_000;
/** After the drain window, workers get this long to exit before they are killed. */
const STOP_GRACE_MS = 10_000;

export async function runPrimary(config: Config, output: LogOutput): Promise<number> {
  const { logger } = output;
  const count = config.workers;
  const welcomed = new Set<Worker>();
  const listened = new Set<number>();
  let stopping = false;

  const batch = new WorkerEventBatch(() => welcomed);
  const followed = new BroadcastQuestions<Worker, readonly string[]>();
  // After a Redis outage the followed libraries that had events make the gap. A worker that does not say
  // makes it `all`: better to refresh too many desktop clients than to leave some with a wrong lock state.
  const askFollowed = async (): Promise<Set<string>> => {
    const connected = [...welcomed].filter((worker) => worker.isConnected());
    const { answers, late } = await followed.ask(connected, (worker, id) => worker.send({ nsw: 'followed?', id } satisfies PrimaryMessage), FOLLOWED_WAIT_MS);
    if (late.size > 0) throw new Error(`${late.size} worker(s) did not say which libraries they follow`);
    return new Set(answers.flat());
  };
  const sequencer: Backplane = openBackplane(config.backplane, { key: Buffer.from(config.jwtPrivateKey, 'utf8'), logger, history: config.history });
  await sequencer.start(BACKPLANE_START_WAIT_MS, {
    deliver: (event) => batch.add(event),
    followedLibraries: askFollowed,
    // Each worker reacts as a single process does (hub/gap-recovery.ts): catch up, resync, refresh desktop clients.
    onGap: (gap) => batch.send({ nsw: 'gap', gap }),
  });
  const figures = new PrimaryFigures({ expected: count, workers: () => welcomed, backplane: () => sequencer, logger });
  if (config.eventsListen?.kind === 'unix') await removeStaleSocketFile(config.eventsListen.path);

  const fromWorker = (worker: Worker, message: WorkerMessage): void => {
    switch (message.nsw) {
      case 'hello':
        // Events queued before it reach the others only: this one reads them from the history.
        batch.flush();
        welcomed.add(worker);
        worker.send({ nsw: 'welcome', id: message.id } satisfies PrimaryMessage);
        return;
      case 'publish':
        sequencer.publish(decodeEvent(message.event));
        figures.eventSequenced();
        return;
      case 'read': {
        const { id } = message;
        void sequencer.history.read(message.repoId, message.since).then((read) => {
          batch.flush();
          if (worker.isConnected()) worker.send({ nsw: 'history', id, read: readToWire(read) } satisfies PrimaryMessage);
        });
        return;
      }
      case 'followed':
        followed.answered(worker, message.id, message.libraries);
    }
  };
  cluster.setupPrimary({ exec: process.argv[1]!, args: process.argv.slice(2), serialization: 'advanced' });
  cluster.on('message', (worker: Worker, message: unknown) => {
    if (isWorkerMessage(message)) fromWorker(worker, message);
    else if (isFiguresToPrimary(message)) figures.receive(worker, message);
  });

  return new Promise<number>((resolve) => {
    let allListening = false;
    const finish = async (code: number): Promise<void> => {
      await sequencer.close();
      logger.info('stopped');
      resolve(code);
    };

    const stopAll = (why: string, code: number): void => {
      if (stopping) return;
      stopping = true;
      const workers = allWorkers();
      logger.info({ workers: workers.length }, `${why}: draining every worker`);
      const killer = setTimeout(() => {
        for (const worker of workers) if (!worker.isDead()) worker.process.kill('SIGKILL');
      }, config.drainMs + STOP_GRACE_MS);
      const exited = workers.map((worker) => new Promise((resolve) => worker.once('exit', resolve)));
      for (const worker of workers) worker.process.kill('SIGTERM');
      void Promise.all(exited).then(() => {
        clearTimeout(killer);
        return finish(code);
      });
    };

    cluster.on('listening', (worker: Worker) => {
      listened.add(worker.id);
      if (allListening || listened.size < count) return;
      allListening = true;
      logger.info(
        { host: config.host, port: config.port, workers: count, key: config.jwtKeySource },
        `notification server listening on ${config.host}:${config.port} with ${count} workers`,
      );
    });
    cluster.on('exit', (worker: Worker, code: number | null, signal: string | null) => {
      welcomed.delete(worker);
      followed.gone(worker);
      figures.gone(worker);
      if (stopping) return;
      if (!listened.has(worker.id)) {
        logger.error({ worker: worker.id, code, signal }, `worker ${worker.id} exited before it listened: stopping`);
        process.stderr.write(`notification-server: worker ${worker.id} could not start (exit ${code ?? signal}): see its log lines above\n`);
        stopAll('start-up failed', 1);
        return;
      }
      logger.error({ worker: worker.id, code, signal }, `worker ${worker.id} died (${signal ?? `exit ${code}`}): starting another`);
      setTimeout(() => {
        if (!stopping) cluster.fork();
      }, RESTART_DELAY_MS).unref();
    });

    process.on('SIGTERM', () => stopAll('SIGTERM', 0));
    process.on('SIGINT', () => stopAll('SIGINT', 0));
    process.on('SIGHUP', () => {
      logger.info('SIGHUP: passed on to every worker');
      for (const worker of allWorkers()) worker.process.kill('SIGHUP');
    });
    process.on('SIGUSR1', () => {
      output.reopen();
      logger.info('log file reopened');
      for (const worker of allWorkers()) worker.process.kill('SIGUSR1');
    });

    for (let i = 0; i < count; i++) cluster.fork();
  });
}

function allWorkers(): Worker[] {
  return Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined);
}
