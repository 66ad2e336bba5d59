import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';
import type { LogFormat } from './config/config.js';
import { formatTextLine } from './log-text.js';

export type { Logger };

export interface LogOutput {
  logger: Logger;
  /** Reopens the log file (SIGUSR1, after logrotate moved it). No-op on standard output. */
  reopen(): void;
}

/**
 * Log lines to a file or (`file` null) standard output. A file is written asynchronously; the
 * process does not exit before the last write ends, so nothing needs flushing (a synchronous
 * flush would write buffered lines ahead of the one in flight). With no format chosen, a file
 * and a terminal get the stock server's text, a pipe gets JSON.
 */
export function createLogOutput(level: LevelWithSilent, file: string | null, format: LogFormat | null): LogOutput {
  const destination = pino.destination({ dest: file ?? 1, sync: file === null, mkdir: file !== null });
  const chosen = format ?? (file !== null || process.stdout.isTTY ? 'text' : 'json');
  // The stock server names itself on stdout, where its lines mix with other containers' in `docker logs`.
  const prefix = file === null ? '[notification-server] ' : '';
  const stream: DestinationStream =
    chosen === 'json' ? destination : { write: (line: string) => destination.write(formatTextLine(line, prefix)) };
  return {
    logger: pino({ level, base: undefined, timestamp: chosen === 'json' ? pino.stdTimeFunctions.isoTime : pino.stdTimeFunctions.epochTime }, stream),
    reopen: () => {
      if (file !== null) destination.reopen();
    },
  };
}
