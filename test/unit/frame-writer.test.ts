import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { createRequire } from 'node:module';
import { encodeTextFrame, FrameWriter } from '../../src/transport/frame-writer.js';

interface FrameReceiver {
  on(event: 'message', listener: (data: Buffer) => void): void;
  write(bytes: Buffer): void;
}
// ws exports its receiver at run time, its type definitions do not.
const Receiver = createRequire(import.meta.url)('ws').Receiver as new (options: { isServer: boolean }) => FrameReceiver;

/** Decodes server-to-client frames the way a client does, with ws's own receiver. */
function decode(bytes: Buffer): string[] {
  const messages: string[] = [];
  const receiver = new Receiver({ isServer: false });
  receiver.on('message', (data: Buffer) => messages.push(data.toString()));
  receiver.write(bytes);
  return messages;
}

const endOfTurn = (): Promise<unknown> => new Promise((resolve) => setImmediate(resolve));
const pause = (ms: number): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, ms));

/** A loopback server with `count` connected clients, each recording the bytes it receives. */
async function loopback(count: number): Promise<{ server: Server; clients: Socket[]; accepted: Socket[]; received: Buffer[][] }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const accepted: Socket[] = [];
  server.on('connection', (socket: Socket) => accepted.push(socket));
  const clients = Array.from({ length: count }, () => connect(port, '127.0.0.1'));
  const received = clients.map(() => [] as Buffer[]);
  clients.forEach((client, i) => client.on('data', (chunk: Buffer) => received[i]!.push(chunk)));
  while (accepted.length < count) await pause(5);
  return { server, clients, accepted, received };
}

/** Every message the clients have decoded, once there are `count` of them (or after 5 s). */
async function arrived(received: Buffer[][], count: number): Promise<string[]> {
  const decodeAll = (): string[] => received.flatMap((chunks) => decode(Buffer.concat(chunks)));
  const deadline = Date.now() + 5000;
  while (decodeAll().length < count && Date.now() < deadline) await pause(5);
  return decodeAll();
}

