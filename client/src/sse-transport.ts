import { HttpSubscriptionTransport, type FetchFunction } from './http-subscription-transport.js';
import { endpointUrl, type TransportFactory } from './transport.js';

/**
 * Server-Sent Events at `<url>/sse`, read with `fetch` (browsers and Node alike, and unlike
 * EventSource it lets the client decide when to reconnect). The tokens travel in the query:
 * that is the endpoint's contract, since a browser EventSource cannot set headers.
 */
export function sseTransport(options: { fetch?: FetchFunction } = {}): TransportFactory {
  return {
    name: 'sse',
    open: (baseUrl, handlers, clock) => new SseTransport(baseUrl, handlers, { ...options, clock }),
  };
}

class SseTransport extends HttpSubscriptionTransport {
  protected async start(signal: AbortSignal): Promise<void> {
    const url = endpointUrl(this.baseUrl, 'sse', 'http');
    for (const entry of this.entries.values()) {
      url.searchParams.append('repo_id', entry.repoId);
      url.searchParams.append('jwt_token', entry.token);
    }
    const cursor = this.cursor();
    if (cursor !== '') url.searchParams.set('cursor', cursor);
    const response = await this.fetch(url.href, { headers: { accept: 'text/event-stream' }, cache: 'no-store', signal });
    if (!response.ok || response.body === null) {
      await response.body?.cancel();
      this.fail(signal, { code: response.status, reason: `the SSE endpoint answered ${response.status}` });
      return;
    }
    this.opened();
    const parser = new SseParser((data) => this.deliver(data), () => this.handlers.onActivity());
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (this.done || signal.aborted) return;
      parser.push(value);
    }
    this.fail(signal, { code: 1001, reason: 'the server ended the SSE stream' });
  }
}

/** The `text/event-stream` format, as far as this server uses it: `data:` lines and comments. */
export class SseParser {
  #buffer = '';
  #data: string[] = [];

  constructor(
    private readonly onData: (data: string) => void,
    private readonly onActivity: () => void,
  ) {}

  push(chunk: string): void {
    this.onActivity();
    this.#buffer += chunk;
    let newline: number;
    while ((newline = this.#buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.#buffer.slice(0, newline);
      this.#buffer = this.#buffer.slice(newline + (this.#buffer.startsWith('\r\n', newline) ? 2 : 1));
      this.#line(line);
    }
  }

  #line(line: string): void {
    if (line === '') {
      if (this.#data.length > 0) this.onData(this.#data.join('\n'));
      this.#data = [];
      return;
    }
    if (line.startsWith(':')) return; // a keep-alive comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    // `id:` is for EventSource's Last-Event-ID; this client resumes from the messages' own positions.
    if (field === 'data') this.#data.push(value);
  }
}
