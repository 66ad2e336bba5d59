/** An SSE stream read with fetch, as a test sees it: each event's id and data, and the comments. */
export interface SseEvent {
  id: string | undefined;
  data: string;
}

export class SseReader {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  status = 0;
  headers = new Headers();
  /** Settles when the server ends the stream (or the test aborts it). */
  readonly ended: Promise<void>;
  #waiters: Array<() => void> = [];
  #endedFlag = false;

  private constructor(
    response: Response,
    private readonly controller: AbortController,
  ) {
    this.status = response.status;
    this.headers = response.headers;
    this.ended = this.#read(response).finally(() => {
      this.#endedFlag = true;
      this.#wake();
    });
  }

  /** Opens the stream and waits for its status line. */
  static async connect(url: string, headers: Record<string, string> = {}): Promise<SseReader> {
    const controller = new AbortController();
    const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
    return new SseReader(response, controller);
  }

  get isEnded(): boolean {
    return this.#endedFlag;
  }

  /** Every event's data parsed as JSON. */
  get messages(): Array<{ type: string; content: Record<string, unknown>; position?: { epoch: string; offset: number } }> {
    return this.events.map((event) => JSON.parse(event.data) as { type: string; content: Record<string, unknown> });
  }

  async waitFor(done: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; events so far: ${JSON.stringify(this.events.map((e) => e.data))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.controller.abort();
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  async #read(response: Response): Promise<void> {
    if (response.body === null) return;
    const decoder = new TextDecoder();
    let buffer = '';
    let id: string | undefined;
    let data: string[] = [];
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line === '') {
            if (data.length > 0) this.events.push({ id, data: data.join('\n') });
            data = [];
          } else if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
          else if (line.startsWith('id: ')) id = line.slice(4);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        this.#wake();
      }
    } catch {
      // Aborted by the test.
    }
  }
}
