import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Backplane } from './backplane/backplane.js';
import { openBackplane } from './backplane/open-backplane.js';
import type { Config } from './config/config.js';
import type { GroupDirectory } from './groups/group-directory.js';
import { openGroupDirectory } from './groups/open-group-directory.js';
import { EventEndpoint } from './http/event-endpoint.js';
import { answerPing } from './http/ping.js';
import { routeOf } from './http/routes.js';
import { Hub } from './hub/hub.js';
import type { Logger } from './log.js';
import { WebSocketEndpoint } from './transport/websocket-endpoint.js';

export interface RunningServer {
  readonly address: AddressInfo;
  readonly hub: Hub;
  /** How events travel between nodes; its `state` says whether this node is in the cluster. */
  readonly backplane: Backplane;
  readonly websockets: WebSocketEndpoint;
  readonly events: EventEndpoint;
  /** Stops accepting, closes every WebSocket over the drain window, leaves the backplane, releases the group database. */
  stop(): Promise<void>;
}

const BACKPLANE_START_WAIT_MS = 5_000;

function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  const body = `${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** The composition root: wires config, hub, transports and HTTP routes, and owns start and stop. */
export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  const now = Date.now;
  const key = Buffer.from(config.jwtPrivateKey, 'utf8');
  const groups: GroupDirectory | null =
    config.groupDatabase === null ? null : openGroupDirectory(config.groupDatabase, config.groupCacheTtlMs);
  const hub = new Hub({ groups, logger, now });
  const backplane = openBackplane(config.backplane, { deliver: (event) => hub.publish(event), key, logger });
  const websockets = new WebSocketEndpoint({
    hub,
    key,
    logger,
    maxFrameBytes: config.limits.maxFrameBytes,
    sendQueueBytes: config.limits.sendQueueBytes,
    pingIntervalMs: config.pingIntervalMs,
    deadPeerMs: config.deadPeerMs,
    now,
  });
  const events = new EventEndpoint({
    backplane,
    credentials: { key, staticToken: config.notificationToken },
    maxBodyBytes: config.limits.maxEventBodyBytes,
    logger,
    now,
  });
  let draining = false;

  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    switch (routeOf(request.url)) {
      case 'ping':
        answerPing(request, response);
        return;
      case 'events':
        events.handle(request, response);
        return;
      case 'websocket':
        response.writeHead(426, { upgrade: 'websocket', 'content-type': 'text/plain; charset=utf-8' });
        response.end('this is the notification server: connect with a WebSocket\n');
        return;
      case 'not-found':
        response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
        response.end('not found\n');
    }
  });
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (routeOf(request.url) !== 'websocket') refuseUpgrade(socket, 404, 'Not Found');
    else if (draining) refuseUpgrade(socket, 503, 'Service Unavailable');
    else websockets.handleUpgrade(request, socket, head);
  });
  server.on('clientError', (err, socket) => {
    logger.debug({ err }, 'bad HTTP request');
    if (socket.writable) refuseUpgrade(socket, 400, 'Bad Request');
    else socket.destroy();
  });

  // Joining the cluster first means a node behind the load balancer misses no event; a Redis
  // that is down does not keep the node from serving its own events.
  await backplane.start(BACKPLANE_START_WAIT_MS);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch(async (err: unknown) => {
    await backplane.close();
    throw err;
  });
  const address = server.address() as AddressInfo;

  return {
    address,
    hub,
    backplane,
    websockets,
    events,
    async stop() {
      if (draining) return;
      draining = true;
      server.close();
      await websockets.drain(config.drainMs);
      await backplane.close();
      hub.close();
      server.closeAllConnections();
      await groups?.close();
    },
  };
}
