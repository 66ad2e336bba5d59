import { TokenError, verifyToken } from './jwt.js';
import type { VerificationKeys } from './key-ring.js';

/** What a valid subscriber token proves: this user may follow this library until `expiresAt`. */
export interface SubscriberGrant {
  repoId: string;
  username: string;
  /** Unix milliseconds. */
  expiresAt: number;
}

export type SubscribeFailure = TokenError['reason'] | 'wrong-library';

export class SubscribeRefused extends Error {
  override readonly name = 'SubscribeRefused';
  constructor(
    readonly reason: SubscribeFailure,
    message: string,
  ) {
    super(message);
  }
}

/** Checks a token a client presents for `repoId` (claims `repo_id`, `username`, `exp`). */
export function verifySubscriberToken(token: string, repoId: string, key: VerificationKeys, nowMs: number): SubscriberGrant {
  let claims;
  try {
    claims = verifyToken(token, key, Math.floor(nowMs / 1000));
  } catch (err) {
    if (err instanceof TokenError) throw new SubscribeRefused(err.reason, err.message);
    throw err;
  }
  if (claims['repo_id'] !== repoId) {
    throw new SubscribeRefused('wrong-library', 'token was issued for another library');
  }
  const username = claims['username'];
  return {
    repoId,
    username: typeof username === 'string' ? username : '',
    expiresAt: (claims['exp'] as number) * 1000,
  };
}
