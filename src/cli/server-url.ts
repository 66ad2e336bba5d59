/** The server URLs the tools take: http(s) for /events, ws(s) for the WebSocket, either spelling accepted. */
import { ConfigError } from '../config/config.js';

const TO_HTTP: Record<string, string> = { 'http:': 'http:', 'https:': 'https:', 'ws:': 'http:', 'wss:': 'https:' };
const TO_WS: Record<string, string> = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' };

function parse(text: string, schemes: Record<string, string>): URL {
  if (!URL.canParse(text)) throw new ConfigError(`--url ${JSON.stringify(text)} is not a URL: write it like http://127.0.0.1:8083`);
  const url = new URL(text);
  const scheme = schemes[url.protocol];
  if (scheme === undefined) throw new ConfigError(`--url ${text}: use http://, https://, ws:// or wss://`);
  url.protocol = scheme;
  url.search = '';
  url.hash = '';
  return url;
}

/** A base for `new URL('events', base)`: `http://host:8083/` or `https://host/notification/`. */
export function httpBaseUrl(text: string): URL {
  const url = parse(text, TO_HTTP);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

/** The WebSocket URL itself: `ws://host:8083/` or `wss://host/notification`. */
export function webSocketUrl(text: string): URL {
  return parse(text, TO_WS);
}

/** Node's fetch says only "fetch failed"; the reason is in its cause. */
export function describeFetchError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (error.name === 'TimeoutError') return 'no answer in time';
  const cause = (error as Error & { cause?: unknown }).cause;
  const reason = cause instanceof Error ? cause.message : error.message;
  const code = cause instanceof Error ? (cause as NodeJS.ErrnoException).code : undefined;
  return code === 'ECONNREFUSED' ? `${reason} (is the server running there?)` : reason;
}

/** Where a server listening on `host:port` is reached from its own machine: 0.0.0.0 and :: by loopback. */
export function localServerUrl(host: string, port: number): string {
  const reachable = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}
