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
} as const;

/** Why a connection ended, as counted in `notification_connections_closed_total{reason}`. */
export type CloseReason =
  /** The client closed it with a close frame. */
  | 'normal'
  /** The server is shutting down (1001). */
  | 'going-away'
  /** A desktop client closed (1000) after a known gap so that it reconnects and re-reads its state (docs/cluster.md). */
  | 'refresh'
  /** No inbound traffic past the dead-peer timeout. */
  | 'dead-peer'
  /** The client did not read its messages (4000). */
  | 'queue-overflow'
  /** The client subscribed nothing within `subscribe_timeout` (4001). */
  | 'subscribe-timeout'
  /** Too many refused subscribes in a minute (4002). */
  | 'failed-subscribes'
  /** A message that is not valid JSON, or not valid UTF-8 (1007). */
  | 'malformed'
  /** A binary frame (1003). */
  | 'binary'
  /** A frame over `max_frame_bytes` (1009). */
  | 'too-big'
  /** A frame that breaks RFC 6455 (1002). */
  | 'protocol-error'
  /** The TCP connection ended without a close frame. */
  | 'abnormal';

export const CLOSE_REASONS: readonly CloseReason[] = [
  'normal',
  'going-away',
  'refresh',
  'dead-peer',
  'queue-overflow',
  'subscribe-timeout',
  'failed-subscribes',
  'malformed',
  'binary',
  'too-big',
  'protocol-error',
  'abnormal',
];

/** The reason for a close the server starts with `code`. */
export function closeReasonOf(code: number): CloseReason {
  switch (code) {
    case CloseCode.Normal:
      return 'refresh';
    case CloseCode.GoingAway:
      return 'going-away';
    case CloseCode.UnsupportedData:
      return 'binary';
    case CloseCode.InvalidPayload:
      return 'malformed';
    case CloseCode.SendQueueOverflow:
      return 'queue-overflow';
    case CloseCode.SubscribeTimeout:
      return 'subscribe-timeout';
    case CloseCode.TooManyFailedSubscribes:
      return 'failed-subscribes';
    default:
      return 'protocol-error';
  }
}

/** The reason for a close `ws` starts itself when a client's frame breaks a rule (its error code). */
export function closeReasonOfFrameError(wsErrorCode: string | undefined): CloseReason {
  switch (wsErrorCode) {
    case 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH':
    case 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH':
      return 'too-big';
    case 'WS_ERR_INVALID_UTF8':
      return 'malformed';
    default:
      return 'protocol-error';
  }
}
