import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ClientAddress } from './client-address.js';
import { RETRY_AFTER_SECONDS, type ConnectionsPerAddress } from './connection-caps.js';
import type { FailuresPerAddress } from './failure-allowance.js';
import { FallbackRequestError } from './fallback-request.js';
import type { OriginPolicy } from './origin-policy.js';

/** What decides whether an SSE or long-poll request is served, as for a WebSocket upgrade. */
export interface FallbackAdmission {
  logger: Logger;
  metrics: Metrics;
  /** Browser origins admitted (allowed_origins); null: every origin. */
  origins: OriginPolicy | null;
  /** Whether another connection would pass max_connections (WebSockets, SSE streams and pending polls together). */
  full(): boolean;
  draining(): boolean;
  /** Connections per client address, shared with the WebSocket endpoint (max_connections_per_address). */
  addresses: ConnectionsPerAddress;
  /** Refused tokens per client address (max_failed_subscribes_per_minute, as a request cannot be closed like a connection). */
  failures: FailuresPerAddress;
  /** max_connections_per_user now (0: no cap). */
  maxConnectionsPerUser(): number;
}

/**
 * CORS for the fallbacks: a page on seahub's origin reads them with fetch or EventSource. The
 * tokens travel in the query or the body, never in cookies, so no credentials are allowed.
 */
export function corsHeaders(request: IncomingMessage, origins: OriginPolicy | null): Record<string, string> {
  const origin = request.headers.origin;
  if (origins === null) return { 'access-control-allow-origin': '*' };
  return origin !== undefined && origins.admits(origin, request.headers.host) ? { 'access-control-allow-origin': origin, vary: 'Origin' } : {};
}

function refuse(response: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
  response.end(`${body}\n`);
}

/**
 * Answers the request itself unless it may go on: a preflight, another method (405), an origin
 * not allowed (403), a draining server or max_connections reached (503), its address at
 * max_connections_per_address or out of refused tokens (429). Returns the client, counted as
 * one connection of its address until the response closes, when the endpoint should serve it.
 */
export function admit(request: IncomingMessage, response: ServerResponse, method: 'GET' | 'POST', admission: FallbackAdmission): ClientAddress | null {
  const cors = corsHeaders(request, admission.origins);
  if (request.method === 'OPTIONS') {
    response.writeHead(204, { ...cors, 'access-control-allow-methods': method, 'access-control-allow-headers': 'content-type, last-event-id', 'access-control-max-age': '600' });
    response.end();
    return null;
  }
  if (request.method !== method) {
    refuse(response, 405, `use ${method}`, { allow: method, ...cors });
    return null;
  }
  if (admission.origins !== null && !admission.origins.admits(request.headers.origin, request.headers.host)) {
    admission.metrics.requestRefused('origin');
    admission.logger.debug({ remote: request.socket.remoteAddress, origin: request.headers.origin }, `${request.url?.split('?', 1)[0]} refused: origin not allowed`);
    refuse(response, 403, 'origin not allowed');
    return null;
  }
  if (admission.draining()) {
    admission.metrics.requestRefused('draining');
    refuse(response, 503, 'the server is shutting down', { 'retry-after': '1', ...cors });
    return null;
  }
  if (admission.full()) {
    admission.metrics.requestRefused('connection-cap');
    refuse(response, 503, 'too many connections', { 'retry-after': String(RETRY_AFTER_SECONDS), ...cors });
    return null;
  }
  const { addresses, failures } = admission;
  const client = addresses.clientOf(request);
  const addressRefusal = addresses.refusal(client, request.socket.remoteAddress);
  if (addressRefusal !== null) return tooMany(request, response, admission, 'address-cap', { message: addressRefusal, retryAfterSeconds: RETRY_AFTER_SECONDS });
  const failureRefusal = failures.refusal(client);
  if (failureRefusal !== null) return tooMany(request, response, admission, 'failed-subscribes', failureRefusal);
  // 'close' comes once the answer is sent, the stream ended or the client went away.
  response.once('close', addresses.count(client));
  return client;
}

/** Answers 429 with Retry-After: a cap of the client's address or user, or its refused tokens. */
export function tooMany(
  request: IncomingMessage,
  response: ServerResponse,
  admission: FallbackAdmission,
  why: 'address-cap' | 'failed-subscribes' | 'user-cap',
  refusal: { message: string; retryAfterSeconds: number },
): null {
  admission.metrics.requestRefused(why);
  admission.logger.debug({ remote: request.socket.remoteAddress, why }, `${request.url?.split('?', 1)[0]} refused: ${refusal.message}`);
  refuse(response, 429, refusal.message, { 'retry-after': String(refusal.retryAfterSeconds), ...corsHeaders(request, admission.origins) });
  return null;
}

/** The request `parse` makes of it, or null when it is unusable: then answered 400 with what to fix. */
export function parsedOrRefused<T>(request: IncomingMessage, response: ServerResponse, admission: FallbackAdmission, parse: () => T): T | null {
  try {
    return parse();
  } catch (err) {
    if (!(err instanceof FallbackRequestError)) throw err;
    badRequest(request, response, admission, err.message);
    return null;
  }
}

/** Answers 400 with the message (an unusable query or body), CORS headers included so that a page can read it. */
export function badRequest(request: IncomingMessage, response: ServerResponse, admission: FallbackAdmission, message: string): void {
  admission.metrics.requestRefused('bad-request');
  admission.logger.debug({ remote: request.socket.remoteAddress, reason: message }, `${request.url?.split('?', 1)[0]} refused: bad request`);
  refuse(response, 400, message, corsHeaders(request, admission.origins));
}
