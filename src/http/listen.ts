import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { EventsListen } from '../config/config.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { answerRaw, type Router } from './router.js';

export interface HttpServerOptions {
  headerTimeoutMs: number;
  logger: Logger;
  metrics: Metrics;
}

/** An HTTP server that answers through `router`, upgrades included, and counts malformed or slow requests. */
export function createHttpServer(router: Router, { headerTimeoutMs, logger, metrics }: HttpServerOptions): Server {
  const server = createServer(
    {
      headersTimeout: headerTimeoutMs,
      requestTimeout: Math.max(headerTimeoutMs, 300_000),
      // Node checks the timeouts on this interval (30 s by default), which would let a slow
      // header drip live far past its deadline.
      connectionsCheckingInterval: Math.min(5_000, Math.max(250, Math.floor(headerTimeoutMs / 4))),
    },
    router.request,
  );
  server.on('upgrade', router.upgrade);
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    logger.debug({ err }, 'bad HTTP request');
    // Node reports a request whose headers did not arrive within headersTimeout this way.
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    metrics.requestRefused(timedOut ? 'timeout' : 'bad-request');
    if (!socket.writable) socket.destroy();
    else if (timedOut) answerRaw(socket, 408, 'Request Timeout');
    else answerRaw(socket, 400, 'Bad Request');
  });
  return server;
}

/**
 * Listens on a TCP address or a Unix socket, removing a socket file left by a server that died
 * (else EADDRINUSE); not under --workers, where the primary removed it for every worker.
 */
export async function listen(server: Server, where: EventsListen, removeStaleSocket = true): Promise<void> {
  if (where.kind === 'unix' && removeStaleSocket) await removeStaleSocketFile(where.path);
  if (where.kind === 'unix') server.listen(where.path);
  else server.listen(where.port, where.host);
  await once(server, 'listening');
}

/** Removes a Unix socket file left by a server that died (the cluster primary does it once for its workers). */
export async function removeStaleSocketFile(path: string): Promise<void> {
  await rm(path, { force: true });
}
