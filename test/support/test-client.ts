import WebSocket from 'ws';

export interface Message {
  type: string;
  content: Record<string, unknown>;
}

/** A subscriber over a real WebSocket, recording everything it receives. */
export class TestClient {
  readonly messages: Message[] = [];
  readonly raw: string[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: Array<() => void> = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const text = data.toString();
      this.raw.push(text);
      this.messages.push(JSON.parse(text) as Message);
      this.#wake();
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', (code, reason) => {
        this.#wake();
        resolve({ code, reason: reason.toString() });
      }),
    );
  }

  /** `localAddress`: the loopback address to connect from (127.0.0.2, …), to look like another client. */
  static async connect(url: string, options: { protocols?: string[]; headers?: Record<string, string>; localAddress?: string } = {}): Promise<TestClient> {
    const socket = new WebSocket(url, options.protocols ?? [], { headers: options.headers, handshakeTimeout: 5000, localAddress: options.localAddress });
    const client = new TestClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    return client;
  }

  send(message: unknown): void {
    this.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  subscribe(repos: Array<{ id: string; jwt_token?: string }>): void {
    this.send({ type: 'subscribe', content: { repos } });
  }

  unsubscribe(ids: string[]): void {
    this.send({ type: 'unsubscribe', content: { repos: ids.map((id) => ({ id })) } });
  }

  /** Waits until `count` messages have arrived in all. */
  async waitForCount(count: number, timeoutMs = 5000): Promise<Message[]> {
    await this.#until(() => this.messages.length >= count, timeoutMs, `${count} messages (have ${this.messages.length})`);
    return this.messages;
  }

  /** Waits for a message matching, among those received so far or to come. */
  async waitFor(match: (message: Message) => boolean, timeoutMs = 5000): Promise<Message> {
    let found: Message | undefined;
    await this.#until(() => (found = this.messages.find(match)) !== undefined, timeoutMs, 'a matching message');
    return found!;
  }

  /** A round trip through the server: everything it sent before has arrived afterwards. */
  async roundTrip(timeoutMs = 5000): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no pong')), timeoutMs);
      this.socket.once('pong', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.ping();
    });
  }

  close(): void {
    this.socket.close();
  }

  async #until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
