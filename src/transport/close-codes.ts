/** WebSocket close codes this server sends (RFC 6455 §7.4; 4000-4999 are ours). */
export const CloseCode = {
  /** Sent to a desktop client that missed events while its node was cut off: it reconnects and re-reads its state. */
  Normal: 1000,
  GoingAway: 1001,
  UnsupportedData: 1003,
  InvalidPayload: 1007,
  /** The client did not read its messages and its outgoing queue overflowed. */
  SendQueueOverflow: 4000,
  /** The connection did not subscribe any library within `subscribe_timeout`. */
  SubscribeTimeout: 4001,
  /** The connection sent more refused subscribes than `max_failed_subscribes_per_minute` allows. */
  TooManyFailedSubscribes: 4002,
  /** A subscribe was refused because its user already holds `max_connections_per_user` connections, and the connection holds nothing else. */
  TooManyConnectionsForUser: 4003,
} as const;

/** Why a connection ended: the `reason` of notification_connections_closed_total (docs/metrics.md says what each means). */
export const CLOSE_REASONS = [
  'normal',
  'going-away',
  'refresh',
  'dead-peer',
  'queue-overflow',
  'subscribe-timeout',
  'failed-subscribes',
  'user-cap',
  'malformed',
  'binary',
  'too-big',
  'protocol-error',
  'abnormal',
] as const;
export type CloseReason = (typeof CLOSE_REASONS)[number];

/** The reason for a close the server starts with `code`. */
const REASON_OF_CODE: ReadonlyMap<number, CloseReason> = new Map([
  [CloseCode.Normal, 'refresh'],
  [CloseCode.GoingAway, 'going-away'],
  [CloseCode.UnsupportedData, 'binary'],
  [CloseCode.InvalidPayload, 'malformed'],
  [CloseCode.SendQueueOverflow, 'queue-overflow'],
  [CloseCode.SubscribeTimeout, 'subscribe-timeout'],
  [CloseCode.TooManyFailedSubscribes, 'failed-subscribes'],
  [CloseCode.TooManyConnectionsForUser, 'user-cap'],
]);

export function closeReasonOf(code: number): CloseReason {
  return REASON_OF_CODE.get(code) ?? 'protocol-error';
}

/** The reason for a close `ws` starts itself when a client's frame breaks a rule (its error code). */
export function closeReasonOfFrameError(wsErrorCode: string | undefined): CloseReason {
  if (wsErrorCode === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' || wsErrorCode === 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH') return 'too-big';
  return wsErrorCode === 'WS_ERR_INVALID_UTF8' ? 'malformed' : 'protocol-error';
}
