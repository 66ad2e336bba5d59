import { ConfigError } from '../config/config.js';
import { parseServeFlags, SERVE_USAGE } from '../config/flags.js';
import { loadConfig } from '../config/load-config.js';
import { createLogOutput } from '../log.js';
import { startServer } from '../server.js';

/** `notification-server [-c <conf dir>] [-l <log file>|-] ...`: runs until SIGTERM/SIGINT. */
export async function serve(argv: string[]): Promise<number> {
  let loaded;
  try {
    const flags = parseServeFlags(argv);
    if (flags.help) {
      process.stdout.write(SERVE_USAGE);
      return 0;
    }
    loaded = await loadConfig({ flags, env: process.env, cwd: process.cwd() });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`notification-server: ${err.message}\n`);
    return 2;
  }
  const { config, notices } = loaded;
  const output = createLogOutput(config.logLevel, config.logFile);
  const { logger } = output;
  for (const notice of notices) logger.info(notice);

  let server;
  try {
    server = await startServer(config, logger);
  } catch (err) {
    logger.error({ err }, `cannot start: ${err instanceof Error ? err.message : String(err)}`);
    output.flush();
    process.stderr.write(`notification-server: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  logger.info(
    { host: server.address.address, port: server.address.port, key: config.jwtKeySource },
    `notification server listening on ${server.address.address}:${server.address.port}`,
  );

  process.on('SIGUSR1', () => {
    output.reopen();
    logger.info('log file reopened');
  });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      logger.info({ connections: server.websockets.connections.size, drainMs: config.drainMs }, `${signal}: draining`);
      server.stop().then(
        () => {
          logger.info('stopped');
          output.flush();
          resolve(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'error while stopping');
          output.flush();
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
