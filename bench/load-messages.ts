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
}

export interface ChurnCommand {
  cmd: 'churn';
  url: string;
  repo: string;
  key: string;
  localAddresses: string[];
  concurrency: number;
  durationMs: number;
}

export type LoadCommand = OpenCommand | ChurnCommand | { cmd: 'reset' } | { cmd: 'report' } | { cmd: 'close' };

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
  /** seq → [how many connections received it, latest arrival minus `sent`, in ms]. */
  perEvent: Array<[number, number, number]>;
}

export interface ChurnReply {
  cmd: 'churned';
  cycles: number;
  failures: number;
  firstError: string | null;
}

export type LoadReply = OpenedReply | ReceiptReport | ChurnReply | { cmd: 'closed' };
