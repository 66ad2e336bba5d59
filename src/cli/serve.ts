import cluster from 'node:cluster';
import type { PrimaryChannel } from '../backplane/ipc-backplane.js';
import { parseServeFlags, SERVE_USAGE, type ServeFlags } from '../config/flags.js';
import { loadConfig } from '../config/load-config.js';
import { createLogOutput, type Logger } from '../log.js';
import { startServer, type RunningServer } from '../app.js';

/** `notification-server [-c <conf dir>] [-l <log file>|-] ...`: runs until SIGTERM/SIGINT; SIGHUP reloads. */
export async function serve(argv: string[]): Promise<number> {
  // seafile.sh stops the server with `pkill -f "notification-server -c <conf dir>"` and
  // seafile-monitor.sh looks for it with `ps -ef | grep notification-server`: both read this.
  process.title = ['notification-server', ...argv].join(' ');
  const flags = parseServeFlags(argv);
  if (flags.help) {
    process.stdout.write(SERVE_USAGE);
    return 0;
  }
  const { config, notices, warnings } = await loadConfig({ flags, env: process.env, cwd: process.cwd() });
  const output = createLogOutput(config.logLevel, config.logFile, config.logFormat);
  // A cluster's primary logs the notices, not each worker.
  if (cluster.isPrimary) {
    for (const notice of notices) output.logger.info(notice);
    for (const warning of warnings) output.logger.warn(warning);
  }
  if (config.workers > 1 && cluster.isPrimary) {
    return (await import('../cluster/primary.js')).runPrimary(config, output);
  }
  // A cluster worker: its lines say which one it is.
  const worker = cluster.isWorker ? cluster.worker! : null;
  const logger = worker === null ? output.logger : output.logger.child({ worker: worker.id });
  const viaPrimary = worker === null ? undefined : { workerId: worker.id, channel: process as unknown as PrimaryChannel };
  // Installed before the (possibly slow) start: SIGHUP's default action would kill the process.
  // A SIGHUP during the start is carried out once the server listens.
  let listening: (running: RunningServer) => void = () => {};
  const started = new Promise<RunningServer>((resolve) => (listening = resolve));
  let reloading: Promise<void> = Promise.resolve();
  // Reloads run one after the other, so two quick SIGHUPs end with the newest files in force.
  process.on('SIGHUP', () => {
    reloading = reloading.then(async () => reload(await started, flags, logger));
  });

  let server;
  try {
    server = await startServer(config, logger, { viaPrimary });
  } catch (err) {
    const message = `cannot start: ${err instanceof Error ? err.message : String(err)}`;
    logger.error({ err }, message);
    process.stderr.write(`notification-server: ${message}\n`);
    if (worker !== null) process.disconnect();
    return 1;
  }
  logger.info(
    { host: server.address.address, port: server.address.port, key: config.jwtKeySource },
    `${worker === null ? 'notification server' : `worker ${worker.id}`} listening on ${server.address.address}:${server.address.port}`,
  );

  process.on('SIGUSR1', () => {
    output.reopen();
    logger.info('log file reopened');
  });
  listening(server);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: NodeJS.Signals): Promise<void> => {
      if (stopping) return;
      stopping = true;
      logger.info({ connections: server.websockets.connections.size }, `${signal}: draining`);
      let code = 0;
      try {
        await server.stop();
        logger.info('stopped');
      } catch (err) {
        logger.error({ err }, 'error while stopping');
        code = 1;
      }
      // A worker's IPC channel would keep it alive.
      if (worker !== null) process.disconnect();
      resolve(code);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    // The primary went away without telling us (killed): nobody numbers events any more.
    if (worker !== null) process.on('disconnect', () => void stop('SIGTERM'));
  });
}

/** SIGHUP: rereads the configuration from the same flags, environment and files as at start. Never throws. */
async function reload(server: RunningServer, flags: ServeFlags, logger: Logger): Promise<void> {
  let next;
  try {
    const loaded = await loadConfig({ flags, env: process.env, cwd: process.cwd() });
    for (const warning of loaded.warnings) logger.warn(`SIGHUP: ${warning}`);
    next = loaded.config;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    logger.error({ err }, `SIGHUP: configuration not reloaded, the previous one stays in force: ${message}`);
    return;
  }
  let plan;
  try {
    plan = server.reload(next);
  } catch (err) {
    logger.error({ err }, `SIGHUP: configuration not reloaded: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  const { config, applied, needsRestart } = plan;
  if (applied.includes('jwt_private_key')) {
    const grace = config.keyGraceMs > 0 ? `tokens signed with the previous key are accepted for ${config.keyGraceMs / 1000} s more` : 'the previous key is no longer accepted (key_grace 0)';
    logger.warn({ key: config.jwtKeySource, keyGraceMs: config.keyGraceMs }, `SIGHUP: JWT key rotated (from ${config.jwtKeySource}): ${grace}`);
  }
  for (const setting of needsRestart) {
    logger.warn({ setting }, `SIGHUP: ${setting} changed but needs a restart: the running value stays in force`);
  }
  logger.info({ applied, needsRestart }, `SIGHUP: configuration reloaded (${applied.length === 0 ? 'nothing to change' : `applied: ${applied.join(', ')}`})`);
}
