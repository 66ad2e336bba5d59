/** What the bench driver and its load processes say to each other over IPC. */

export interface OpenCommand {
  cmd: 'open';
  url: string;
  /** Connections to open; connection i subscribes to repos[i % repos.length] as user i. */
  count: number;
  firstUser: number;
  repos: string[];
  key: string;
  /** Source addresses to spread connections over (127.0.0.x), so no address runs out of ports. */
  localAddresses: string[];
  /** Handshakes in flight at once. */
  concurrency: number;
  client: ClientKind;
}

/**
 * What holds each subscriber connection: `lean` a plain socket with a minimal WebSocket
 * client (bench/lean-subscriber.ts), `ws` the ws library's client, as the bench first did.
 */
export type ClientKind = 'lean' | 'ws';

export interface ChurnCommand {
  cmd: 'churn';
  url: string;
  repo: string;
  key: string;
  localAddresses: string[];
  concurrency: number;
  durationMs: number;
  client: ClientKind;
}

/**
 * How a load process reads seq and sent from an event frame: `bytes` scans the Buffer for
 * them (no string, no regular expression); `regex` decodes the frame to a string and matches
 * it, as the bench first did, to measure what that costs the generator.
 */
export type ParseMode = 'bytes' | 'regex';

export type LoadCommand = OpenCommand | ChurnCommand | { cmd: 'reset'; parse: ParseMode } | { cmd: 'report' } | { cmd: 'close' };

export interface OpenedReply {
  cmd: 'opened';
  opened: number;
  failed: number;
  firstError: string | null;
  ms: number;
}

/** Receipts of events carrying `seq` and `sent` since the last reset. */
export interface ReceiptReport {
  cmd: 'report';
  open: number;
  messages: number;
  /** Messages whose seq was not greater than the previous one on the same connection. */
  outOfOrder: number;
  /** seq → [how many connections received it, first and latest arrival minus `sent`, in ms]. */
  perEvent: Array<[number, number, number, number]>;
  /** CPU and wall-clock time of this load process since the reset. */
  cpuMs: number;
  wallMs: number;
  /** This process's event-loop delay since the reset: how late it was to read what arrived. */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

export interface ChurnReply {
  cmd: 'churned';
  cycles: number;
  failures: number;
  firstError: string | null;
}

export type LoadReply = OpenedReply | ReceiptReport | ChurnReply | { cmd: 'closed' };
