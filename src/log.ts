import { pino, type Logger, type LevelWithSilent } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export interface LogOutput {
  logger: Logger;
  /** Reopens the log file (SIGUSR1, after logrotate moved it). No-op on standard output. */
  reopen(): void;
  /** Writes out what is buffered; call before exit. */
  flush(): void;
}

/**
 * JSON lines to a file or a pipe; readable text when standard output is a terminal.
 * `file` null means standard output.
 */
export function createLogOutput(level: LevelWithSilent, file: string | null): LogOutput {
  const options = { level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime };
  if (file === null && process.stdout.isTTY) {
    const stream = pretty({ colorize: true, sync: true, translateTime: 'SYS:standard', ignore: 'pid,hostname' });
    return { logger: pino(options, stream), reopen: () => {}, flush: () => {} };
  }
  const destination = pino.destination({ dest: file ?? 1, sync: file === null, mkdir: file !== null });
  return {
    logger: pino(options, destination),
    reopen: () => {
      if (file !== null) destination.reopen();
    },
    flush: () => {
      try {
        destination.flushSync();
      } catch {
        // Nothing buffered yet (the stream is still opening): nothing to lose.
      }
    },
  };
}
