import { HttpSubscriptionTransport, type FetchFunction } from './http-subscription-transport.js';
import { endpointUrl, type TransportFactory } from './transport.js';

/**
 * Long polling at `<url>/poll`: the last resort behind proxies that pass neither WebSockets
 * nor streamed responses. Each request carries the tokens and the cursor, and the server
 * answers with what came after it, at once or when the next event arrives (at most ~25 s).
 */
export function longPollTransport(options: { fetch?: FetchFunction } = {}): TransportFactory {
  return {
    name: 'long-poll',
    open: (baseUrl, handlers, clock) => new LongPollTransport(baseUrl, handlers, { ...options, clock }),
  };
}

interface PollAnswer {
  messages: unknown[];
}

class LongPollTransport extends HttpSubscriptionTransport {
  protected async start(signal: AbortSignal): Promise<void> {
    const url = endpointUrl(this.baseUrl, 'poll', 'http').href;
    while (!this.done && !signal.aborted && this.entries.size > 0) {
      const body = JSON.stringify({
        cursor: this.cursor(),
        repos: [...this.entries.values()].map((entry) => ({ id: entry.repoId, jwt_token: entry.token })),
      });
      // text/plain: a cross-origin page needs no CORS preflight; the server reads JSON whatever the type.
      const response = await this.fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body, cache: 'no-store', signal });
      if (!response.ok) {
        await response.body?.cancel();
        this.fail(signal, { code: response.status, reason: `the long-poll endpoint answered ${response.status}` });
        return;
      }
      const answer: unknown = await response.json();
      if (signal.aborted || this.done) return;
      if (!isPollAnswer(answer)) {
        this.fail(signal, { code: 0, reason: 'the long-poll endpoint answered something that is not {"messages": [...]}' });
        return;
      }
      this.opened();
      this.handlers.onActivity();
      // Each message updates the client's positions before the next request reads them.
      for (const message of answer.messages) this.deliver(JSON.stringify(message));
    }
  }
}

function isPollAnswer(value: unknown): value is PollAnswer {
  return typeof value === 'object' && value !== null && Array.isArray((value as { messages?: unknown }).messages);
}
