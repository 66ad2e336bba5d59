import { createHmac, timingSafeEqual } from 'node:crypto';
import { isRecord } from '../protocol/client-message.js';
import { acceptedKeys, type VerificationKeys } from './key-ring.js';

/**
 * HS256 JSON Web Tokens, the only kind Seafile issues. Hand-written so that verification is
 * synchronous (subscribe handling stays in order) and `alg` is pinned: anything but HS256
 * (`none` included) is refused before any other check.
 */

export class TokenError extends Error {
  override readonly name = 'TokenError';
  constructor(
    readonly reason: 'malformed' | 'algorithm' | 'signature' | 'expired' | 'not-yet-valid',
    message: string,
  ) {
    super(message);
  }
}

export type Claims = Readonly<Record<string, unknown>>;

const BASE64URL = /^[A-Za-z0-9_-]*$/;

function decodeSegment(segment: string, what: string): Buffer {
  if (!BASE64URL.test(segment)) throw new TokenError('malformed', `token ${what} is not base64url`);
  return Buffer.from(segment, 'base64url');
}

function parseObject(segment: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decodeSegment(segment, what).toString('utf8'));
  } catch (err) {
    if (err instanceof TokenError) throw err;
    throw new TokenError('malformed', `token ${what} is not JSON`);
  }
  if (!isRecord(value)) throw new TokenError('malformed', `token ${what} is not a JSON object`);
  return value;
}

function hmac(key: Buffer, input: string): Buffer {
  return createHmac('sha256', key).update(input).digest();
}

/** Largest token we look at; Seafile's are about 200 bytes. */
const MAX_TOKEN_LENGTH = 8192;

/** Verifies signature and time claims; `exp` is required: a token without one would never end. */
export function verifyToken(token: string, keys: VerificationKeys, nowSeconds: number): Claims {
  if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
    throw new TokenError('malformed', 'token is empty or too long');
  }
  const parts = token.split('.');
  if (parts.length !== 3) throw new TokenError('malformed', 'token does not have three parts');
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = parseObject(headerPart, 'header');
  if (header['alg'] !== 'HS256') {
    throw new TokenError('algorithm', `token algorithm ${JSON.stringify(header['alg'])} is not HS256`);
  }
  if (!BASE64URL.test(signaturePart)) throw new TokenError('malformed', 'token signature is not base64url');
  // Compared as text, not as decoded bytes: the last base64url character carries unused bits,
  // and a decoded comparison would accept four spellings of every signature.
  const signature = Buffer.from(signaturePart);
  const signed = acceptedKeys(keys).some((key) => {
    const expected = Buffer.from(hmac(key, `${headerPart}.${payloadPart}`).toString('base64url'));
    return signature.length === expected.length && timingSafeEqual(signature, expected);
  });
  if (!signed) throw new TokenError('signature', 'token signature does not match the configured key');
  const claims = parseObject(payloadPart, 'payload');
  const exp = claims['exp'];
  if (typeof exp !== 'number' || !Number.isFinite(exp)) {
    throw new TokenError('malformed', 'token has no numeric exp claim');
  }
  if (exp <= nowSeconds) throw new TokenError('expired', 'token has expired');
  const nbf = claims['nbf'];
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > nowSeconds)) {
    throw new TokenError('not-yet-valid', 'token is not valid yet (nbf)');
  }
  return claims;
}

/** Signs claims as Seafile does (header `{"alg":"HS256","typ":"JWT"}`). Used by tools and tests. */
export function signToken(claims: Claims, key: Buffer): string {
  const header = Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url');
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const signature = hmac(key, `${header}.${payload}`).toString('base64url');
  return `${header}.${payload}.${signature}`;
}
