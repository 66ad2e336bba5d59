import { generateKey } from '../config/jwt-key.js';

/** `notification-server keygen`: a key like `openssl rand -base64 32`, for JWT_PRIVATE_KEY. */
export function keygen(): number {
  process.stdout.write(`${generateKey()}\n`);
  return 0;
}
