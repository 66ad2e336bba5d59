/** WebSocket close codes this server sends (RFC 6455 §7.4; 4000-4999 are ours). */
export const CloseCode = {
  GoingAway: 1001,
  UnsupportedData: 1003,
  InvalidPayload: 1007,
  /** The client did not read its messages and its outgoing queue overflowed. */
  SendQueueOverflow: 4000,
} as const;
