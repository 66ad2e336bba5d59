import type { IncomingMessage, ServerResponse } from 'node:http';
import { authenticatePublisher, PublisherAuthError, type PublisherCredentials, type PublisherKind } from '../auth/publisher-auth.js';
import type { Backplane } from '../backplane/backplane.js';
import type { LiveSettings } from '../config/settings.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { EventError, parseEvent } from '../protocol/event.js';
import { readBody } from './request-body.js';
import { answerText } from './router.js';

export interface EventEndpointOptions {
  /** Delivers here and carries the event to every other node. */
  backplane: Backplane;
  /** The JWT key; the static token (notification_token) and max_event_bytes are read from `live`. */
  key: PublisherCredentials['key'];
  live: LiveSettings;
  logger: Logger;
  metrics: Metrics;
  now: () => number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** `POST /events`: a publisher (seaf-server, seahub) hands over one event. */
export class EventEndpoint {
  constructor(private readonly options: EventEndpointOptions) {}

  handle(request: IncomingMessage, response: ServerResponse): void {
    const { logger, live, metrics } = this.options;
    if (request.method !== 'POST') {
      metrics.eventRejected('method');
      answerText(response, 405, 'use POST to publish an event', { allow: 'POST' });
      return;
    }
    let source: PublisherKind;
    try {
      source = authenticatePublisher(request.headers, { key: this.options.key, staticToken: live.config.notificationToken }, this.options.now());
    } catch (err) {
      if (!(err instanceof PublisherAuthError)) throw err;
      metrics.publisherRefused(err.reason);
      logger.warn({ remote: request.socket.remoteAddress, reason: err.reason }, `event refused: ${err.message}`);
      answerText(response, err.status, err.message, { connection: 'close' });
      request.resume();
      return;
    }
    readBody(request, live.limits.maxEventBodyBytes, {
      body: (body) => this.#accept(body, source, response),
      tooLarge: () => {
        metrics.eventRejected('too-large');
        logger.warn({ remote: request.socket.remoteAddress }, 'event refused: body too large');
        answerText(response, 413, `event body is larger than ${live.limits.maxEventBodyBytes} bytes`, { connection: 'close' });
        request.resume();
      },
    });
    request.on('error', (err) => logger.debug({ err }, 'event request aborted'));
  }

  #accept(body: Buffer, source: PublisherKind, response: ServerResponse): void {
    const { backplane, logger, metrics } = this.options;
    let event;
    try {
      event = parseEvent(utf8.decode(body));
    } catch (err) {
      const message = err instanceof EventError ? err.message : 'body is not valid UTF-8';
      metrics.eventRejected('invalid');
      logger.warn(`event refused: ${message}`);
      answerText(response, 400, message);
      return;
    }
    logger.debug({ type: event.type, repoId: event.repoId, source }, 'event accepted');
    metrics.eventAccepted(event.type, source);
    backplane.publish(event);
    answerText(response, 200, '');
  }
}
