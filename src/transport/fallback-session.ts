/**
 * What an SSE stream and a long poll share as HTTP requests: CORS, admission and bad-request
 * answers, and a client session that subscribes the request's libraries at once, each resumed
 * from the request's cursor, and answers 429 when the request can follow nothing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { answerText } from '../http/router.js';
import type { FallbackTransport } from '../metrics/metrics.js';
import type { Admission, Admitted, Refusal } from '../session/admission.js';
import { ClientSession, type SessionEnd, type Sessions } from '../session/client-session.js';
import { RETRY_AFTER_SECONDS } from '../session/connection-caps.js';
import { formatCursor, type Cursor } from '../session/cursor.js';
import type { ClientAddress } from './client-address.js';
import { FallbackRequestError, type FallbackRequest } from './fallback-request.js';

export interface FallbackContext {
  sessions: Sessions;
  admission: Admission;
}

/**
 * CORS for the fallbacks: a page on seahub's origin reads them with fetch or EventSource. The
 * tokens travel in the query or the body, never in cookies, so no credentials are allowed.
 */
function corsHeaders(request: IncomingMessage, admission: Admission): Record<string, string> {
  const { origin, host } = request.headers;
  if (admission.origins === null) return { 'access-control-allow-origin': '*' };
  return origin !== undefined && admission.origins.admits(origin, host) ? { 'access-control-allow-origin': origin, vary: 'Origin' } : {};
}

const NOT_CACHED = { 'cache-control': 'no-store' };

/** Answers a refusal (counted by Admission.refused), CORS headers included so that a page can read it. */
function answerRefusal(request: IncomingMessage, response: ServerResponse, admission: Admission, refusal: Refusal): void {
  const retry: Record<string, string> = refusal.retryAfterSeconds === undefined ? {} : { 'retry-after': String(refusal.retryAfterSeconds) };
  const headers = refusal.why === 'origin' ? {} : { ...retry, ...corsHeaders(request, admission) };
  answerText(response, refusal.status, refusal.message, { ...NOT_CACHED, ...headers });
}

/**
 * Answers the request itself unless it may go on: a preflight, another method (405), or a
 * refusal of admission. Else the client, counted as one connection until the response closes.
 */
function admitRequest(request: IncomingMessage, response: ServerResponse, method: 'GET' | 'POST', admission: Admission): Admitted | null {
  const cors = corsHeaders(request, admission);
  if (request.method === 'OPTIONS') {
    response.writeHead(204, { ...cors, 'access-control-allow-methods': method, 'access-control-allow-headers': 'content-type, last-event-id', 'access-control-max-age': '600' });
    response.end();
    return null;
  }
  if (request.method !== method) {
    answerText(response, 405, `use ${method}`, { ...NOT_CACHED, allow: method, ...cors });
    return null;
  }
  const admitted = admission.admit(request, 'request');
  if ('why' in admitted) {
    answerRefusal(request, response, admission, admitted);
    return null;
  }
  // 'close' comes once the answer is sent, the stream ended or the client went away.
  response.once('close', admitted.release);
  return admitted;
}

export function badRequest(request: IncomingMessage, response: ServerResponse, admission: Admission, message: string): void {
  answerRefusal(request, response, admission, admission.refused({ why: 'bad-request', status: 400, message }, request));
}

/** An SSE or long-poll endpoint: admits each request, then serves it. */
export abstract class FallbackEndpoint<Options extends FallbackContext> {
  constructor(
    protected readonly options: Options,
    private readonly method: 'GET' | 'POST',
    private readonly transport: FallbackTransport,
  ) {}

  handle(request: IncomingMessage, response: ServerResponse): void {
    const admitted = admitRequest(request, response, this.method, this.options.admission);
    if (admitted !== null) this.serve(request, response, admitted.client);
  }

  protected abstract serve(request: IncomingMessage, response: ServerResponse, client: ClientAddress): void;

  protected abstract session(call: RequestCall): RequestSession;

  /** Starts the session for the request `parse` makes, or answers 400 with what to fix. */
  protected open(call: Omit<RequestCall, 'parsed'>, parse: (maxLibraries: number) => FallbackRequest): void {
    let parsed: FallbackRequest;
    try {
      parsed = parse(this.options.sessions.live.limits.maxLibrariesPerConnection);
    } catch (err) {
      if (!(err instanceof FallbackRequestError)) throw err;
      badRequest(call.request, call.response, this.options.admission, err.message);
      return;
    }
    const session = this.session({ ...call, parsed });
    if (!session.subscribeRequest(parsed)) return;
    this.options.sessions.metrics.fallbackRequest(this.transport);
    session.start(parsed.entries.length);
  }
}

/** One admitted SSE or poll request, and what it asks for. */
export interface RequestCall {
  request: IncomingMessage;
  response: ServerResponse;
  client: ClientAddress;
  parsed: FallbackRequest;
}

/** The session of an SSE stream or a long poll: always positioned, since they exist to resume. */
export abstract class RequestSession extends ClientSession {
  protected readonly request: IncomingMessage;
  protected readonly response: ServerResponse;

  constructor(
    protected readonly context: FallbackContext,
    { request, response, client, parsed }: RequestCall,
  ) {
    // Only the request's libraries: a cursor naming others must not grow every id: line.
    const named = new Set(parsed.entries.map((entry) => entry.repoId));
    const cursor: Cursor = new Map([...parsed.cursor].filter(([repoId]) => named.has(repoId)));
    super(context.sessions, client, 'request', true, cursor);
    this.request = request;
    this.response = response;
  }

  /** Subscribes the request's libraries, each from where the request's cursor says; false when answered 429 instead. */
  subscribeRequest({ entries, cursor }: FallbackRequest): boolean {
    return this.subscribe(entries.map(({ repoId, token }) => ({ repoId, token, since: cursor.get(repoId) })));
  }

  protected get cursorText(): string {
    return formatCursor(this.cursor!);
  }

  protected get cors(): Record<string, string> {
    return corsHeaders(this.request, this.context.admission);
  }

  /** Answers or streams, once the request's libraries are subscribed. */
  abstract start(libraries: number): void;

  /** Stops the transport's own work and leaves the hub; nothing more is written after it. */
  protected abstract stop(): void;

  /** A rule ends a request only as it subscribes, before any answer: a 429 keeps it from coming straight back. */
  protected end(why: SessionEnd): void {
    this.stop();
    const { admission, sessions } = this.context;
    const max = sessions.live.limits.maxConnectionsPerUser;
    // Not refusal(): the bucket may have refilled since take() found it empty.
    const refusal: Refusal =
      why === 'failed-subscribes'
        ? { why: 'failed-subscribes', status: 429, ...sessions.failures.exhausted() }
        : {
            why: 'user-cap',
            status: 429,
            message: `too many connections for this user (max_connections_per_user is ${max}); close one, or try again in ${RETRY_AFTER_SECONDS} s`,
            retryAfterSeconds: RETRY_AFTER_SECONDS,
          };
    answerRefusal(this.request, this.response, admission, admission.refused(refusal, this.request));
  }
}
