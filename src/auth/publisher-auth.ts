import { timingSafeEqual } from 'node:crypto';
import { TokenError, verifyToken } from './jwt.js';
import type { VerificationKeys } from './key-ring.js';

export type PublisherAuthFailure = 'missing' | TokenError['reason'] | 'subscriber-token';

/** How a publisher proved itself; see authenticatePublisher. */
export type PublisherKind = 'jwt' | 'legacy-header' | 'static-token';

export class PublisherAuthError extends Error {
  override readonly name = 'PublisherAuthError';
  constructor(
    readonly reason: PublisherAuthFailure,
    /** 401: no or bad credentials; 403: valid credentials that may not publish. */
    readonly status: 401 | 403,
    message: string,
  ) {
    super(message);
  }
}

export interface PublisherCredentials {
  key: VerificationKeys;
  /** Seafile 10.0's static `notification_token`, or null when not configured. */
  staticToken: string | null;
}

export interface PublisherHeaders {
  authorization?: string | undefined;
  'seafile-repo-token'?: string | string[] | undefined;
}

/** Compares in constant time, so that a guess learns nothing from how long it took. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function verifyPublisherJwt(token: string, key: VerificationKeys, nowMs: number): void {
  let claims;
  try {
    claims = verifyToken(token, key, Math.floor(nowMs / 1000));
  } catch (err) {
    if (err instanceof TokenError) throw new PublisherAuthError(err.reason, 401, `publisher ${err.message}`);
    throw err;
  }
  const username = claims['username'];
  if (typeof username === 'string' && username !== '') {
    // The stock server accepts these, letting any user inject events into any library.
    throw new PublisherAuthError('subscriber-token', 403, 'a subscriber token (with a username) cannot publish events');
  }
}

/**
 * Accepts the three generations of Seafile publishers: `Authorization: Token <jwt>` (12+, any
 * scheme word), `Seafile-Repo-Token: <jwt>` (11) and `Seafile-Repo-Token: <notification_token>` (10.0).
 */
export function authenticatePublisher(headers: PublisherHeaders, credentials: PublisherCredentials, nowMs: number): PublisherKind {
  const authorization = headers.authorization;
  if (authorization !== undefined && authorization.trim() !== '') {
    const words = authorization.trim().split(/\s+/);
    const token = words.length >= 2 ? words[1]! : words[0]!;
    verifyPublisherJwt(token, credentials.key, nowMs);
    return 'jwt';
  }
  const legacy = headers['seafile-repo-token'];
  const repoToken = Array.isArray(legacy) ? legacy[0] : legacy;
  if (repoToken === undefined || repoToken === '') {
    throw new PublisherAuthError('missing', 401, 'no publisher credentials: send "Authorization: Token <jwt>"');
  }
  if (credentials.staticToken !== null && sameSecret(repoToken, credentials.staticToken)) return 'static-token';
  verifyPublisherJwt(repoToken, credentials.key, nowMs);
  return 'legacy-header';
}
