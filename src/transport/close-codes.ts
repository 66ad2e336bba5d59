/** WebSocket close codes this server sends (RFC 6455 §7.4; 4000-4999 are ours). */
export const CloseCode = {
  GoingAway: 1001,
  UnsupportedData: 1003,
  InvalidPayload: 1007,
  /** The client did not read its messages and its outgoing queue overflowed. */
  SendQueueOverflow: 4000,
  /** The connection did not subscribe any library within `subscribe_timeout`. */
  SubscribeTimeout: 4001,
  /** The connection sent more refused subscribes than `max_failed_subscribes_per_minute` allows. */
  TooManyFailedSubscribes: 4002,
} as const;