describe('the frame writer', () => {
  it('a frame decodes to its payload at every length encoding (7-bit, 16-bit, 64-bit)', () => {
    for (const length of [0, 1, 125, 126, 127, 65_535, 65_536, 70_000]) {
      const payload = Buffer.alloc(length, 'x');
      assert.deepEqual(decode(encodeTextFrame(payload)), [payload.toString()], `length ${length}`);
    }
  });

  it('the frame is built once per payload, also when stock and positioned payloads of one event alternate', () => {
    const stock = Buffer.from('{"type":"repo-update"}');
    const positioned = Buffer.from('{"type":"repo-update","position":{"epoch":"e","offset":1}}');
    const writer = new FrameWriter();
    const first = writer.frameOf(stock);
    const second = writer.frameOf(positioned);
    assert.equal(writer.frameOf(stock), first);
    assert.equal(writer.frameOf(positioned), second);
    const next = Buffer.from('{"type":"repo-update"}');
    assert.notEqual(writer.frameOf(next), first, 'a new event (a new Buffer) gets its own frame');
    assert.deepEqual(decode(writer.frameOf(next)), ['{"type":"repo-update"}']);
  });

  it('a quiet server writes at once; frames that follow right after a fan-out, or come at a sustained rate, are batched, later ones are not; a socket with 64 KiB corked is written at once; all arrive whole and in order', async () => {
    const pair = await loopback(1);
    const { server, received } = pair;
    const client = pair.clients[0]!;
    const accepted = pair.accepted[0]!;
    // A fake clock: whether a fan-out counts as a burst must not depend on this machine's load.
    let clock = 1000;
    const writer = new FrameWriter(() => clock);
    try {
      // A fan-out that takes 5 ms: written at once, not corked.
      writer.write(accepted, encodeTextFrame(Buffer.from('{"seq":0}')));
      assert.equal(writer.pendingSockets, 0, 'quiet: written at once');
      clock += 5;
      await endOfTurn();

      // Its next event was waiting (0.5 ms after it ended): a burst, corked for up to 5 ms.
      clock += 0.5;
      for (let i = 1; i < 50; i++) writer.write(accepted, encodeTextFrame(Buffer.from(`{"seq":${i}}`)));
      assert.equal(writer.pendingSockets, 1, 'one socket corked, whatever the number of frames');
      assert.deepEqual(await arrived(received, 50), Array.from({ length: 50 }, (_, i) => `{"seq":${i}}`));
      assert.equal(writer.pendingSockets, 0);

      // Steady events the server keeps up with: a fan-out that took 10 ms, the next event 4 ms
      // after it ended (within those 10 ms). Written at once: batching would hold it back.
      clock += 1000;
      writer.write(accepted, encodeTextFrame(Buffer.from('{"seq":50}')));
      clock += 10;
      await endOfTurn();
      clock += 4;
      writer.write(accepted, encodeTextFrame(Buffer.from('{"seq":51}')));
      assert.equal(writer.pendingSockets, 0, 'an event that was not waiting behind the previous fan-out is written at once');
      assert.deepEqual((await arrived(received, 52)).slice(50), ['{"seq":50}', '{"seq":51}']);

      // A sustained rate, as a worker of --workers sees it: each fan-out short (1 ms), the
      // next event 5 ms after the previous one started (200 events/s), never within the 2 ms
      // gap. Written at once until the mean interval falls under 15 ms, then batched.
      clock += 1000;
      const modes: boolean[] = [];
      for (let seq = 52; seq < 64; seq++) {
        writer.write(accepted, encodeTextFrame(Buffer.from(`{"seq":${seq}}`)));
        modes.push(writer.pendingSockets > 0);
        clock += 1;
        await endOfTurn();
        clock += 4;
      }
      assert.equal(modes[0], false, 'the first event after a quiet spell is written at once');
      assert.equal(modes.at(-1), true, 'after a dozen events 5 ms apart, frames are batched');
      assert.equal(modes.indexOf(true) > 2, true, 'two or three quick events are not yet a sustained rate');
      assert.deepEqual((await arrived(received, 64)).slice(52), Array.from({ length: 12 }, (_, i) => `{"seq":${52 + i}}`));
      assert.equal(writer.pendingSockets, 0);

      // Back to 20 ms apart (50 events/s): written at once again within a few events, and
      // from then on every one.
      const paced: boolean[] = [];
      for (let seq = 64; seq < 80; seq++) {
        clock += 19;
        writer.write(accepted, encodeTextFrame(Buffer.from(`{"seq":${seq}}`)));
        paced.push(writer.pendingSockets > 0);
        clock += 1;
        await endOfTurn();
        // A batch's flush is a real timer: let it run before the next event.
        while (writer.pendingSockets > 0) await pause(5);
      }
      assert.deepEqual(paced.slice(6), Array.from({ length: 10 }, () => false), 'events 20 ms apart are written at once');
      assert.deepEqual((await arrived(received, 80)).slice(64), Array.from({ length: 16 }, (_, i) => `{"seq":${64 + i}}`));
      clock += 1000;
      writer.write(accepted, encodeTextFrame(Buffer.from('{"seq":80}')));
      clock += 1;
      await endOfTurn();

      // Under a burst a socket holding 64 KiB of corked frames is written at once: the send
      // queue limit counts corked bytes, and a client that reads must not pay for our batching.
      clock += 0.5;
      const big = Buffer.alloc(40 * 1024, 'b');
      writer.write(accepted, encodeTextFrame(big));
      assert.equal(accepted.writableCorked, 1, 'one 40 KiB frame stays corked');
      writer.write(accepted, encodeTextFrame(big));
      assert.equal(accepted.writableCorked, 0, '80 KiB corked: written at once');
      const messages = await arrived(received, 83);
      assert.equal(messages.length, 83);
      assert.deepEqual(messages.slice(81), [big.toString(), big.toString()]);
    } finally {
      client.destroy();
      accepted.destroy();
      server.close();
    }
  });
  it('under a sustained rate whose batches share no write (one frame per socket), frames go back to being written at once, and a batch is tried again a second later', async () => {
    const { server, clients, accepted, received } = await loopback(4);
    let clock = 1_000_000;
    const writer = new FrameWriter(() => clock);
    const flushed = async (): Promise<void> => {
      while (writer.pendingSockets > 0) await pause(2);
    };
    // Each event to one socket (many small libraries), 5 ms apart: batched once the rate is
    // sustained; a batch of four such events (one frame per socket) shares no write, so the
    // events after it are written at once.
    const batched: boolean[] = [];
    const event = async (seq: number, waitForFlush: boolean): Promise<void> => {
      writer.write(accepted[seq % accepted.length]!, encodeTextFrame(Buffer.from(`{"seq":${seq}}`)));
      batched.push(writer.pendingSockets > 0);
      clock += 1;
      await endOfTurn();
      if (waitForFlush) await flushed();
      clock += 4;
    };
    const untilBatched = async (from: number): Promise<number> => {
      let seq = from;
      while (seq < from + 20 && !batched.at(-1)) await event(seq++, false);
      assert.equal(batched.at(-1), true, 'a sustained rate is batched once seen');
      // Three more events join the batch (the flush is a real 15 ms timer), each to another socket.
      for (let i = 0; i < 3; i++) await event(seq++, false);
      await flushed();
      clock += 4; // a fan-out right after a flush would be a burst (the 2 ms gap rule)
      return seq;
    };
    try {
      let seq = await untilBatched(0);
      batched.length = 0;
      for (const end = seq + 8; seq < end; ) await event(seq++, true);
      assert.deepEqual(batched, Array.from({ length: 8 }, () => false), 'after a batch of one frame per socket, written at once');
      // A second later (the mean interval comes back under 15 ms within a few events) a batch is tried again.
      clock += 1000;
      seq = await untilBatched(seq);
      const total = seq;
      const all = await arrived(received, total);
      // Which client got which frame depends on the accept order; every frame arrived whole.
      assert.deepEqual(all.map((m) => Number((JSON.parse(m) as { seq: number }).seq)).sort((a, b) => a - b), Array.from({ length: total }, (_, i) => i));
    } finally {
      for (const client of clients) client.destroy();
      for (const socket of accepted) socket.destroy();
      server.close();
    }
  });
});
